package executor_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/remediator/remediator/internal/action"
	"github.com/remediator/remediator/internal/executor"
	"github.com/remediator/remediator/internal/incident"
	"github.com/remediator/remediator/internal/probe"
	"github.com/remediator/remediator/internal/store"
	"github.com/remediator/remediator/internal/testbed"
)

// The three runbook remedies end to end, each first in dry-run and then in
// enforce on the same namespace: dry-run records a proposal and changes
// nothing (the Deployment's and the HPA's resourceVersions are unchanged
// once settled); enforce then applies exactly the change dry-run proposed,
// waits for its rollout, and records the alert's resolution as verified.

// Timeline of a dry-run incident whose plan is proposed.
var proposedTimeline = []string{incident.EventReceived, "matched", "diagnosed", "planned", executor.EventProposed}

// Timeline of an enforce incident that was remediated and then resolved.
var remediatedTimeline = []string{incident.EventReceived, "matched", "diagnosed", "planned",
	executor.EventIntent, executor.EventApplied, executor.EventRolledOut, incident.EventResolved, executor.EventVerified}

// dryRun fires a in dry-run mode and returns the proposed change, after
// checking that nothing on the cluster changed.
func dryRun(t *testing.T, r *rig, a alert) action.Change {
	t.Helper()
	before := settle(t, r)
	stop := r.start("dry-run-worker")
	id := r.fire(a)
	r.waitFor(id, executor.EventProposed)
	evs := r.quiet(id, time.Second)
	stop()
	wantTypes(t, evs, proposedTimeline...)
	p := one(t, evs, executor.EventProposed)
	if mode := detail[string](t, p, "mode"); mode != "dry-run" || !strings.Contains(p.Reason, "dry-run: would ") {
		t.Errorf("proposed event: mode %q reason %q", mode, p.Reason)
	}
	if xs := r.executions(id); len(xs) != 0 {
		t.Fatalf("dry-run wrote executions: %+v", xs)
	}
	props, err := r.st.Proposals(context.Background(), id)
	if err != nil || len(props) != 1 || props[0].State != store.ProposalPending {
		t.Fatalf("proposals %+v, %v", props, err)
	}
	if after := settle(t, r); after != before {
		t.Fatalf("dry-run changed the cluster: resourceVersions %+v before, %+v after", before, after)
	}
	return detail[action.Change](t, p, "change")
}

// enforce fires a in enforce mode, waits for the change's rollout, checks
// that the change applied is the one proposed in dry-run, resolves the
// alert and waits for the verification. It returns the timeline and the
// change.
func enforce(t *testing.T, r *rig, a alert, proposed action.Change) (string, action.Change) {
	t.Helper()
	r.start("worker-a")
	id := r.fire(a)
	r.waitFor(id, executor.EventRolledOut)
	ch := detail[action.Change](t, one(t, r.timeline(id), executor.EventIntent), "change")
	if got, want := comparable(t, ch), comparable(t, proposed); got != want {
		t.Errorf("enforce applied another change than dry-run proposed:\n applied  %s\n proposed %s", got, want)
	}
	xs := r.executions(id)
	if len(xs) != 1 || xs[0].State != store.ExecApplied || xs[0].Action != ch.Action || xs[0].Mode != "enforce" || xs[0].Owner != "replica-a" {
		t.Fatalf("executions %+v", xs)
	}
	r.resolve(a)
	r.waitFor(id, executor.EventVerified)
	evs := r.quiet(id, 500*time.Millisecond)
	wantTypes(t, evs, remediatedTimeline...)
	if xs := r.executions(id); len(xs) != 1 || xs[0].State != store.ExecVerified {
		t.Fatalf("executions after the alert resolved: %+v", xs)
	}
	return id, ch
}

