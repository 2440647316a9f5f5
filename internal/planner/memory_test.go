package planner

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/remediator/remediator/internal/action"
	"github.com/remediator/remediator/internal/policy"
	"github.com/remediator/remediator/internal/probe"
	"github.com/remediator/remediator/internal/testbed"
)

// HighMemoryUsage on the bed: one of three pods had a container
// OOMKilled (set through the pod status subresource, as the kubelet
// would) → the plan deletes the OOMKilled pods, at priority P2 for a
// warning. With most pods not ready, deleting would go below the healthy
// bound, so the plan escalates instead.
func TestPlanHighMemoryUsageOnTheBed(t *testing.T) {
	env, ns := demoNamespace(t)
	ctx := context.Background()
	admin := env.AdminClient()
	pods, err := testbed.ReadyPods(ctx, admin, ns, "app="+testbed.DemoDeployment)
	if err != nil || len(pods) != 3 {
		t.Fatalf("pods: %v %d", err, len(pods))
	}
	setStatus := func(p corev1.Pod, oom, ready bool) {
		t.Helper()
		h := testbed.PodHealth{Ready: ready}
		if oom {
			h = testbed.PodHealth{Ready: ready, Restarts: 2, LastTermination: "OOMKilled", LastExitCode: 137}
		}
		if err := testbed.SetPodHealth(ctx, admin, ns, p.Name, h); err != nil {
			t.Fatal(err)
		}
	}
	set := shippedPolicies(t, "127.0.0.1:1")
	p := &Planner{Policies: func() *policy.Set { return set }, Probes: probe.New(probe.Config{Kube: env.RemediatorClient()}),
		Kube: env.RemediatorClient(), Actions: action.New(env.RemediatorClient())}
	a := alert("HighMemoryUsage", ns)
	a.Labels["severity"] = "warning"

	setStatus(pods[0], true, true)
	plan, err := p.Plan(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	if d := plan.Decision; plan.Policy != "high-memory-usage" || d.Remedy != "delete-oom-killed-pods" || d.Action != "delete-pod" || d.Priority != "P2" {
		t.Fatalf("one OOMKilled pod: %+v %+v", plan, d)
	}
	if c := plan.Change; c == nil || c.DeletePod == nil || c.DeletePod.Pod != pods[0].Name || len(plan.Blocks) != 0 {
		t.Fatalf("change %+v blocks %v error %q", c, plan.Blocks, plan.ChangeError)
	}

	setStatus(pods[1], false, false)
	setStatus(pods[2], false, false)
	plan, err = p.Plan(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	if d := plan.Decision; d.Action != "escalate" || !d.Escalated {
		t.Fatalf("most pods not ready: %+v", d)
	}
}
