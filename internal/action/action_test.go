package action

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/remediator/remediator/internal/probe"
	"github.com/remediator/remediator/internal/testbed"
)

func TestMain(m *testing.M) { testbed.Main(m) }

const demoImage = "registry.example/platform-service:v1.0.0"

// bed is a fresh namespace running the demo, with the remediator granted
// exactly what the action under test declares it needs.
type bed struct {
	env    *testbed.Env
	ns     string
	admin  kubernetes.Interface
	action Action
	target probe.Target
	// writes counts the write requests of the action's client (selfsubject
	// access reviews excepted).
	writes *writeCounter
}

func newBed(t *testing.T, name string) *bed {
	t.Helper()
	env := testbed.Get(t)
	ns := env.NewNamespace()
	env.ApplyDemo(ns)
	cfg := env.RemediatorConfig()
	wc := &writeCounter{}
	cfg.Wrap(wc.wrap)
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	a := New(kube)[name]
	if a == nil {
		t.Fatalf("no action %q", name)
	}
	env.GrantRemediator(ns, Rules(a)...)
	return &bed{env: env, ns: ns, admin: env.AdminClient(), action: a, writes: wc,
		target: probe.Target{Namespace: ns, Kind: "Deployment", Name: testbed.DemoDeployment}}
}

// versions are the resourceVersions of the demo's Deployment and HPA ("" if
// the HPA is gone).
func (b *bed) versions(t *testing.T) [2]string {
	t.Helper()
	ctx := context.Background()
	d, err := b.admin.AppsV1().Deployments(b.ns).Get(ctx, testbed.DemoDeployment, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := [2]string{d.ResourceVersion}
	h, err := b.admin.AutoscalingV2().HorizontalPodAutoscalers(b.ns).Get(ctx, testbed.DemoDeployment, metav1.GetOptions{})
	switch {
	case err == nil:
		out[1] = h.ResourceVersion
	case !apierrors.IsNotFound(err):
		t.Fatal(err)
	}
	return out
}

// settle waits until the controllers have stopped updating the Deployment
// and HPA (their status follows pod changes made by the test) and returns
// their resourceVersions.
func (b *bed) settle(t *testing.T) [2]string {
	t.Helper()
	last, since := b.versions(t), time.Now()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		if v := b.versions(t); v != last {
			last, since = v, time.Now()
		} else if time.Since(since) >= time.Second {
			return last
		}
	}
	t.Fatalf("deployment/HPA of %s keep changing", b.ns)
	return last
}

// planAndCheck runs Plan and, when it succeeds, Check, and asserts that
// neither changed the Deployment or the HPA.
func (b *bed) planAndCheck(t *testing.T, p Params) (Change, []Block, error) {
	t.Helper()
	ctx := context.Background()
	before := b.settle(t)
	c, err := b.action.Plan(ctx, b.target, p)
	var blocks []Block
	if err == nil {
		blocks = b.action.Check(ctx, b.target, c)
	}
	if after := b.versions(t); after != before {
		t.Fatalf("Plan/Check changed objects: resourceVersions %v → %v", before, after)
	}
	if err == nil {
		if _, jerr := json.Marshal(c); jerr != nil {
			t.Fatalf("change not JSON-serialisable: %v", jerr)
		}
		t.Logf("plan: %s", c.Summary)
	}
	return c, blocks, err
}

