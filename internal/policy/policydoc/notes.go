package policydoc

import (
	"fmt"
	"time"

	"github.com/remediator/remediator/internal/action"
	"github.com/remediator/remediator/internal/guard"
	"github.com/remediator/remediator/internal/policy"
)

// What the schema does not say. Tests keep these maps complete and free of
// stale keys: a new policy field needs a default here (or "" for none) and,
// if its Go type gives it no description, a line in fieldDocs; a new
// evidence field should get a line in evidenceNotes.

func dur(d time.Duration) string {
	s := d.String()
	// 10m0s → 10m, 1h0m0s → 1h
	for _, suf := range []string{"0s", "0m"} {
		if len(s) > 2 && s[len(s)-2:] == suf && (s[len(s)-3] < '0' || s[len(s)-3] > '9') {
			s = s[:len(s)-2]
		}
	}
	return "`" + s + "`"
}

// fieldDefaults: what an absent (or zero) field means. The values come from
// the constants the loader, executor and guards use.
var fieldDefaults = map[string]string{
	"apiVersion":                "",
	"kind":                      "",
	"name":                      "",
	"description":               "empty",
	"match":                     "",
	"target":                    "",
	"target.kind":               "",
	"target.namespaceLabel":     "`namespace`",
	"target.nameLabel":          "",
	"target.podLabel":           "",
	"diagnosis":                 "no probes (conditions see only the alert)",
	"diagnosis[].probe":         "",
	"diagnosis[].id":            "the probe's name",
	"diagnosis[].timeout":       fmt.Sprintf("%s (at most %s)", dur(policy.DefaultProbeTimeout), dur(policy.MaxProbeTimeout)),
	"diagnosis[].params":        "none",
	"remedies":                  "",
	"remedies[].name":           "",
	"remedies[].when":           "always true",
	"remedies[].action":         "",
	"remedies[].params":         "none (each parameter's own default)",
	"priority":                  "",
	"priority.default":          "`P3`",
	"priority.rules":            "none",
	"priority.rules[].when":     "",
	"priority.rules[].priority": "",
	"guards":                    "",
	"guards.mode":               "the service's `mode` (`dry-run` unless configured)",
	"guards.approval":           "`none`, unless the incident's priority is in the service's `guards.approval_priorities`",
	"guards.cooldown":           fmt.Sprintf("the service's `guards.cooldown` (%s)", dur(guard.DefaultCooldown)),
	"guards.maxActionsPerHour":  fmt.Sprintf("the service's `guards.max_actions_per_target_per_hour` (%d)", guard.DefaultMaxPerTargetPerHour),
	"guards.maxReplicas":        "none: a scale then passes the blast-radius guard only with a bound of its own (the remedy's `max`, or the HPA's `maxReplicas`)",
	"guards.minHealthyPercent":  fmt.Sprintf("the service's `guards.min_healthy_percent` (%d; delete-pod's own default %d)", guard.DefaultMinHealthyPercent, action.DefaultMinHealthyPercent),
	"guards.circuitBreaker":     fmt.Sprintf("the service's `guards.circuit_breaker` (%d)", policy.DefaultCircuitBreaker),
	"guards.approvalExpiry":     dur(policy.DefaultApprovalExpiry),
	"verify":                    "",
	"verify.rolloutDeadline":    dur(policy.DefaultRolloutDeadline),
	"verify.resolveWithin":      dur(policy.DefaultResolveWithin),
}

// fieldDocs describe the fields whose schema has no description.
var fieldDocs = map[string]string{
	"apiVersion":                "File format version.",
	"kind":                      "File kind.",
	"target":                    "How to find the target workload from the alert's labels. A missing or empty label, a wildcard or an invalid name refuses the alert (never widened to \"all\").",
	"target.kind":               "Kind of the target workload.",
	"diagnosis[].probe":         "A probe of the catalog (Probes, below).",
	"diagnosis[].params":        "The probe's parameters, checked against the catalog at load.",
	"remedies[].name":           "Name of the rung, unique in the policy; on the timeline and in plans.",
	"remedies[].action":         "An action of the catalog (Actions, below).",
	"remedies[].params":         "The action's parameters, checked against the catalog at load.",
	"priority":                  "The incident's priority (its response deadline and escalation).",
	"priority.rules":            "Rules in order; the first whose condition is true sets the priority.",
	"priority.rules[].when":     "CEL condition (bool).",
	"priority.rules[].priority": "The priority when the condition is true.",
	"guards":                    "This policy's guard settings; a zero value inherits the service's (`guards` in the configuration).",
	"guards.maxActionsPerHour":  "Actions on one target in any sliding hour.",
	"verify":                    "How an applied change proves itself before the incident counts as remediated.",
}

