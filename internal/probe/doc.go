// Package probe implements the diagnosis probes of the runbook: small, typed
// readers of cluster state, pod logs, Prometheus and dependency endpoints.
//
// Every probe reads through the identity it is given (the remediator's
// least-privilege client), declares the RBAC it needs (Needs; Rules and
// AllRules merge them for deploy RBAC), runs under its own timeout and
// returns typed evidence: its own struct, whose `cel` tags (equal to the JSON
// names) are the field names CEL conditions see.
// RunAll runs steps concurrently; a failing, timed-out or panicking probe is
// that step's error and never aborts the others.
//
//	probe              params                                              RBAC (namespace of the target)
//	rolloutHistory     —                                                   get deployments, list replicasets
//	podStatus          —                                                   get deployments, list pods
//	resources          nearLimitPercent (int, 90)                          get deployments, list pods, list pods.metrics.k8s.io
//	errorDistribution  since (duration) | sinceSeconds (int), default 5m;  get deployments, list pods, get pods/log
//	                   maxLines per container (2000); top (5); pattern
//	slowEndpoints      since | sinceSeconds; maxLines; top (5)             get deployments, list pods, get pods/log
//	prometheus         query (required, text/template over the Target);    —
//	                   mode instant|range; window (30m); step (1m)
//	dependencies       endpoints (required: host:port or http(s) URLs);    — (dials only the listed endpoints)
//	                   timeout per endpoint (2s)
//
// OwnerDeployment resolves a pod's Deployment (get pods, get replicasets).
//
// Log lines: see ParseLine (what counts as an error, which fields give the
// message and the endpoint) and NormalizeMessage (how messages are grouped).
// p95 is the nearest-rank percentile (Percentile); a trend's slope is the
// least-squares slope per minute (Slope).
package probe
