package executor_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/remediator/remediator/internal/action"
	"github.com/remediator/remediator/internal/executor"
	"github.com/remediator/remediator/internal/incident"
	"github.com/remediator/remediator/internal/policy"
	"github.com/remediator/remediator/internal/probe"
	"github.com/remediator/remediator/internal/store"
)

// deadIntent fires RestartNeeded with no worker running, plans it and
// writes the intent a dead replica would have written.
func deadIntent(t *testing.T) (*rig, alert, string, store.Execution, action.Change) {
	t.Helper()
	ctx := context.Background()
	env, ns := demo(t)
	r := newRig(t, env, ns, setup{files: []string{"restart.yaml"}})
	a := r.alert("RestartNeeded")
	id := r.fire(a)
	inc, _, err := r.st.Incident(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := r.exec.Planner.PlanFrom(ctx, policy.Alert{Status: inc.Status, Labels: inc.Labels, Annotations: inc.Annotations, StartsAt: inc.StartsAt}, 0)
	if err != nil || plan.Change == nil || len(plan.Blocks) > 0 {
		t.Fatalf("plan %+v, %v", plan, err)
	}
	ch := *plan.Change
	body, _ := json.Marshal(ch)
	now := time.Now().UTC()
	x := store.Execution{ID: incident.NewID(), IncidentID: id, Step: plan.Decision.Step, Policy: plan.Policy, Remedy: plan.Decision.Remedy,
		Action: ch.Action, Namespace: ch.Target.Namespace, Kind: ch.Target.Kind, Name: ch.Target.Name,
		Mode: "enforce", Change: body, Owner: "dead", CreatedAt: now, UpdatedAt: now}
	details, _ := json.Marshal(map[string]any{"execution": x.ID, "change": ch})
	ev := incident.Event{IncidentID: id, Time: now, Type: executor.EventIntent, Actor: incident.ActorService, Reason: "about to " + ch.Summary, Details: details}
	q := store.GuardQuery{IncidentID: id, Namespace: x.Namespace, Kind: x.Kind, Name: x.Name}
	if err := r.st.BeginExecution(ctx, x, q, nil, ev); err != nil {
		t.Fatal(err)
	}
	return r, a, id, x, ch
}

// An intent without an outcome, as a replica that died between writing
// its intent and recording Apply's outcome leaves it (written here by hand
// through BeginExecution, owner "dead"; the test that kills the process is
// elsewhere). The incident's firing job, when it runs, reads the cluster:
//   - the change is in effect → the execution is settled as applied,
//     nothing is applied again, verification continues;
//   - it is not → the intent is abandoned and the plan decided again, and
//     applied once.
//
// A third case: the outcome (applied) was recorded too, but the job died
// before completing with its verification job; the job running again
// asks for the verification.
func TestReconcileIntentWithoutOutcome(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	tests := []struct {
		name string
		// applied: the dead replica's Apply landed; recorded: and its
		// outcome was recorded (the job died before completing with its
		// verification job).
		applied, recorded bool
		want              []string
	}{
		{name: "applied before the crash: settled, not applied again", applied: true,
			want: []string{incident.EventReceived, executor.EventIntent, executor.EventReconciled,
				executor.EventRolledOut, incident.EventResolved, executor.EventVerified}},
		{name: "applied and recorded before the crash: verification resumes", applied: true, recorded: true,
			want: []string{incident.EventReceived, executor.EventIntent, executor.EventApplied,
				executor.EventRolledOut, incident.EventResolved, executor.EventVerified}},
		{name: "not applied before the crash: abandoned, decided again, applied once",
			want: []string{incident.EventReceived, executor.EventIntent, executor.EventReconciled,
				"matched", "diagnosed", "planned", executor.EventIntent, executor.EventApplied, executor.EventRolledOut,
				incident.EventResolved, executor.EventVerified}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, a, id, x, ch := deadIntent(t)
			if tt.applied {
				applied, err := r.exec.Actions[ch.Action].Apply(ctx, ch)
				if err != nil {
					t.Fatal(err)
				}
				if tt.recorded {
					details, _ := json.Marshal(map[string]any{"execution": x.ID, "applied": applied})
					ev := incident.Event{IncidentID: id, Time: time.Now().UTC(), Type: executor.EventApplied, Actor: incident.ActorService,
						Reason: applied.Detail, Details: details}
					if err := r.st.FinishExecution(ctx, x.ID, []string{store.ExecIntent}, store.ExecApplied, applied.Detail, ev); err != nil {
						t.Fatal(err)
					}
				}
			}
			before := settle(t, r)
			generation := r.deployment().Generation

			r.start("worker-a")
			evs := r.waitUntil(id, "a rollout or a refusal", func(evs []incident.Event) bool {
				return len(events(evs, executor.EventRolledOut)) > 0 || len(events(evs, executor.EventDuplicate)) > 0
			})
			if d := events(evs, executor.EventDuplicate); len(d) > 0 {
				t.Fatalf("STORE BUG: the abandoned intent (incident %s, step %d) keeps the re-decided execution from being written: %q. "+
					"The unique (incident_id, step) of table executions must exclude abandoned rows (a partial unique index "+
					"WHERE state <> 'abandoned', in both backends' migrations); timeline:%s", id, x.Step, d[0].Reason, dump(evs))
			}
			if tt.applied {
				if got := r.versions(); got != before {
					t.Fatalf("reconciling changed the cluster: %+v → %+v", before, got)
				}
			}
			r.resolve(a)
			r.waitFor(id, executor.EventVerified)
			evs = r.quiet(id, 500*time.Millisecond)
			wantTypes(t, evs, tt.want...)
			xs := r.executions(id)
			d := r.deployment()
			if tt.applied {
				if len(xs) != 1 || xs[0].ID != x.ID || xs[0].State != store.ExecVerified || xs[0].Owner != "dead" {
					t.Fatalf("executions %+v", xs)
				}
				if after := settle(t, r); after != before || d.Generation != generation {
					t.Fatalf("the change was applied again: %+v → %+v", before, after)
				}
				if n := counter(t, r, "restart", "applied", "enforce"); n != 0 {
					t.Errorf("%v restarts applied by the reconciling replica", n)
				}
				if !tt.recorded {
					if e := one(t, evs, executor.EventReconciled); !strings.Contains(e.Reason, "the change is in effect") || !strings.Contains(e.Reason, "not applied again") {
						t.Errorf("reconciled: %s", e.Reason)
					}
				}
				return
			}
			if e := one(t, evs, executor.EventReconciled); !strings.Contains(e.Reason, "never reached the cluster") {
				t.Errorf("reconciled: %s", e.Reason)
			}
			if len(xs) != 2 || xs[0].ID != x.ID || xs[0].State != store.ExecAbandoned || xs[1].State != store.ExecVerified || xs[1].Owner != "replica-a" {
				t.Fatalf("executions %+v", xs)
			}
			// Restarted once, with the new execution's change.
			var again action.Change
			if err := json.Unmarshal(xs[1].Change, &again); err != nil {
				t.Fatal(err)
			}
			if got := d.Spec.Template.Annotations["kubectl.kubernetes.io/restartedAt"]; d.Generation != generation+1 || got != again.Restart.To {
				t.Errorf("generation %d → %d, restartedAt %q (abandoned plan %q, new plan %q)", generation, d.Generation, got, ch.Restart.To, again.Restart.To)
			}
			if n := counter(t, r, "restart", "applied", "enforce"); n != 1 {
				t.Errorf("%v restarts applied, want 1", n)
			}
		})
	}
}