// evidenceNotes say what an evidence field means, keyed by the Go type that
// declares it and the field's CEL name.
var evidenceNotes = map[string]string{
	"RolloutHistoryEvidence.revisions":        "the Deployment's revisions (one per ReplicaSet), newest first",
	"Revision.revision":                       "revision number",
	"Revision.image":                          "the pod template's images, comma-separated in container order",
	"Revision.changeCause":                    "the `kubernetes.io/change-cause` annotation",
	"Revision.createdAt":                      "when the ReplicaSet was created",
	"Revision.replicaSet":                     "the ReplicaSet's name",
	"RolloutHistoryEvidence.currentRevision":  "the Deployment's current revision",
	"RolloutHistoryEvidence.newestRolloutAge": "time since the current revision was created",
	"RolloutHistoryEvidence.inProgress":       "a rollout is still in progress (the rules of `kubectl rollout status`)",
	"RolloutHistoryEvidence.status":           "kubectl-style rollout status message",

	"PodStatusEvidence.ready":        "pods ready",
	"PodStatusEvidence.total":        "pods of the target",
	"PodStatusEvidence.restarts":     "container restarts, summed over all pods",
	"PodStatusEvidence.oomKilled":    "pods with a container last terminated OOMKilled",
	"PodStatusEvidence.crashLooping": "pods with a container waiting in CrashLoopBackOff",
	"PodStatusEvidence.pods":         "one entry per pod",
	"PodInfo.name":                   "pod name",
	"PodInfo.ready":                  "the pod is ready",
	"PodInfo.restarts":               "restarts of its containers",
	"PodInfo.lastTerminationReason":  "last termination reason of a container (OOMKilled preferred)",

	"ResourcesEvidence.containers":             "requests and limits of the pod template's containers",
	"ContainerResources.name":                  "container name",
	"ContainerResources.cpuRequest":            "as written in the spec; empty if unset",
	"ContainerResources.cpuLimit":              "as written in the spec; empty if unset",
	"ContainerResources.memoryRequest":         "as written in the spec; empty if unset",
	"ContainerResources.memoryLimit":           "as written in the spec; empty if unset",
	"ContainerResources.cpuRequestMillis":      "0 if unset",
	"ContainerResources.cpuLimitMillis":        "0 if unset",
	"ContainerResources.memoryRequestBytes":    "0 if unset",
	"ContainerResources.memoryLimitBytes":      "0 if unset",
	"ResourcesEvidence.available":              "usage was read from metrics.k8s.io; false when that API is not served or has no usage (never guessed)",
	"ResourcesEvidence.reason":                 "why usage is not available",
	"ResourcesEvidence.cpuNearLimitPercent":    "percent of the target's pods whose CPU usage is at or above `nearLimitPercent` of their limit",
	"ResourcesEvidence.memoryNearLimitPercent": "the same for memory",
	"ResourcesEvidence.pods":                   "per-pod usage (only when available)",
	"PodUsage.name":                            "pod name",
	"PodUsage.cpuMillis":                       "CPU usage",
	"PodUsage.memoryBytes":                     "memory usage",
	"PodUsage.cpuLimitPercent":                 "usage / limit × 100; 0 when no CPU limit",
	"PodUsage.memoryLimitPercent":              "usage / limit × 100; 0 when no memory limit",

	"ErrorDistributionEvidence.total": "error lines counted",
	"ErrorDistributionEvidence.top":   "the most frequent messages, by count, then message",
	"MessageCount.message":            "the error message",
	"MessageCount.count":              "its occurrences",
	"LogStats.pods":                   "pods whose logs were read",
	"LogStats.lines":                  "log lines read",
	"LogStats.failed":                 "`pod/container: error` for each log that could not be read",

	"SlowEndpointsEvidence.top":     "endpoints by p95 latency, slowest first",
	"SlowEndpointsEvidence.samples": "timed log lines seen",
	"EndpointLatency.endpoint":      "the endpoint",
	"EndpointLatency.p95Ms":         "nearest-rank p95 of `responseTimeMs`",
	"EndpointLatency.count":         "timed requests seen",

	"PrometheusEvidence.query":          "the query as sent (template rendered)",
	"PrometheusEvidence.mode":           "`instant` or `range`",
	"PrometheusEvidence.value":          "the first sample (instant), or the last point of the first series (range)",
	"PrometheusEvidence.available":      "false, with `reason`, when the query returned no usable sample",
	"PrometheusEvidence.reason":         "why no value is available",
	"PrometheusEvidence.samples":        "series (instant) or points of the first series (range)",
	"PrometheusEvidence.series":         "series returned",
	"PrometheusEvidence.first":          "range: first point of the first series",
	"PrometheusEvidence.last":           "range: last point of the first series",
	"PrometheusEvidence.slopePerMinute": "range: least-squares slope of the first series, per minute",
	"PrometheusEvidence.warnings":       "warnings Prometheus returned",

	"DependenciesEvidence.allReachable": "every endpoint answered",
	"DependenciesEvidence.unreachable":  "the endpoints that did not",
	"DependenciesEvidence.checks":       "one entry per endpoint, in the order of `endpoints`",
	"Check.endpoint":                    "the endpoint as given",
	"Check.ok":                          "it answered (TCP: connected; HTTP: a 2xx or 3xx status)",
	"Check.latencyMs":                   "time to answer",
	"Check.error":                       "why not",
}