// A bad rollout (revision 2, a new image, its pods logging errors) →
// HighErrorRate → rollback to revision 1; the Deployment runs the previous
// image again.
func TestRollbackOfABadRollout(t *testing.T) {
	t.Parallel()
	env, ns := demo(t)
	s := setup{files: []string{"high-error-rate.yaml"}}

	dry := newRig(t, env, ns, setup{mode: "dry-run", files: s.files})
	badRollout(t, dry)
	if rev := dry.deployment().Annotations["deployment.kubernetes.io/revision"]; rev != "2" {
		t.Fatalf("revision %s after the bad rollout", rev)
	}
	proposed := dryRun(t, dry, dry.alert("HighErrorRate"))
	if proposed.Rollback == nil || proposed.Rollback.FromRevision != 2 || proposed.Rollback.ToRevision != 1 {
		t.Fatalf("proposed %+v", proposed)
	}

	r := newRig(t, env, ns, s)
	id, ch := enforce(t, r, r.alert("HighErrorRate"), proposed)
	d := r.deployment()
	if img := d.Spec.Template.Spec.Containers[0].Image; img != "registry.example/platform-service:v1.0.0" {
		t.Errorf("deployment runs %s after the rollback", img)
	}
	if rev := d.Annotations["deployment.kubernetes.io/revision"]; rev != "3" {
		t.Errorf("revision %s after the rollback, want 3 (revision 1's template again)", rev)
	}
	if ch.Rollback == nil || ch.Rollback.ToImages["platform-service"] != "registry.example/platform-service:v1.0.0" {
		t.Errorf("change %+v", ch)
	}
	applied := one(t, r.timeline(id), executor.EventApplied)
	if !strings.Contains(applied.Reason, "rolled back from revision 2 to revision 1") || applied.Actor != incident.ActorService {
		t.Errorf("applied event: %q by %s", applied.Reason, applied.Actor)
	}
	if ms := detail[int64](t, applied, "timeToRemediateMs"); ms <= 0 {
		t.Errorf("timeToRemediateMs %d", ms)
	}

	// Metrics: one rollback applied in enforce, one time-to-remediate sample.
	if n := counter(t, r, "rollback", "applied", "enforce"); n != 1 {
		t.Errorf("remediator_actions_total{rollback,applied,enforce} = %v, want 1", n)
	}
	if n := counter(t, r, "rollback", "verified", "enforce"); n != 1 {
		t.Errorf("remediator_actions_total{rollback,verified,enforce} = %v, want 1", n)
	}
	if n := histogramCount(t, r, "remediator_time_to_remediate_seconds"); n != 1 {
		t.Errorf("remediator_time_to_remediate_seconds has %d samples, want 1", n)
	}
	if n := counter(t, dry, "rollback", "proposed", "dry-run"); n != 1 {
		t.Errorf("dry-run remediator_actions_total{rollback,proposed,dry-run} = %v, want 1", n)
	}
	if n := histogramCount(t, dry, "remediator_time_to_remediate_seconds"); n != 0 {
		t.Errorf("dry-run observed time to remediate %d times", n)
	}
}

// The metrics are read from the rig's registry as Prometheus would scrape
// them. (prometheus/testutil would need github.com/kylelemons/godebug added
// to go.mod; reading the registry needs nothing more.)

