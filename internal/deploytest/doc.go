// Package deploytest holds the tests of the deployment kit in deploy/: the
// kustomize base and overlay (deploy/base, deploy/overlays/example) and the
// prometheus-operator objects and plain Prometheus/Alertmanager files
// (deploy/monitoring). It has no code of its own.
//
// Without a test bed (-short) the tests build the kustomizations with
// kustomize's own library (krusty, the code behind `kubectl apply -k`) and
// check the result: the Deployment's safety settings, that the configuration
// and policies in the ConfigMaps load with the service's own loaders, that
// the policies equal policies/, that the alert rules carry the labels the
// policies match on (and pass `promtool test rules`), and that Alertmanager
// routes them to the service.
//
// On the test bed (internal/testbed) every object is applied with
// server-side dry-run (dryRun=All, strict field validation) against the real
// kube-apiserver; the monitoring.coreos.com CRDs are generated from
// prometheus-operator's published API types with controller-gen
// (hack/tools/crdgen) and installed first; and the generated RBAC is bound to
// the bed's remediator ServiceAccount to show that every action's pre-flight
// passes with it and that what it does not grant is forbidden.
package deploytest
