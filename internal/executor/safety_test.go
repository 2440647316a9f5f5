package executor_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/remediator/remediator/internal/executor"
	"github.com/remediator/remediator/internal/guard"
	"github.com/remediator/remediator/internal/incident"
	"github.com/remediator/remediator/internal/store"
	"github.com/remediator/remediator/internal/testbed"
)

// Exactly once: 50 copies of the same firing notification stored
// concurrently (Alertmanager's retries and HA peers), two replicas sharing
// the store, each with its own worker and executor → one incident, one
// execution, one rollback on the cluster.
func TestExactlyOnceAcrossReplicas(t *testing.T) {
	t.Parallel()
	env, ns := demo(t)
	a := newRig(t, env, ns, setup{files: []string{"high-error-rate.yaml"}, owner: "replica-a"})
	b := newRig(t, env, ns, setup{files: []string{"high-error-rate.yaml"}, owner: "replica-b", store: a.st})
	badRollout(t, a)
	a.start("replica-a-worker")
	b.start("replica-b-worker")

	al := a.alert("HighErrorRate")
	const copies = 50
	ids := make([]string, copies)
	outcomes := make([]string, copies)
	errs := make([]error, copies)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range copies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			ids[i], outcomes[i], errs[i] = ingest(context.Background(), a.st, al, incident.StatusFiring)
		}()
	}
	close(start)
	wg.Wait()
	a.kick()
	b.kick()
	news := 0
	for i := range copies {
		if errs[i] != nil {
			t.Fatalf("ingest %d: %v", i, errs[i])
		}
		if ids[i] != ids[0] {
			t.Fatalf("copies made incidents %s and %s", ids[0], ids[i])
		}
		if outcomes[i] == incident.OutcomeNew {
			news++
		}
	}
	if news != 1 {
		t.Fatalf("%d copies were new, want 1", news)
	}
	id := ids[0]
	a.waitFor(id, executor.EventRolledOut)
	evs := a.quiet(id, 2*time.Second)
	if n := len(events(evs, incident.EventDuplicate)); n != copies-1 {
		t.Errorf("%d duplicate events, want %d", n, copies-1)
	}
	evs = slices.DeleteFunc(evs, func(e incident.Event) bool { return e.Type == incident.EventDuplicate })
	wantTypes(t, evs, incident.EventReceived, "matched", "diagnosed", "planned",
		executor.EventIntent, executor.EventApplied, executor.EventRolledOut)
	inc, _, err := a.st.Incident(context.Background(), id)
	if err != nil || inc.Receipts != copies || inc.Duplicates != copies-1 {
		t.Fatalf("incident %+v, %v", inc, err)
	}
	if xs := a.executions(id); len(xs) != 1 {
		t.Fatalf("%d executions, want 1: %+v", len(xs), xs)
	}
	// One rollback: revision 1's ReplicaSet became revision 3, and no
	// other revision was made.
	d := a.deployment()
	if rev := d.Annotations["deployment.kubernetes.io/revision"]; rev != "3" {
		t.Errorf("deployment at revision %s, want 3 (one rollback)", rev)
	}
	revs := revisions(t, a, d)
	if len(revs) != 2 || !revs["2"] || !revs["3"] {
		t.Errorf("replicaset revisions %v, want 2 and 3", revs)
	}
	applied := counter(t, a, "rollback", "applied", "enforce") + counter(t, b, "rollback", "applied", "enforce")
	if applied != 1 {
		t.Errorf("%v rollbacks applied by the two replicas together", applied)
	}
}

// revisions are the revision annotations of the Deployment's ReplicaSets.
func revisions(t *testing.T, r *rig, d *appsv1.Deployment) map[string]bool {
	t.Helper()
	l, err := r.admin.AppsV1().ReplicaSets(r.ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app=" + deployment})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, rs := range l.Items {
		if ref := metav1.GetControllerOf(&rs); ref != nil && ref.UID == d.UID {
			out[rs.Annotations["deployment.kubernetes.io/revision"]] = true
		}
	}
	return out
}