func (b *bed) setImage(t *testing.T, image string, pause bool) {
	t.Helper()
	ctx := context.Background()
	d, err := b.admin.AppsV1().Deployments(b.ns).Get(ctx, testbed.DemoDeployment, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	d.Spec.Template.Spec.Containers[0].Image = image
	d.Spec.Paused = pause
	if _, err := b.admin.AppsV1().Deployments(b.ns).Update(ctx, d, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if !pause {
		if err := testbed.WaitForRollout(ctx, b.admin, b.ns, testbed.DemoDeployment, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
}

func mustPass(t *testing.T, blocks []Block) {
	t.Helper()
	if len(blocks) != 0 {
		t.Fatalf("pre-flight should pass, got %v", blocks)
	}
}

func mustRefuse(t *testing.T, err error, want string) {
	t.Helper()
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), want) {
		t.Fatalf("want a refusal mentioning %q, got %v", want, err)
	}
}

func TestRollbackOnTheBed(t *testing.T) {
	b := newBed(t, "rollback")

	_, _, err := b.planAndCheck(t, nil)
	mustRefuse(t, err, "no revision before 1")

	const bad = "registry.example/platform-service:v1.1.0"
	b.setImage(t, bad, false)

	for _, tc := range []struct {
		name    string
		params  Params
		refused string
	}{
		{name: "previous", params: nil},
		{name: "explicit", params: Params{"toRevision": int64(1)}},
		{name: "current", params: Params{"toRevision": int64(2)}, refused: "already the current revision"},
		{name: "unknown", params: Params{"toRevision": int64(7)}, refused: "revision 7"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, blocks, err := b.planAndCheck(t, tc.params)
			if tc.refused != "" {
				mustRefuse(t, err, tc.refused)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			mustPass(t, blocks)
			r := c.Rollback
			if c.Action != "rollback" || r == nil || r.FromRevision != 2 || r.ToRevision != 1 ||
				r.FromImages["platform-service"] != bad || r.ToImages["platform-service"] != demoImage {
				t.Fatalf("change: %+v %+v", c, r)
			}
			if !strings.Contains(c.Summary, "revision 2 → 1") || !strings.Contains(c.Summary, bad+" → "+demoImage) {
				t.Fatalf("summary: %s", c.Summary)
			}
			// A plan made against another revision is stale.
			old := *c.Rollback
			old.FromRevision = 5
			c.Rollback = &old
			bl := b.action.Check(context.Background(), b.target, c)
			if len(bl) != 1 || bl[0].Guard != GuardPreflight || !strings.Contains(bl[0].Reason, "stale") {
				t.Fatalf("stale plan: %v", bl)
			}
		})
	}
}

func TestScaleOnTheBed(t *testing.T) {
	b := newBed(t, "scale")
	cases := []struct {
		name     string
		params   Params
		from, to int32
		refused  string
	}{
		{name: "step", params: Params{"step": int64(2)}, from: 3, to: 5},
		{name: "step capped by max", params: Params{"step": int64(2), "max": int64(4)}, from: 3, to: 4},
		{name: "replicas", params: Params{"replicas": int64(6)}, from: 3, to: 6},
		{name: "no increase", params: Params{"replicas": int64(3)}, refused: "would not increase"},
		{name: "max below current", params: Params{"step": int64(1), "max": int64(2)}, refused: "would not increase"},
	}
	run := func(t *testing.T, viaHPA bool, extra ...struct {
		name     string
		params   Params
		from, to int32
		refused  string
	}) {
		for _, tc := range append(cases, extra...) {
			t.Run(tc.name, func(t *testing.T) {
				c, blocks, err := b.planAndCheck(t, tc.params)
				if tc.refused != "" {
					mustRefuse(t, err, tc.refused)
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				mustPass(t, blocks)
				s := c.Scale
				if s == nil || s.ViaHPA != viaHPA || s.From != tc.from || s.To != tc.to {
					t.Fatalf("change: %+v %+v", c, s)
				}
				if tc.to == 10 && viaHPA && (!s.Capped || s.CappedBy != "HPA maxReplicas") {
					t.Fatalf("not capped by the HPA: %+v", s)
				}
				if viaHPA != strings.Contains(c.Summary, "via HPA minReplicas") {
					t.Fatalf("summary: %s", c.Summary)
				}
			})
		}
	}
	t.Run("hpa", func(t *testing.T) {
		run(t, true, struct {
			name     string
			params   Params
			from, to int32
			refused  string
		}{name: "capped by HPA maxReplicas", params: Params{"step": int64(50)}, from: 3, to: 10})
	})

	if err := b.admin.AutoscalingV2().HorizontalPodAutoscalers(b.ns).Delete(context.Background(),
		testbed.DemoDeployment, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Run("no hpa", func(t *testing.T) {
		run(t, false, struct {
			name     string
			params   Params
			from, to int32
			refused  string
		}{name: "unbounded without HPA", params: Params{"step": int64(50)}, from: 3, to: 53})
	})

	if _, err := b.action.Plan(context.Background(), b.target, Params{"step": int64(1), "replicas": int64(4)}); err == nil {
		t.Fatal("both step and replicas: want an error")
	}
}

func TestRestartAndCheckOnTheBed(t *testing.T) {
	b := newBed(t, "restart")
	ctx := context.Background()
	now := time.Date(2026, 11, 26, 4, 0, 0, 0, time.UTC)
	b.action.(*Restart).now = func() time.Time { return now }

	c, blocks, err := b.planAndCheck(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	mustPass(t, blocks)
	if r := c.Restart; r == nil || r.Annotation != "kubectl.kubernetes.io/restartedAt" || r.To != "2026-11-26T04:00:00Z" ||
		!strings.Contains(c.Summary, r.To) {
		t.Fatalf("change: %+v %+v", c, c.Restart)
	}

	// A missing target is a pre-flight block.
	missing := b.target
	missing.Name = "no-such-deployment"
	if bl := b.action.Check(ctx, missing, c); len(bl) != 1 || bl[0].Guard != GuardPreflight || !strings.Contains(bl[0].Reason, "not found") {
		t.Fatalf("missing deployment: %v", bl)
	}

	// Without patch on deployments, Check names the missing permission.
	b.env.GrantRemediator(b.ns, rbacv1.PolicyRule{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: []string{"get"}})
	var got []Block
	deadline := time.Now().Add(30 * time.Second)
	for {
		got = b.action.Check(ctx, b.target, c)
		if len(got) > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(got) != 1 || got[0].Guard != GuardRBAC || !strings.Contains(got[0].Reason, "cannot patch deployments in namespace "+b.ns) {
		t.Fatalf("without patch deployments: %v", got)
	}
	b.env.GrantRemediator(b.ns, Rules(b.action)...)
}

func TestCheckRolloutInProgressOnTheBed(t *testing.T) {
	b := newBed(t, "scale")
	// A paused Deployment with a new image: the rollout cannot finish.
	b.setImage(t, "registry.example/platform-service:v1.2.0", true)
	deadline := time.Now().Add(30 * time.Second)
	for {
		blocks := b.action.Check(context.Background(), b.target, Change{})
		if len(blocks) == 1 && blocks[0].Guard == GuardPreflight && strings.Contains(blocks[0].Reason, "rollout in progress") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("want a rollout-in-progress block, got %v", blocks)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Restart and rollback also refuse a paused Deployment.
	rb := New(b.env.RemediatorClient())["restart"]
	found := false
	for _, bl := range rb.Check(context.Background(), b.target, Change{}) {
		found = found || (bl.Guard == GuardPreflight && strings.Contains(bl.Reason, "paused"))
	}
	if !found {
		t.Fatal("restart of a paused deployment: want a paused block")
	}
}

func TestDeletePodOnTheBed(t *testing.T) {
	b := newBed(t, "delete-pod")
	ctx := context.Background()
	pods, err := testbed.ReadyPods(ctx, b.admin, b.ns, "app="+testbed.DemoDeployment)
	if err != nil || len(pods) != 3 {
		t.Fatalf("pods: %v %d", err, len(pods))
	}
	setStatus := func(p corev1.Pod, oom, ready bool) {
		t.Helper()
		h := testbed.PodHealth{Ready: ready}
		if oom {
			h = testbed.PodHealth{Ready: ready, Restarts: 2, LastTermination: "OOMKilled", LastExitCode: 137}
		}
		if err := testbed.SetPodHealth(ctx, b.admin, b.ns, p.Name, h); err != nil {
			t.Fatal(err)
		}
	}

	_, _, err = b.planAndCheck(t, nil)
	mustRefuse(t, err, "no OOMKilled or crash-looping pod")

	setStatus(pods[0], true, true)
	c, blocks, err := b.planAndCheck(t, Params{"reason": "OOMKilled"})
	if err != nil {
		t.Fatal(err)
	}
	mustPass(t, blocks)
	if d := c.DeletePod; d == nil || d.Pod != pods[0].Name || d.ReadyPods != 3 || d.ReadyAfter != 2 || d.MinReady != 2 || d.Reason != "OOMKilled" {
		t.Fatalf("change: %+v %+v", c, c.DeletePod)
	}
	// A stricter bound refuses: 3 ready, 1 deleted, 100% of 3 needed.
	_, _, err = b.planAndCheck(t, Params{"minHealthyPercent": int64(100)})
	mustRefuse(t, err, "below the min-healthy bound 3")

	setStatus(pods[1], false, false)
	setStatus(pods[2], false, false)
	_, _, err = b.planAndCheck(t, nil)
	mustRefuse(t, err, "would leave 0 ready pods, below the min-healthy bound 2")
}

func TestEscalate(t *testing.T) {
	a := New(nil)["escalate"]
	if len(a.Needs()) != 0 {
		t.Fatalf("escalate needs %v", a.Needs())
	}
	tg := probe.Target{Namespace: "shop", Kind: "Deployment", Name: "platform-service"}
	for _, tc := range []struct {
		params Params
		want   string
	}{
		{nil, "no change: hand to people (by priority)"},
		{Params{"to": "oncall-payments"}, "no change: hand to people (oncall-payments)"},
	} {
		c, err := a.Plan(context.Background(), tg, tc.params)
		if err != nil || c.Summary != tc.want || c.Action != "escalate" || c.Target != tg {
			t.Fatalf("plan: %+v %v", c, err)
		}
		if bl := a.Check(context.Background(), tg, c); len(bl) != 0 {
			t.Fatalf("check: %v", bl)
		}
	}
}

func TestRulesAndNeeds(t *testing.T) {
	all := New(nil)
	for _, name := range []string{"rollback", "scale", "restart", "delete-pod", "escalate"} {
		if all[name] == nil || all[name].Name() != name {
			t.Fatalf("action %q missing", name)
		}
	}
	has := func(a Action, group, resource, verb string) bool {
		for _, r := range Rules(a) {
			if r.APIGroups[0] == group && r.Resources[0] == resource {
				for _, v := range r.Verbs {
					if v == verb {
						return true
					}
				}
			}
		}
		return false
	}
	for _, tc := range []struct{ action, group, resource, verb string }{
		{"rollback", "apps", "replicasets", "list"},
		{"rollback", "apps", "deployments", "patch"},
		{"scale", "autoscaling", "horizontalpodautoscalers", "patch"},
		{"scale", "apps", "deployments/scale", "update"},
		{"delete-pod", "", "pods", "get"},
		{"restart", "apps", "deployments", "patch"},
		{"delete-pod", "", "pods/eviction", "create"},
		{"delete-pod", "", "pods", "list"},
	} {
		if !has(all[tc.action], tc.group, tc.resource, tc.verb) {
			t.Errorf("%s does not need %s %s/%s", tc.action, tc.verb, tc.group, tc.resource)
		}
	}
	if n := len(Rules(all["rollback"], all["restart"])); n != 2 {
		t.Errorf("merged rules: %d, want 2 (deployments once)", n)
	}
	if _, err := all["scale"].Plan(context.Background(), probe.Target{Namespace: "x", Kind: "StatefulSet", Name: "y"}, Params{"step": int64(1)}); err == nil {
		t.Error("unsupported target kind: want an error")
	}
}
