// Package testbed runs real Kubernetes components on loopback for tests and
// local runs: etcd 3.6, kube-apiserver, kube-controller-manager and
// kube-scheduler 1.37, kwok (one simulated node whose pods become Ready at
// once and whose pods/log API serves files the test writes), PostgreSQL
// (internal/testbed/pgserver) and, on demand, the real Alertmanager.
//
// Build the binaries once with hack/testbed/build.sh (into <repo>/bin).
//
// In a package's tests:
//
//	func TestMain(m *testing.M) { testbed.Main(m) }
//
//	func TestSomething(t *testing.T) {
//		env := testbed.Get(t)            // skips with -short
//		ns := env.NewNamespace()         // deleted at cleanup
//		env.ApplyDemo(ns)                // deploy/demo, waits for the rollout
//		env.GrantRemediator(ns, rbacv1.PolicyRule{...})
//		rc := env.RemediatorClient()     // only what RBAC grants
//		dsn := env.PostgresDSN()         // fresh database
//		am := env.StartAlertmanager(testbed.AlertmanagerOptions{WebhookURL: ...})
//	}
//
// One bed serves the whole test process; it starts on the first Get and
// stops when Main returns. With REMEDIATOR_TESTBED=<state.json> (printed by
// `testbed up`) tests attach to an already running bed instead, which saves
// the ~6 s start per package.
//
// The remediator's identity is the ServiceAccount remediator-system/remediator
// with a token from the TokenRequest API; the API server authorizes it with
// RBAC only, so it gets real 403s for anything not granted.
package testbed