// The ladder: the first rung (restart) rolls out but the alert keeps
// firing past resolveWithin → ineffective → the second rung (scale out
// through the HPA) → ineffective too → nothing left: escalated.
func TestLadderToEscalation(t *testing.T) {
	t.Parallel()
	env, ns := demo(t)
	r := newRig(t, env, ns, setup{files: []string{"ladder.yaml"}})
	before := r.deployment()
	r.start("worker-a")
	id := r.fire(r.alert("LadderTest"))
	r.waitFor(id, executor.EventEscalated)
	evs := r.quiet(id, time.Second)
	plan := []string{"matched", "diagnosed", "planned"}
	rung := []string{executor.EventIntent, executor.EventApplied, executor.EventRolledOut, executor.EventIneffective}
	want := []string{incident.EventReceived}
	want = append(append(want, plan...), rung...)
	want = append(append(want, plan...), rung...)
	want = append(append(want, plan...), executor.EventEscalated)
	wantTypes(t, evs, want...)

	intents := events(evs, executor.EventIntent)
	for i, act := range []string{"restart", "scale"} {
		if got := detail[string](t, intents[i], "remedy"); got != []string{"restart-first", "then-scale-out"}[i] {
			t.Errorf("rung %d remedy %s", i, got)
		}
		if c := detail[map[string]any](t, intents[i], "change"); c["action"] != act {
			t.Errorf("rung %d action %v, want %s", i, c["action"], act)
		}
	}
	xs := r.executions(id)
	if len(xs) != 2 || xs[0].Step != 0 || xs[1].Step != 1 || xs[0].State != store.ExecIneffective || xs[1].State != store.ExecIneffective {
		t.Fatalf("executions %+v", xs)
	}
	if e := one(t, evs, executor.EventEscalated); !strings.Contains(e.Reason, "no remedy condition") {
		t.Errorf("escalated: %s", e.Reason)
	}
	// Both changes are on the cluster.
	d := r.deployment()
	if d.Spec.Template.Annotations["kubectl.kubernetes.io/restartedAt"] == "" || d.Generation == before.Generation {
		t.Errorf("the restart is not on the deployment")
	}
	if h := r.hpa(); *h.Spec.MinReplicas != 4 {
		t.Errorf("HPA minReplicas %d, want 4", *h.Spec.MinReplicas)
	}
	if n := counter(t, r, "restart", "ineffective", "enforce") + counter(t, r, "scale", "ineffective", "enforce"); n != 2 {
		t.Errorf("%v ineffective actions counted, want 2", n)
	}
}

