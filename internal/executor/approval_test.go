package executor_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/remediator/remediator/internal/executor"
	"github.com/remediator/remediator/internal/incident"
	"github.com/remediator/remediator/internal/probe"
	"github.com/remediator/remediator/internal/store"
)

// The approval tier: a dry-run proposal (HighLatency → scale through the
// HPA) is approved, rejected, approved twice, or left to expire, through
// Executor.Decide as the API calls it.
func TestApproval(t *testing.T) {
	t.Parallel()
	// The bed serves no metrics.k8s.io: the resources probe alone returns
	// fixed evidence (saturated).
	fixedResources := map[string]probe.Evidence{"resources": saturated}

	// proposal starts a dry-run rig on a fresh namespace and fires
	// HighLatency; it returns the rig, the incident and the resourceVersions
	// before anything was decided.
	proposal := func(t *testing.T, vars map[string]string) (*rig, string, versions, func()) {
		env, ns := demo(t)
		r := newRig(t, env, ns, setup{mode: "dry-run", files: []string{"high-latency.yaml"}, vars: vars, fixed: fixedResources})
		before := settle(t, r)
		stop := r.start("worker-a")
		id := r.fire(r.alert("HighLatency"))
		r.waitFor(id, executor.EventProposed)
		return r, id, before, stop
	}
	ctx := context.Background()

	t.Run("approve applies the proposal as alice; twice is a conflict", func(t *testing.T) {
		t.Parallel()
		r, id, _, _ := proposal(t, nil)
		p, err := r.exec.Decide(ctx, id, true, "alice", "looks right")
		if err != nil || p.State != store.ProposalApproved || p.DecidedBy != "alice" {
			t.Fatalf("approve: %+v, %v", p, err)
		}
		r.waitFor(id, executor.EventRolledOut)
		evs := r.timeline(id)
		wantTypes(t, evs, incident.EventReceived, "matched", "diagnosed", "planned", executor.EventProposed,
			executor.EventApproved, executor.EventIntent, executor.EventApplied, executor.EventRolledOut)
		for _, typ := range []string{executor.EventApproved, executor.EventIntent, executor.EventApplied} {
			if e := one(t, evs, typ); e.Actor != "alice" {
				t.Errorf("%s event by %q, want alice", typ, e.Actor)
			}
		}
		proposed := detail[string](t, one(t, evs, executor.EventProposed), "proposal")
		if got := detail[string](t, one(t, evs, executor.EventIntent), "proposal"); got != proposed {
			t.Errorf("intent of proposal %q, want %q", got, proposed)
		}
		if h := r.hpa(); *h.Spec.MinReplicas != 5 {
			t.Errorf("HPA minReplicas %d after the approved scale, want 5", *h.Spec.MinReplicas)
		}
		xs := r.executions(id)
		if len(xs) != 1 || xs[0].Mode != "enforce" || xs[0].State != store.ExecApplied {
			t.Fatalf("executions %+v", xs)
		}
		// A person's approval is not an automatic remediation.
		if n := histogramCount(t, r, "remediator_time_to_remediate_seconds"); n != 0 {
			t.Errorf("time to remediate observed %d times for an approved change", n)
		}

		p, err = r.exec.Decide(ctx, id, true, "bob", "")
		if !errors.Is(err, store.ErrConflict) || p.State != store.ProposalApproved || p.DecidedBy != "alice" {
			t.Fatalf("second approval: %+v, %v; want ErrConflict", p, err)
		}
		if xs := r.executions(id); len(xs) != 1 {
			t.Fatalf("%d executions after a second approval", len(xs))
		}
	})

	t.Run("reject changes nothing", func(t *testing.T) {
		t.Parallel()
		r, id, before, _ := proposal(t, nil)
		p, err := r.exec.Decide(ctx, id, false, "bob", "not now")
		if err != nil || p.State != store.ProposalRejected || p.DecidedBy != "bob" {
			t.Fatalf("reject: %+v, %v", p, err)
		}
		evs := r.quiet(id, 2*time.Second)
		wantTypes(t, evs, incident.EventReceived, "matched", "diagnosed", "planned", executor.EventProposed, executor.EventRejected)
		if e := one(t, evs, executor.EventRejected); e.Actor != "bob" {
			t.Errorf("rejected by %q", e.Actor)
		}
		if _, err := r.exec.Decide(ctx, id, true, "alice", ""); !errors.Is(err, store.ErrConflict) {
			t.Errorf("approving a rejected proposal: %v, want ErrConflict", err)
		}
		if xs := r.executions(id); len(xs) != 0 {
			t.Fatalf("executions after a rejection: %+v", xs)
		}
		if after := settle(t, r); after != before {
			t.Fatalf("a rejected proposal changed the cluster: %+v → %+v", before, after)
		}
	})

	t.Run("an approval meets the guards again", func(t *testing.T) {
		t.Parallel()
		r, id, before, _ := proposal(t, nil)
		// Paused after the proposal, before the approval runs.
		if err := r.st.SetPause(ctx, store.PauseState{Paused: true, By: "carol", Reason: "freeze"}); err != nil {
			t.Fatal(err)
		}
		if _, err := r.exec.Decide(ctx, id, true, "alice", ""); err != nil {
			t.Fatal(err)
		}
		r.waitFor(id, executor.EventEscalated)
		evs := r.quiet(id, time.Second)
		wantTypes(t, evs, incident.EventReceived, "matched", "diagnosed", "planned", executor.EventProposed,
			executor.EventApproved, executor.EventBlocked, executor.EventEscalated)
		if g := detail[string](t, one(t, evs, executor.EventBlocked), "guard"); g != "pause" {
			t.Errorf("blocked by %s", g)
		}
		// At the incident's priority (critical: P0), as proposed.
		if pr := detail[string](t, one(t, evs, executor.EventEscalated), "priority"); pr != "P0" {
			t.Errorf("escalated at %s, want P0", pr)
		}
		if xs := r.executions(id); len(xs) != 0 {
			t.Fatalf("executions %+v", xs)
		}
		if after := settle(t, r); after != before {
			t.Fatalf("a blocked approval changed the cluster: %+v → %+v", before, after)
		}
	})

	t.Run("an expired proposal cannot be approved", func(t *testing.T) {
		t.Parallel()
		r, id, before, stop := proposal(t, map[string]string{"$APPROVAL_EXPIRY": "2s"})
		// No worker while the proposal expires, so that the approval
		// meets an expired proposal still pending (not the expiry job's
		// decision).
		stop()
		props, err := r.st.Proposals(ctx, id)
		if err != nil || len(props) != 1 {
			t.Fatalf("proposals %+v, %v", props, err)
		}
		time.Sleep(time.Until(props[0].ExpiresAt) + 100*time.Millisecond)
		p, err := r.exec.Decide(ctx, id, true, "alice", "")
		if !errors.Is(err, store.ErrExpired) || p.State != store.ProposalPending {
			t.Fatalf("approving after expiry: %+v, %v; want ErrExpired", p, err)
		}
		// The expiry job records it.
		r.start("worker-b")
		r.waitFor(id, executor.EventExpired)
		evs := r.quiet(id, time.Second)
		wantTypes(t, evs, incident.EventReceived, "matched", "diagnosed", "planned", executor.EventProposed, executor.EventExpired)
		if p, err := r.st.Proposal(ctx, props[0].ID); err != nil || p.State != store.ProposalExpired {
			t.Fatalf("proposal %+v, %v", p, err)
		}
		if _, err := r.exec.Decide(ctx, id, true, "alice", ""); !errors.Is(err, store.ErrConflict) {
			t.Errorf("approving an expired proposal: %v, want ErrConflict", err)
		}
		if xs := r.executions(id); len(xs) != 0 {
			t.Fatalf("executions: %+v", xs)
		}
		if after := settle(t, r); after != before {
			t.Fatalf("an expired proposal changed the cluster: %+v → %+v", before, after)
		}
	})
}
