package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// kill -9 of the real process between an execution's intent record and its
// outcome, then a restart on the same SQLite store: the restarted process
// re-claims the job once its lease ends and reconciles the intent by
// reading the cluster, never by applying blindly.
//   - apply: the rollback reached the API server, its outcome was never
//     written → `reconciled` ("in effect"), no second change.
//   - intent: nothing reached the cluster → `reconciled` ("never reached
//     the cluster", execution abandoned), then one rollback.
func TestCrashBetweenIntentAndOutcome(t *testing.T) {
	serveBinary(t)
	tests := []struct {
		at string
		// changedAtCrash: the rollback is on the cluster while the process
		// hangs at the crash point.
		changedAtCrash bool
		reconciled     string // in the reconciled event's reason
	}{
		{at: "apply", changedAtCrash: true, reconciled: "the change is in effect"},
		{at: "intent", changedAtCrash: false, reconciled: "the change never reached the cluster"},
	}
	for _, tt := range tests {
		t.Run(tt.at, func(t *testing.T) {
			t.Parallel()
			target := newDemoTarget(t)
			r := newReplica(t, "serve", serveConfig{
				Store:      "sqlite://" + filepath.Join(t.TempDir(), "r.db"),
				Kubeconfig: target.kubeconfig,
				Namespaces: []string{target.ns},
			})
			r.start("REMEDIATOR_TEST_CRASH_AFTER=" + tt.at)
			r.fire(firingBody(target.ns, "HighErrorRate", time.Now().Add(-time.Minute)))
			r.waitLog("crash point reached", 30*time.Second)
			if !strings.Contains(r.p.out.String(), `"point":"`+tt.at+`"`) {
				t.Fatalf("crash log does not name point %q", tt.at)
			}
			if tt.changedAtCrash {
				target.requireRolledBackOnce(t)
			} else {
				target.requireUnchanged(t)
			}
			r.kill9()

			r.start() // same config and store, no crash hook
			id := r.onlyIncident()
			// Wait for the final word of this incident's first rung: the
			// rollout verified, or a second attempt recorded (applied or
			// refused as a duplicate).
			tl := r.waitTimeline(id, 45*time.Second, "outcome after the restart", func(tl timeline) bool {
				return tl.count("rollout-complete") > 0 || tl.count("duplicate-execution-prevented") > 0 ||
					tl.count("failed") > 0 || tl.count("escalated") > 0
			})
			rec, ri := tl.first("reconciled")
			switch {
			case ri < 0:
				t.Fatalf("no reconciled event; timeline:%s", tl)
			case tl.count("reconciled") != 1:
				t.Errorf("%d reconciled events, want 1; timeline:%s", tl.count("reconciled"), tl)
			case !strings.Contains(rec.Reason, tt.reconciled):
				t.Errorf("reconciled reason %q lacks %q", rec.Reason, tt.reconciled)
			}
			if n := tl.count("duplicate-execution-prevented"); n > 0 {
				t.Errorf("the re-decision after reconciling was refused as a duplicate execution (%d); timeline:%s", n, tl)
			}
			if n := tl.count("failed") + tl.count("escalated"); n > 0 {
				t.Errorf("failed/escalated after the restart; timeline:%s", tl)
			}
			if tt.changedAtCrash {
				// No second change: one intent (before the crash), no
				// applied event (the outcome is the reconciliation).
				if tl.count("intent") != 1 || tl.count("applied") != 0 {
					t.Errorf("want 1 intent and no applied event; timeline:%s", tl)
				}
			} else {
				// The abandoned intent, then one fresh intent and one apply
				// after the reconciliation.
				_, ai := tl.first("applied")
				if tl.count("intent") != 2 || tl.count("applied") != 1 || ai < ri {
					t.Errorf("want 2 intents and exactly 1 applied after reconciled; timeline:%s", tl)
				}
			}
			target.requireRolledBackOnce(t)
			t.Logf("timeline after the restart:%s\ncluster: %s", tl, target.state(t))
		})
	}
}

// The same crash on the approval path: in dry-run a person approves the
// proposal, the process dies right after Apply, before the outcome. After
// the restart the approved job runs again; the intent must be reconciled
// from the cluster (the change is in effect), not left as an intent forever
// nor blocked as stale.
func TestCrashAfterApprovalBetweenIntentAndOutcome(t *testing.T) {
	serveBinary(t)
	t.Parallel()
	target := newDemoTarget(t)
	r := newReplica(t, "serve", serveConfig{
		Store:      "sqlite://" + filepath.Join(t.TempDir(), "r.db"),
		Mode:       "dry-run",
		Kubeconfig: target.kubeconfig,
		Namespaces: []string{target.ns},
	})
	r.start("REMEDIATOR_TEST_CRASH_AFTER=apply")
	r.fire(firingBody(target.ns, "HighErrorRate", time.Now().Add(-time.Minute)))
	id := r.onlyIncident()
	r.waitTimeline(id, 20*time.Second, "proposal", has("proposed"))
	if code, m := r.do("POST", "/api/v1/incidents/"+id+"/approve", map[string]string{"by": "bob"}); code != 200 {
		t.Fatalf("approve: %d %v", code, m)
	}
	r.waitLog("crash point reached", 30*time.Second)
	target.requireRolledBackOnce(t)
	r.kill9()

	r.start()
	tl := r.waitTimeline(id, 30*time.Second, "outcome after the restart", func(tl timeline) bool {
		return tl.count("reconciled") > 0 || tl.count("rollout-complete") > 0 || tl.count("duplicate-execution-prevented") > 0 ||
			tl.count("failed") > 0 || tl.count("escalated") > 0
	})
	rec, ri := tl.first("reconciled")
	if ri < 0 || !strings.Contains(rec.Reason, "the change is in effect") {
		t.Errorf("want the approved execution's intent reconciled (the change is in effect); timeline:%s", tl)
	}
	if tl.count("intent") != 1 || tl.count("applied") != 0 || tl.count("escalated") != 0 || tl.count("blocked") != 0 ||
		tl.count("duplicate-execution-prevented") != 0 {
		t.Errorf("want no second attempt, block or escalation; timeline:%s", tl)
	}
	target.requireRolledBackOnce(t)
	t.Logf("timeline after the restart:%s\ncluster: %s", tl, target.state(t))
}
