package action

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/remediator/remediator/internal/probe"
	"github.com/remediator/remediator/internal/testbed"
)

var testTarget = probe.Target{Namespace: "shop", Kind: "Deployment", Name: "platform-service"}

// writeCounter counts a client's write requests (POST, PUT, PATCH,
// DELETE), SelfSubjectAccessReviews excepted: the proof that a call wrote
// nothing.
type writeCounter struct{ n atomic.Int64 }

func (w *writeCounter) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if isWrite(r) {
			w.n.Add(1)
		}
		return rt.RoundTrip(r)
	})
}

func (w *writeCounter) count() int64 { return w.n.Load() }

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func isWrite(r *http.Request) bool {
	return r.Method != http.MethodGet && r.Method != http.MethodHead && !strings.Contains(r.URL.Path, "selfsubjectaccessreviews")
}

// runConcurrently runs one subtest per case at the same time, whatever
// -parallel is: the bed tests mostly wait for controllers.
func runConcurrently[C any](t *testing.T, cases []C, name func(C) string, f func(*testing.T, C)) {
	t.Helper()
	var wg sync.WaitGroup
	for _, tc := range cases {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.Run(name(tc), func(t *testing.T) { f(t, tc) })
		}()
	}
	wg.Wait()
}

func (b *bed) deployment(t *testing.T) *appsv1.Deployment {
	t.Helper()
	d, err := b.admin.AppsV1().Deployments(b.ns).Get(context.Background(), testbed.DemoDeployment, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func (b *bed) hpaMin(t *testing.T) int32 {
	t.Helper()
	h, err := b.admin.AutoscalingV2().HorizontalPodAutoscalers(b.ns).Get(context.Background(), testbed.DemoDeployment, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return *h.Spec.MinReplicas
}

func (b *bed) patchHPAMin(t *testing.T, min int32) {
	t.Helper()
	if _, err := b.admin.AutoscalingV2().HorizontalPodAutoscalers(b.ns).Patch(context.Background(), testbed.DemoDeployment,
		types.MergePatchType, fmt.Appendf(nil, `{"spec":{"minReplicas":%d}}`, min), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
}

func (b *bed) setReplicas(t *testing.T, n int32) {
	t.Helper()
	if _, err := b.admin.AppsV1().Deployments(b.ns).Patch(context.Background(), testbed.DemoDeployment,
		types.MergePatchType, fmt.Appendf(nil, `{"spec":{"replicas":%d}}`, n), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
}

func (b *bed) deleteHPA(t *testing.T) {
	t.Helper()
	if err := b.admin.AutoscalingV2().HorizontalPodAutoscalers(b.ns).Delete(context.Background(), testbed.DemoDeployment, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
}

// makeOOMKilled fakes a ready pod whose container was OOMKilled (kwok does
// not simulate it) and returns it.
func (b *bed) makeOOMKilled(t *testing.T) corev1.Pod {
	t.Helper()
	ctx := context.Background()
	pods, err := testbed.ReadyPods(ctx, b.admin, b.ns, "app="+testbed.DemoDeployment)
	if err != nil || len(pods) == 0 {
		t.Fatalf("ready pods: %v (%d)", err, len(pods))
	}
	slices.SortFunc(pods, func(x, y corev1.Pod) int { return strings.Compare(x.Name, y.Name) })
	p := pods[0]
	if err := testbed.SetPodHealth(ctx, b.admin, b.ns, p.Name,
		testbed.PodHealth{Ready: true, Restarts: 1, LastTermination: "OOMKilled", LastExitCode: 137}); err != nil {
		t.Fatal(err)
	}
	return p
}

// withoutWrites keeps the read verbs of rules.
func withoutWrites(rules []rbacv1.PolicyRule) []rbacv1.PolicyRule {
	var out []rbacv1.PolicyRule
	for _, r := range rules {
		var verbs []string
		for _, v := range r.Verbs {
			if v == "get" || v == "list" || v == "watch" {
				verbs = append(verbs, v)
			}
		}
		if len(verbs) > 0 {
			r.Verbs = verbs
			out = append(out, r)
		}
	}
	return out
}

// waitCheck polls Check until want says its blocks are as expected.
func (b *bed) waitCheck(t *testing.T, c Change, what string, want func([]Block) bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		bl := b.action.Check(context.Background(), b.target, c)
		if want(bl) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Check: want %s, got %v", what, bl)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func hasRBACBlock(bl []Block) bool {
	return slices.ContainsFunc(bl, func(b Block) bool { return b.Guard == GuardRBAC })
}

func (b *bed) observe(t *testing.T, c Change, want bool) {
	t.Helper()
	before := b.writes.count()
	o, err := b.action.Observe(context.Background(), c)
	if err != nil {
		t.Fatalf("Observe: %v", err)
	}
	if o.Applied != want || o.Detail == "" {
		t.Fatalf("Observe: want applied=%v, got %+v", want, o)
	}
	if n := b.writes.count() - before; n != 0 {
		t.Fatalf("Observe wrote %d times", n)
	}
}

// execCase is one action's whole life on the bed.
type execCase struct {
	name   string
	action string
	// prep makes the demo namespace ready for the action and returns its
	// parameters.
	prep func(t *testing.T, b *bed) Params
	// beforeApply runs after the RBAC check, before the successful Apply.
	beforeApply func(t *testing.T, b *bed, c Change)
	// after asserts the cluster's state once Verify passed.
	after func(t *testing.T, b *bed, c Change)
	// stale plans a change again with params, then moves the object on
	// (as an admin) so that the plan is stale.
	staleParams Params
	stale       func(t *testing.T, b *bed, c Change)
	// staleDone: Apply of the stale plan is AlreadyDone instead of ErrStale.
	staleDone bool
	// unchanged asserts the stale object was left as the admin made it.
	unchanged func(t *testing.T, b *bed)
}

const badImage = "registry.example/platform-service:v1.1.0"

var execCases = []execCase{
	{
		name: "rollback", action: "rollback",
		prep: func(t *testing.T, b *bed) Params { b.setImage(t, badImage, false); return nil },
		after: func(t *testing.T, b *bed, c Change) {
			d := b.deployment(t)
			if img := d.Spec.Template.Spec.Containers[0].Image; img != demoImage || d.Annotations[revisionAnnotation] != "3" {
				t.Fatalf("after rollback: image %s revision %s, want %s revision 3", img, d.Annotations[revisionAnnotation], demoImage)
			}
		},
		stale: func(t *testing.T, b *bed, c Change) {
			b.setImage(t, "registry.example/platform-service:v1.2.0", false)
		},
		unchanged: func(t *testing.T, b *bed) {
			if img := b.deployment(t).Spec.Template.Spec.Containers[0].Image; img != "registry.example/platform-service:v1.2.0" {
				t.Fatalf("image %s", img)
			}
		},
	},
	{
		name: "scale via HPA", action: "scale",
		prep: func(t *testing.T, b *bed) Params { return Params{"step": int64(2)} },
		after: func(t *testing.T, b *bed, c Change) {
			d := b.deployment(t)
			if m := b.hpaMin(t); m != 5 || replicasOf(d) < 5 || d.Status.AvailableReplicas < 5 {
				t.Fatalf("after scale: HPA minReplicas %d, deployment replicas %d available %d", m, replicasOf(d), d.Status.AvailableReplicas)
			}
			// The bed has no metrics API: the HPA controller cannot compute
			// a metric, but scales a target below minReplicas up to it.
			h, err := b.admin.AutoscalingV2().HorizontalPodAutoscalers(b.ns).Get(context.Background(), testbed.DemoDeployment, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range h.Status.Conditions {
				t.Logf("HPA condition %s=%s %s: %s", c.Type, c.Status, c.Reason, c.Message)
			}
			t.Logf("HPA status: currentReplicas %d desiredReplicas %d", h.Status.CurrentReplicas, h.Status.DesiredReplicas)
		},
		staleParams: Params{"step": int64(2)},
		stale:       func(t *testing.T, b *bed, c Change) { b.patchHPAMin(t, 8) },
		unchanged: func(t *testing.T, b *bed) {
			if m := b.hpaMin(t); m != 8 {
				t.Fatalf("HPA minReplicas %d", m)
			}
		},
	},
	{
		name: "scale without HPA", action: "scale",
		prep: func(t *testing.T, b *bed) Params { b.deleteHPA(t); return Params{"step": int64(2)} },
		after: func(t *testing.T, b *bed, c Change) {
			d := b.deployment(t)
			if replicasOf(d) != 5 || d.Status.AvailableReplicas != 5 {
				t.Fatalf("after scale: replicas %d available %d", replicasOf(d), d.Status.AvailableReplicas)
			}
		},
		staleParams: Params{"step": int64(1)},
		stale:       func(t *testing.T, b *bed, c Change) { b.setReplicas(t, 7) },
		unchanged: func(t *testing.T, b *bed) {
			if r := replicasOf(b.deployment(t)); r != 7 {
				t.Fatalf("replicas %d", r)
			}
		},
	},
	{
		name: "restart", action: "restart",
		prep: func(t *testing.T, b *bed) Params {
			now := time.Date(2026, 11, 26, 4, 0, 0, 0, time.UTC)
			b.action.(*Restart).now = func() time.Time { now = now.Add(time.Minute); return now }
			return nil
		},
		after: func(t *testing.T, b *bed, c Change) {
			d := b.deployment(t)
			if got := d.Spec.Template.Annotations[restartedAtAnnotation]; got != c.Restart.To {
				t.Fatalf("annotation %q, want %q", got, c.Restart.To)
			}
			l, err := b.admin.AppsV1().ReplicaSets(b.ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app=" + testbed.DemoDeployment})
			if err != nil {
				t.Fatal(err)
			}
			var fresh, old int32
			for _, rs := range l.Items {
				if rs.Spec.Template.Annotations[restartedAtAnnotation] == c.Restart.To {
					fresh += rs.Status.ReadyReplicas
				} else {
					old += *rs.Spec.Replicas
				}
			}
			if fresh != 3 || old != 0 || len(l.Items) != 2 {
				t.Fatalf("after restart: %d replicasets, %d ready pods of the new one, %d old replicas wanted", len(l.Items), fresh, old)
			}
		},
		stale: func(t *testing.T, b *bed, c Change) {
			if _, err := b.admin.AppsV1().Deployments(b.ns).Patch(context.Background(), testbed.DemoDeployment, types.StrategicMergePatchType,
				[]byte(`{"spec":{"template":{"metadata":{"annotations":{"kubectl.kubernetes.io/restartedAt":"by-someone-else"}}}}}`), metav1.PatchOptions{}); err != nil {
				t.Fatal(err)
			}
		},
		unchanged: func(t *testing.T, b *bed) {
			if got := b.deployment(t).Spec.Template.Annotations[restartedAtAnnotation]; got != "by-someone-else" {
				t.Fatalf("annotation %q", got)
			}
		},
	},
	{
		name: "delete-pod", action: "delete-pod",
		prep: func(t *testing.T, b *bed) Params { b.makeOOMKilled(t); return Params{"reason": "OOMKilled"} },
		beforeApply: func(t *testing.T, b *bed, c Change) {
			// A budget that allows no disruption: the eviction is refused.
			ctx := context.Background()
			min := intstr.FromInt32(3)
			pdbs := b.admin.PolicyV1().PodDisruptionBudgets(b.ns)
			if _, err := pdbs.Create(ctx, &policyv1.PodDisruptionBudget{
				ObjectMeta: metav1.ObjectMeta{Name: "all"},
				Spec: policyv1.PodDisruptionBudgetSpec{MinAvailable: &min,
					Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": testbed.DemoDeployment}}},
			}, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
				p, err := pdbs.Get(ctx, "all", metav1.GetOptions{})
				if err != nil {
					t.Fatal(err)
				}
				if p.Status.ObservedGeneration == p.Generation && p.Status.ExpectedPods == 3 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("PDB status not computed: %+v", p.Status)
				}
			}
			before := b.writes.count()
			start := time.Now()
			res, err := b.action.Apply(ctx, c)
			if !errors.Is(err, ErrDisruptionBudget) || res.Attempts != 1 || time.Since(start) > 5*time.Second {
				t.Fatalf("Apply under a PDB: want ErrDisruptionBudget at once, got %+v %v after %s", res, err, time.Since(start))
			}
			t.Logf("PDB: %v", err)
			if n := b.writes.count() - before; n != 1 {
				t.Fatalf("Apply under a PDB made %d writes, want the one refused eviction", n)
			}
			b.observe(t, c, false)
			if err := pdbs.Delete(ctx, "all", metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
		},
		after: func(t *testing.T, b *bed, c Change) {
			ctx := context.Background()
			p, err := b.admin.CoreV1().Pods(b.ns).Get(ctx, c.DeletePod.Pod, metav1.GetOptions{})
			if err == nil && string(p.UID) == c.DeletePod.UID {
				t.Fatalf("pod %s still there", c.DeletePod.Pod)
			} else if err != nil && !apierrors.IsNotFound(err) {
				t.Fatal(err)
			}
			if pods, err := testbed.ReadyPods(ctx, b.admin, b.ns, "app="+testbed.DemoDeployment); err != nil || len(pods) != 3 {
				t.Fatalf("ready pods: %d %v", len(pods), err)
			}
		},
		stale: func(t *testing.T, b *bed, c Change) {
			if err := b.admin.CoreV1().Pods(b.ns).Delete(context.Background(), c.DeletePod.Pod, metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
		},
		staleDone: true,
	},
}

// TestApplyVerifyOnTheBed runs every action's whole life on a fresh demo
// namespace: Plan, Check, Observe (not applied), Apply without the write
// permission (Forbidden at once, nothing changed, and Check blocks), Apply
// (one write), Observe (applied), Verify, the cluster's state, Apply again
// (AlreadyDone, no write), and Apply of a stale plan (ErrStale, no write).
func TestApplyVerifyOnTheBed(t *testing.T) {
	t.Parallel()
	runConcurrently(t, execCases, func(c execCase) string { return c.name }, testExec)
}

func testExec(t *testing.T, tc execCase) {
	b := newBed(t, tc.action)
	ctx := context.Background()
	params := tc.prep(t, b)
	c, blocks, err := b.planAndCheck(t, params)
	if err != nil {
		t.Fatal(err)
	}
	mustPass(t, blocks)
	b.observe(t, c, false)

	// Without the write permission: Check blocks, Apply is Forbidden at
	// once and changes nothing.
	b.env.GrantRemediator(b.ns, withoutWrites(Rules(b.action))...)
	b.waitCheck(t, c, "an rbac block", hasRBACBlock)
	before := b.settle(t)
	start := time.Now()
	res, err := b.action.Apply(ctx, c)
	if !apierrors.IsForbidden(err) || res.Attempts != 1 || time.Since(start) > 5*time.Second {
		t.Fatalf("Apply without permission: want Forbidden at once, got %+v %v after %s", res, err, time.Since(start))
	}
	t.Logf("forbidden: %v", err)
	if after := b.versions(t); after != before {
		t.Fatalf("forbidden Apply changed objects: %v → %v", before, after)
	}
	b.observe(t, c, false)
	b.env.GrantRemediator(b.ns, Rules(b.action)...)
	b.waitCheck(t, c, "no block", func(bl []Block) bool { return len(bl) == 0 })

	if tc.beforeApply != nil {
		tc.beforeApply(t, b, c)
	}

	b.settle(t) // no controller writes racing the first attempt's
	w0 := b.writes.count()
	res, err = b.action.Apply(ctx, c)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if res.AlreadyDone || res.Attempts != 1 || res.Detail == "" || (res.ResourceVersion == "" && tc.action != "delete-pod") {
		t.Fatalf("Apply: %+v", res)
	}
	if n := b.writes.count() - w0; n != 1 {
		t.Fatalf("Apply made %d writes, want 1", n)
	}
	t.Logf("applied: %s", res.Detail)
	b.observe(t, c, true)

	vctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	v, err := b.action.Verify(vctx, c)
	if err != nil || !v.OK {
		t.Fatalf("Verify: %+v %v", v, err)
	}
	t.Logf("verified in %s: %s", v.Waited.Round(time.Millisecond), v.Detail)
	tc.after(t, b, c)

	// Again: already done, not a single write request. (Comparing
	// resourceVersions instead would race the controllers' status
	// updates, e.g. the HPA's next sync.)
	w0 = b.writes.count()
	again, err := b.action.Apply(ctx, c)
	if err != nil || !again.AlreadyDone || again.Attempts != 1 || again.ResourceVersion == "" && tc.action != "delete-pod" {
		t.Fatalf("second Apply: want AlreadyDone, got %+v %v", again, err)
	}
	if n := b.writes.count() - w0; n != 0 {
		t.Fatalf("second Apply made %d writes", n)
	}
	t.Logf("again: %s", again.Detail)
	b.observe(t, c, true)

	// A stale plan writes nothing.
	if tc.action == "delete-pod" {
		b.makeOOMKilled(t)
	}
	c2, blocks, err := b.planAndCheck(t, tc.staleParams)
	if err != nil {
		t.Fatal(err)
	}
	mustPass(t, blocks)
	tc.stale(t, b, c2)
	w0 = b.writes.count()
	res, err = b.action.Apply(ctx, c2)
	switch {
	case tc.staleDone:
		if err != nil || !res.AlreadyDone {
			t.Fatalf("Apply after the object went: want AlreadyDone, got %+v %v", res, err)
		}
		t.Logf("gone: %s", res.Detail)
	case !errors.Is(err, ErrStale) || res.Attempts != 1:
		t.Fatalf("Apply of a stale plan: want ErrStale, got %+v %v", res, err)
	default:
		t.Logf("stale: %v", err)
	}
	if n := b.writes.count() - w0; n != 0 {
		t.Fatalf("Apply of a stale plan made %d writes", n)
	}
	if tc.unchanged != nil {
		tc.unchanged(t, b)
	}
}

func TestEscalateExec(t *testing.T) {
	a := New(nil)["escalate"]
	ctx := context.Background()
	c, err := a.Plan(ctx, testTarget, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res, err := a.Apply(ctx, c); err != nil || res.Detail != "no change" || res.AlreadyDone {
		t.Fatalf("Apply: %+v %v", res, err)
	}
	if o, err := a.Observe(ctx, c); err != nil || !o.Applied {
		t.Fatalf("Observe: %+v %v", o, err)
	}
	if v, err := a.Verify(ctx, c); err != nil || !v.OK {
		t.Fatalf("Verify: %+v %v", v, err)
	}
}