// An intent without an outcome whose target was deleted meanwhile: the
// cluster cannot be read for it ever again, so the intent is abandoned
// (not retried forever, holding the target's lock) and the incident
// decided again, which escalates.
func TestReconcileIntentOfADeletedTarget(t *testing.T) {
	t.Parallel()
	r, _, id, x, _ := deadIntent(t)
	if err := r.admin.AppsV1().Deployments(r.ns).Delete(context.Background(), deployment, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	r.start("worker-a")
	r.waitFor(id, executor.EventEscalated)
	evs := r.quiet(id, time.Second)
	wantTypes(t, evs, incident.EventReceived, executor.EventIntent, executor.EventReconciled,
		"matched", "diagnosed", "planned", executor.EventEscalated)
	if e := one(t, evs, executor.EventReconciled); !strings.Contains(e.Reason, "its target is gone") {
		t.Errorf("reconciled: %s", e.Reason)
	}
	if xs := r.executions(id); len(xs) != 1 || xs[0].ID != x.ID || xs[0].State != store.ExecAbandoned {
		t.Fatalf("executions %+v", xs)
	}
}

// crashOnce panics the n-th time it is called, and only then. As the
// executor's AfterApply hook it stands for a process that dies after Apply
// and before the outcome is recorded: the worker turns the panic into a
// failed job, which runs again (after 1s rather than after its lease);
// what the job wrote to the store before stays, its other events and
// follow-up jobs are lost, as in a crash.
func crashOnce(n int32) func(string) {
	var calls atomic.Int32
	return func(string) {
		if calls.Add(1) == n {
			panic("simulated crash after Apply")
		}
	}
}

// A crash after applying the ladder's second rung, in the resolve-check
// job that found the first rung ineffective: the job runs again, the
// second rung's intent is settled as applied (it is on the cluster), its
// verification goes on, and after it the ladder ends in escalation.
func TestCrashAfterApplyingTheNextRung(t *testing.T) {
	t.Parallel()
	env, ns := demo(t)
	r := newRig(t, env, ns, setup{files: []string{"ladder.yaml"}, afterApply: crashOnce(2)})
	r.start("worker-a")
	id := r.fire(r.alert("LadderTest"))
	r.waitFor(id, executor.EventEscalated)
	evs := r.quiet(id, time.Second)
	plan := []string{"matched", "diagnosed", "planned"}
	want := []string{incident.EventReceived}
	want = append(append(want, plan...), executor.EventIntent, executor.EventApplied, executor.EventRolledOut, executor.EventIneffective)
	want = append(append(want, plan...), executor.EventIntent, executor.EventReconciled, executor.EventRolledOut, executor.EventIneffective)
	want = append(append(want, plan...), executor.EventEscalated)
	wantTypes(t, evs, want...)
	xs := r.executions(id)
	if len(xs) != 2 || xs[1].Step != 1 || xs[1].State != store.ExecIneffective || !strings.HasPrefix(xs[1].Reason, "the alert still fires") {
		t.Fatalf("executions %+v", xs)
	}
	if h := r.hpa(); *h.Spec.MinReplicas != 4 {
		t.Errorf("HPA minReplicas %d, want 4 (scaled once)", *h.Spec.MinReplicas)
	}
}

// A crash after Apply in the job that executes an approved proposal: the
// job runs again, finds the change in effect, does not execute it again and
// verifies it.
func TestCrashAfterApplyingAnApprovedChange(t *testing.T) {
	t.Parallel()
	env, ns := demo(t)
	// The bed serves no metrics.k8s.io: the resources probe alone returns
	// fixed evidence (saturated).
	r := newRig(t, env, ns, setup{mode: "dry-run", files: []string{"high-latency.yaml"},
		fixed: map[string]probe.Evidence{"resources": saturated}, afterApply: crashOnce(1)})
	r.start("worker-a")
	a := r.alert("HighLatency")
	id := r.fire(a)
	r.waitFor(id, executor.EventProposed)
	if _, err := r.exec.Decide(context.Background(), id, true, "alice", ""); err != nil {
		t.Fatal(err)
	}
	r.waitFor(id, executor.EventRolledOut)
	r.resolve(a)
	r.waitFor(id, executor.EventVerified)
	evs := r.quiet(id, 500*time.Millisecond)
	wantTypes(t, evs, incident.EventReceived, "matched", "diagnosed", "planned", executor.EventProposed, executor.EventApproved,
		executor.EventIntent, executor.EventReconciled, executor.EventRolledOut, incident.EventResolved, executor.EventVerified)
	if xs := r.executions(id); len(xs) != 1 || xs[0].State != store.ExecVerified {
		t.Fatalf("executions %+v", xs)
	}
	if h := r.hpa(); *h.Spec.MinReplicas != 5 {
		t.Errorf("HPA minReplicas %d, want 5", *h.Spec.MinReplicas)
	}
}

// The Kubernetes API is down while applying (the actions the executor
// applies with talk to a loopback port where nothing listens; planning
// reads the bed): Apply retries within ApplyTimeout, the outcome is
// recorded as failed and the incident escalated; nothing panics, nothing
// changed.
func TestKubeAPIDownDuringApply(t *testing.T) {
	t.Parallel()
	env, ns := demo(t)
	cfg := env.RemediatorConfig()
	cfg.Host = "https://" + deadAddr(t)
	cfg.Timeout = 2 * time.Second
	down, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	const applyTimeout = 3 * time.Second
	r := newRig(t, env, ns, setup{files: []string{"restart.yaml"}, actions: deadActions(down, cfg), applyTimeout: applyTimeout})
	before := settle(t, r)
	r.start("worker-a")
	id := r.fire(r.alert("RestartNeeded"))
	r.waitFor(id, executor.EventEscalated)
	evs := r.quiet(id, time.Second)
	wantTypes(t, evs, incident.EventReceived, "matched", "diagnosed", "planned",
		executor.EventIntent, executor.EventFailed, executor.EventEscalated)
	intent, failed := one(t, evs, executor.EventIntent), one(t, evs, executor.EventFailed)
	if !strings.Contains(failed.Reason, "restart failed") || !strings.Contains(failed.Reason, "attempts") ||
		!strings.Contains(failed.Reason, "could not be read to confirm") {
		t.Errorf("failed: %s", failed.Reason)
	}
	// Apply's retries end with ApplyTimeout; the read that confirms
	// nothing landed fails at once (connection refused).
	if took := failed.Time.Sub(intent.Time); took > applyTimeout+time.Second {
		t.Errorf("failed %s after the intent, ApplyTimeout is %s", took, applyTimeout)
	}
	xs := r.executions(id)
	if len(xs) != 1 || xs[0].State != store.ExecFailed {
		t.Fatalf("executions %+v", xs)
	}
	if after := settle(t, r); after != before {
		t.Fatalf("the cluster changed: %+v → %+v", before, after)
	}
	if n := counter(t, r, "restart", "failed", "enforce"); n != 1 {
		t.Errorf("remediator_actions_total{restart,failed,enforce} = %v", n)
	}
}

// deadActions are the actions as the service builds them, on a client of
// an unreachable API server.
func deadActions(kube kubernetes.Interface, cfg *rest.Config) map[string]action.Action {
	return action.NewWithConfig(kube, cfg)
}