// The first rung's rollout does not complete within the policy's
// rolloutDeadline (1ms: it never does) → failed → the ladder moves on to
// the second rung. On kwok the restart's rollout completes in a second or
// two, so the second rung's pre-flight either still finds it in progress
// (blocked, escalated, the HPA left alone) or not (the scale is applied and
// fails its 1ms deadline too, and nothing is left: escalated). Both are
// right; the test accepts either and checks the cluster matches.
func TestRolloutDeadline(t *testing.T) {
	t.Parallel()
	env, ns := demo(t)
	r := newRig(t, env, ns, setup{files: []string{"ladder.yaml"}, vars: map[string]string{"$ROLLOUT_DEADLINE": "1ms"}})
	r.start("worker-a")
	id := r.fire(r.alert("LadderTest"))
	r.waitFor(id, executor.EventEscalated)
	evs := r.quiet(id, time.Second)
	first := []string{incident.EventReceived, "matched", "diagnosed", "planned", executor.EventIntent, executor.EventApplied,
		executor.EventFailed, "matched", "diagnosed", "planned"}
	blocked := append(slices.Clone(first), executor.EventBlocked, executor.EventEscalated)
	failedToo := append(slices.Clone(first), executor.EventIntent, executor.EventApplied, executor.EventFailed,
		"matched", "diagnosed", "planned", executor.EventEscalated)
	got := typesOf(evs)
	for _, e := range events(evs, executor.EventFailed) {
		if !strings.Contains(e.Reason, "rollout did not complete within 1ms") {
			t.Errorf("failed: %s", e.Reason)
		}
	}
	xs := r.executions(id)
	if len(xs) == 0 || xs[0].State != store.ExecFailed || xs[0].Action != "restart" {
		t.Fatalf("executions %+v", xs)
	}
	switch {
	case slices.Equal(got, blocked):
		if e := one(t, evs, executor.EventBlocked); !strings.Contains(e.Reason, "rollout in progress") || detail[string](t, e, "action") != "scale" {
			t.Errorf("blocked: %s", e.Reason)
		}
		if h := r.hpa(); len(xs) != 1 || *h.Spec.MinReplicas != 3 {
			t.Errorf("HPA minReplicas %d, executions %+v; want 3 (the scale was blocked), one execution", *h.Spec.MinReplicas, xs)
		}
	case slices.Equal(got, failedToo):
		if h := r.hpa(); len(xs) != 2 || xs[1].State != store.ExecFailed || *h.Spec.MinReplicas != 4 {
			t.Errorf("HPA minReplicas %d, executions %+v; want 4, two failed executions", *h.Spec.MinReplicas, xs)
		}
	default:
		t.Fatalf("timeline types\n got %v\nwant %v\n  or %v\ntimeline:%s", got, blocked, failedToo, dump(evs))
	}
	if n := counter(t, r, "restart", "failed", "enforce"); n != 1 {
		t.Errorf("remediator_actions_total{restart,failed,enforce} = %v", n)
	}
}

// blockedTimeline is the timeline of an incident whose plan the guards
// refused: blocked and escalated, nothing else.
var blockedTimeline = []string{incident.EventReceived, "matched", "diagnosed", "planned", executor.EventBlocked, executor.EventEscalated}