// counter is remediator_actions_total{action,outcome,mode}.
func counter(t *testing.T, r *rig, act, outcome, mode string) float64 {
	t.Helper()
	mfs, err := r.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "remediator_actions_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, p := range m.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			if l["action"] == act && l["outcome"] == outcome && l["mode"] == mode {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func histogramCount(t *testing.T, r *rig, name string) uint64 {
	t.Helper()
	mfs, err := r.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			var n uint64
			for _, m := range mf.GetMetric() {
				n += m.GetHistogram().GetSampleCount()
			}
			return n
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// Saturation (pods near their CPU limit) without a rollout in progress →
// HighLatency → scale out. The HPA manages the Deployment, so its
// minReplicas is raised (3 → 5), and the HPA controller scales up.
func TestScaleOutThroughTheHPA(t *testing.T) {
	t.Parallel()
	env, ns := demo(t)
	// The bed serves no metrics.k8s.io: the resources probe alone returns
	// fixed evidence (saturated); every other probe reads the bed.
	s := setup{files: []string{"high-latency.yaml"}, fixed: map[string]probe.Evidence{"resources": saturated}}

	dry := newRig(t, env, ns, setup{mode: "dry-run", files: s.files, fixed: s.fixed})
	proposed := dryRun(t, dry, dry.alert("HighLatency"))

	r := newRig(t, env, ns, s)
	id, ch := enforce(t, r, r.alert("HighLatency"), proposed)
	if sc := ch.Scale; sc == nil || !sc.ViaHPA || sc.HPA != deployment || sc.Field != "spec.minReplicas" || sc.From != 3 || sc.To != 5 {
		t.Fatalf("change %+v %+v", ch, ch.Scale)
	}
	// The execution record says so too.
	var recorded action.Change
	if err := json.Unmarshal(r.executions(id)[0].Change, &recorded); err != nil || recorded.Scale == nil || !recorded.Scale.ViaHPA {
		t.Errorf("execution record's change %s (%v)", r.executions(id)[0].Change, err)
	}
	if h := r.hpa(); h.Spec.MinReplicas == nil || *h.Spec.MinReplicas != 5 {
		t.Errorf("HPA minReplicas %v, want 5", h.Spec.MinReplicas)
	}
	d := r.deployment()
	if *d.Spec.Replicas != 5 || d.Status.AvailableReplicas != 5 {
		t.Errorf("deployment replicas %d, available %d; want 5 (the HPA scaled up)", *d.Spec.Replicas, d.Status.AvailableReplicas)
	}
}

// One of three pods was OOMKilled (set through the pod status subresource,
// as the kubelet would: kwok does not simulate OOM kills) → HighMemoryUsage
// → that pod is evicted, leaving at least the min-healthy bound ready, and
// the Deployment replaces it.
func TestDeleteOOMKilledPod(t *testing.T) {
	t.Parallel()
	env, ns := demo(t)
	s := setup{files: []string{"high-memory-usage.yaml"}}
	dry := newRig(t, env, ns, setup{mode: "dry-run", files: s.files})
	ctx := context.Background()
	pods, err := testbed.ReadyPods(ctx, dry.admin, ns, "app="+deployment)
	if err != nil || len(pods) != 3 {
		t.Fatalf("pods: %v (%d)", err, len(pods))
	}
	oom := pods[0]
	if err := testbed.SetPodHealth(ctx, dry.admin, ns, oom.Name,
		testbed.PodHealth{Ready: true, Restarts: 2, LastTermination: "OOMKilled", LastExitCode: 137}); err != nil {
		t.Fatal(err)
	}
	proposed := dryRun(t, dry, dry.alert("HighMemoryUsage"))
	if p := proposed.DeletePod; p == nil || p.Pod != oom.Name || p.UID != string(oom.UID) {
		t.Fatalf("proposed %+v", proposed)
	}

	r := newRig(t, env, ns, s)
	_, ch := enforce(t, r, r.alert("HighMemoryUsage"), proposed)
	p := ch.DeletePod
	if p.MinReady != 2 || p.ReadyAfter < p.MinReady || p.ReadyPods != 3 {
		t.Errorf("delete-pod change outside the min-healthy bound: %+v", p)
	}
	ready, err := testbed.ReadyPods(ctx, r.admin, ns, "app="+deployment)
	if err != nil {
		t.Fatal(err)
	}
	if len(ready) != 3 {
		t.Errorf("%d ready pods after the replacement, want 3", len(ready))
	}
	for _, q := range ready {
		if q.UID == oom.UID {
			t.Errorf("the OOMKilled pod %s is still there", oom.Name)
		}
	}
}