// Each guard end to end: a plan the guard refuses is recorded as blocked
// with the guard's name and escalated, and nothing changes on the cluster.
func TestGuardsBlock(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		name  string
		guard string
		why   string
		setup func(t *testing.T, r *rig, s *setup)
	}{
		{name: "namespace not in the allow-list", guard: guard.GuardNamespace, why: "is not in the allow-list",
			setup: func(t *testing.T, r *rig, s *setup) { s.namespaces = []string{"somewhere-else"} }},
		{name: "protected target", guard: guard.GuardProtected, why: "label remediator.io/protected=true",
			setup: func(t *testing.T, r *rig, _ *setup) {
				patch := []byte(`{"metadata":{"labels":{"remediator.io/protected":"true"}}}`)
				if _, err := r.admin.AppsV1().Deployments(r.ns).Patch(ctx, deployment, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "paused", guard: guard.GuardPause, why: "remediation is paused by carol",
			setup: func(t *testing.T, r *rig, _ *setup) {
				if err := r.st.SetPause(ctx, store.PauseState{Paused: true, By: "carol", Reason: "incident review"}); err != nil {
					t.Fatal(err)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env, ns := demo(t)
			s := setup{files: []string{"restart.yaml"}, store: openStore(t)}
			tt.setup(t, newRig(t, env, ns, s), &s) // a rig for its admin client and store
			r := newRig(t, env, ns, s)
			before := settle(t, r)
			r.start("worker-a")
			id := r.fire(r.alert("RestartNeeded"))
			r.waitFor(id, executor.EventEscalated)
			evs := r.quiet(id, time.Second)
			wantTypes(t, evs, blockedTimeline...)
			b := one(t, evs, executor.EventBlocked)
			if g := detail[string](t, b, "guard"); g != tt.guard || !strings.Contains(b.Reason, tt.why) {
				t.Errorf("blocked by %s: %s; want %s: …%s…", g, b.Reason, tt.guard, tt.why)
			}
			if xs := r.executions(id); len(xs) != 0 {
				t.Fatalf("executions %+v", xs)
			}
			if after := settle(t, r); after != before {
				t.Fatalf("a blocked plan changed the cluster: %+v → %+v", before, after)
			}
			if n := counter(t, r, "restart", "blocked", "enforce"); n != 1 {
				t.Errorf("remediator_actions_total{restart,blocked,enforce} = %v", n)
			}
		})
	}

	// Cooldown: a second incident on the same target right after the
	// first's action (verified: no longer holding the lock) is blocked.
	t.Run("cooldown", func(t *testing.T) {
		t.Parallel()
		env, ns := demo(t)
		r := newRig(t, env, ns, setup{files: []string{"restart.yaml"}})
		r.start("worker-a")
		first := r.alert("RestartNeeded")
		id1 := r.fire(first)
		r.waitFor(id1, executor.EventRolledOut)
		r.resolve(first)
		r.waitFor(id1, executor.EventVerified)
		before := settle(t, r)

		second := r.alert("RestartNeeded")
		second.StartsAt = first.StartsAt.Add(30 * time.Second) // a new episode of the same alert
		id2 := r.fire(second)
		if id2 == id1 {
			t.Fatal("the second episode is the first incident")
		}
		r.waitFor(id2, executor.EventEscalated)
		evs := r.quiet(id2, time.Second)
		wantTypes(t, evs, blockedTimeline...)
		b := one(t, evs, executor.EventBlocked)
		if g := detail[string](t, b, "guard"); g != guard.GuardCooldown || !strings.Contains(b.Reason, "cooldown is 30m0s") {
			t.Errorf("blocked by %s: %s", g, b.Reason)
		}
		if after := settle(t, r); after != before {
			t.Fatalf("the blocked second action changed the cluster: %+v → %+v", before, after)
		}
		if xs := r.executions(id2); len(xs) != 0 {
			t.Fatalf("executions of the second incident: %+v", xs)
		}
	})
}

// withoutVerb removes verb from every rule.
func withoutVerb(rules []rbacv1.PolicyRule, verb string) []rbacv1.PolicyRule {
	out := make([]rbacv1.PolicyRule, 0, len(rules))
	for _, r := range rules {
		r = *r.DeepCopy()
		var verbs []string
		for _, v := range r.Verbs {
			if v != verb {
				verbs = append(verbs, v)
			}
		}
		if len(verbs) == 0 {
			continue
		}
		r.Verbs = verbs
		out = append(out, r)
	}
	return out
}

// RBAC: the remediator holds everything the probes and actions declare but
// the patch verb → the restart's pre-flight access review refuses it:
// blocked, escalated, nothing changed.
func TestRBACWithoutPatch(t *testing.T) {
	t.Parallel()
	env := testbed.Get(t)
	env, ns := demo(t, withoutVerb(allRules(env.RemediatorClient()), "patch")...)
	r := newRig(t, env, ns, setup{files: []string{"restart.yaml"}})
	before := settle(t, r)
	r.start("worker-a")
	id := r.fire(r.alert("RestartNeeded"))
	r.waitFor(id, executor.EventEscalated)
	evs := r.quiet(id, time.Second)
	wantTypes(t, evs, blockedTimeline...)
	b := one(t, evs, executor.EventBlocked)
	if g := detail[string](t, b, "guard"); g != "rbac" || !strings.Contains(b.Reason, "cannot patch deployments") {
		t.Errorf("blocked by %s: %s", g, b.Reason)
	}
	if e := one(t, evs, executor.EventEscalated); !strings.Contains(e.Reason, "blocked by pre-flight") {
		t.Errorf("escalated: %s", e.Reason)
	}
	if xs := r.executions(id); len(xs) != 0 {
		t.Fatalf("executions %+v", xs)
	}
	if after := settle(t, r); after != before {
		t.Fatalf("the blocked plan changed the cluster: %+v → %+v", before, after)
	}
}
