package deploytest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/remediator/remediator/internal/action"
	"github.com/remediator/remediator/internal/leader"
	"github.com/remediator/remediator/internal/probe"
	"github.com/remediator/remediator/internal/testbed"
)

// actionParams makes every action's Plan succeed on the prepared demo; an
// action without an entry fails the test, so a new action must be added.
var actionParams = map[string]action.Params{
	"rollback":   nil,                     // to revision 1 (the test makes revision 2)
	"scale":      {"step": int64(2)},      // through the demo's HPA
	"restart":    nil,                     // rolling restart
	"delete-pod": {"reason": "OOMKilled"}, // the pod the test marks OOMKilled
	"escalate":   {"to": "platform-team"}, // no change
}

// The RBAC of the kit, both ways, for the identity the service runs as (the
// bed's ServiceAccount remediator-system/remediator, the subject of the
// kit's bindings): with the generated ClusterRoles bound as the overlay and
// base bind them — in a target namespace running the demo, and for the
// Lease — every action plans and passes its pre-flight with no rbac block,
// every probe that reads the cluster is not forbidden, and leader election
// wins the Lease; anything else is forbidden.
func TestRBACGeneratedRoleOnTheBed(t *testing.T) {
	env := testbed.Get(t)
	ctx := t.Context()
	admin := env.AdminClient()
	ns := env.NewNamespace()
	env.ApplyDemo(ns)

	// The ClusterRoles as the kustomization renders them, under names of
	// this test (the bed is shared), bound by copies of the kit's own
	// RoleBindings moved into the test's namespace.
	overlay := build(t, overlayDir)
	roles := map[string]*rbacv1.ClusterRole{}
	for _, name := range []string{targetRole, leaderRole} {
		cr := as[rbacv1.ClusterRole](t, find(t, overlay, "ClusterRole", name))
		cr.ObjectMeta = metav1.ObjectMeta{Name: name + "-" + ns, Labels: cr.Labels}
		if _, err := admin.RbacV1().ClusterRoles().Create(ctx, cr, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := admin.RbacV1().ClusterRoles().Delete(c, cr.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				t.Errorf("deleting ClusterRole %s: %v", cr.Name, err)
			}
		})
		roles[name] = cr
	}
	var bindings []*rbacv1.RoleBinding
	for _, rb := range findAll(overlay, "RoleBinding", "") {
		bindings = append(bindings, as[rbacv1.RoleBinding](t, rb))
	}
	if len(bindings) != 2 {
		t.Fatalf("the overlay has %d RoleBindings, want 2 (target namespace and Lease)", len(bindings))
	}
	for _, rb := range bindings {
		if len(rb.Subjects) != 1 || rb.Subjects[0] != testbed.RemediatorSubject() {
			t.Fatalf("RoleBinding %s/%s binds %+v; the service's identity is %+v", rb.Namespace, rb.Name, rb.Subjects, testbed.RemediatorSubject())
		}
		cr := roles[rb.RoleRef.Name]
		if cr == nil {
			t.Fatalf("RoleBinding %s/%s binds %s", rb.Namespace, rb.Name, rb.RoleRef.Name)
		}
		rb.ObjectMeta = metav1.ObjectMeta{Name: rb.Name, Namespace: ns, Labels: rb.Labels}
		rb.RoleRef.Name = cr.Name
		if _, err := admin.RbacV1().RoleBindings(ns).Create(ctx, rb, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	rc := env.RemediatorClient()
	for _, cr := range roles {
		waitAllowed(t, rc, ns, cr.Rules)
	}

	// A second revision, so that rollback has one to go back to, and an
	// OOMKilled pod, so that delete-pod has one to delete.
	d, err := admin.AppsV1().Deployments(ns).Get(ctx, testbed.DemoDeployment, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	d.Spec.Template.Spec.Containers[0].Image = "registry.example/platform-service:v1.1.0"
	if _, err := admin.AppsV1().Deployments(ns).Update(ctx, d, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := testbed.WaitForRollout(ctx, admin, ns, testbed.DemoDeployment, time.Minute); err != nil {
		t.Fatal(err)
	}
	pods, err := testbed.ReadyPods(ctx, admin, ns, "app="+testbed.DemoDeployment)
	if err != nil || len(pods) == 0 {
		t.Fatalf("ready pods: %d, %v", len(pods), err)
	}
	if err := testbed.SetPodHealth(ctx, admin, ns, pods[0].Name,
		testbed.PodHealth{Ready: true, Restarts: 2, LastTermination: "OOMKilled", LastExitCode: 137}); err != nil {
		t.Fatal(err)
	}

	tg := probe.Target{Namespace: ns, Kind: "Deployment", Name: testbed.DemoDeployment}
	t.Run("actions", func(t *testing.T) {
		for name, a := range action.New(rc) {
			params, ok := actionParams[name]
			if !ok {
				t.Errorf("action %s: no parameters in actionParams; add them", name)
				continue
			}
			c, err := a.Plan(ctx, tg, params)
			if err != nil {
				t.Errorf("%s: Plan: %v", name, err)
				continue
			}
			for _, b := range a.Check(ctx, tg, c) {
				if b.Guard == action.GuardRBAC {
					t.Errorf("%s: %s", name, b)
				} else {
					t.Logf("%s: (not RBAC) %s", name, b)
				}
			}
			t.Logf("%s: %s", name, c.Summary)
		}
	})

	t.Run("probes", func(t *testing.T) {
		for name, p := range probe.New(probe.Config{Kube: rc}) {
			if _, reads := p.(probe.Needer); !reads {
				continue
			}
			res := probe.Run(ctx, probe.Step{Probe: p, Target: tg, Timeout: 15 * time.Second})
			if res.Err != nil && (apierrors.IsForbidden(res.Err) || strings.Contains(strings.ToLower(res.Err.Error()), "forbidden")) {
				t.Errorf("%s: %v", name, res.Err)
			} else {
				t.Logf("%s: err=%v", name, res.Err)
			}
		}
	})

	t.Run("leader election", func(t *testing.T) {
		const lease, id = "remediator-leader", "deploytest-0"
		el, err := leader.New(leader.Config{Namespace: ns, Name: lease, Identity: id,
			LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: time.Second}, rc, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		var once sync.Once
		led, done := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(done)
			el.Run(lctx, func(c context.Context) { once.Do(func() { close(led) }); <-c.Done() })
		}()
		select {
		case <-led:
		case <-lctx.Done():
			t.Fatalf("the generated role did not let the service take the Lease %s/%s", ns, lease)
		}
		l, err := admin.CoordinationV1().Leases(ns).Get(ctx, lease, metav1.GetOptions{})
		if err != nil || l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity != id {
			t.Errorf("lease: %+v %v", l, err)
		}
		cancel()
		<-done
	})

	t.Run("denied", func(t *testing.T) {
		apps, coord, rbac := "apps", "coordination.k8s.io", rbacv1.GroupName
		for _, ra := range []authorizationv1.ResourceAttributes{
			{Namespace: ns, Verb: "delete", Group: apps, Resource: "deployments"},
			{Namespace: ns, Verb: "create", Group: apps, Resource: "deployments"},
			{Namespace: ns, Verb: "update", Group: apps, Resource: "deployments"},
			{Namespace: ns, Verb: "delete", Group: apps, Resource: "replicasets"},
			{Namespace: ns, Verb: "delete", Resource: "pods"},
			{Namespace: ns, Verb: "create", Resource: "pods", Subresource: "exec"},
			{Namespace: ns, Verb: "get", Resource: "secrets"},
			{Namespace: ns, Verb: "list", Resource: "secrets"},
			{Namespace: ns, Verb: "update", Resource: "configmaps"},
			{Namespace: ns, Verb: "delete", Group: "autoscaling", Resource: "horizontalpodautoscalers"},
			{Namespace: ns, Verb: "create", Group: rbac, Resource: "rolebindings"},
			{Namespace: ns, Verb: "delete", Group: coord, Resource: "leases"},
			{Verb: "patch", Resource: "nodes"},
			{Verb: "list", Resource: "namespaces"},
			{Verb: "escalate", Group: rbac, Resource: "clusterroles"},
			{Verb: "create", Group: rbac, Resource: "clusterrolebindings"},
			// Outside the namespaces it is bound in.
			{Namespace: "default", Verb: "get", Group: apps, Resource: "deployments"},
			{Namespace: "default", Verb: "patch", Group: apps, Resource: "deployments"},
			{Namespace: "kube-system", Verb: "create", Resource: "pods", Subresource: "eviction"},
			{Namespace: "default", Verb: "update", Group: coord, Resource: "leases"},
		} {
			res, err := rc.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx,
				&authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &ra}},
				metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if res.Status.Allowed {
				t.Errorf("the service may %s", attrs(ra))
			}
		}
		// And the API server refuses the requests themselves.
		for what, call := range map[string]func() error{
			"list secrets": func() error {
				_, err := rc.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{})
				return err
			},
			"delete the deployment": func() error {
				return rc.AppsV1().Deployments(ns).Delete(ctx, testbed.DemoDeployment, metav1.DeleteOptions{})
			},
			"patch a node": func() error {
				_, err := rc.CoreV1().Nodes().Patch(ctx, testbed.NodeName, types.MergePatchType,
					[]byte(`{"metadata":{"labels":{"deploytest":"x"}}}`), metav1.PatchOptions{})
				return err
			},
			"list deployments in default": func() error {
				_, err := rc.AppsV1().Deployments("default").List(ctx, metav1.ListOptions{})
				return err
			},
		} {
			if err := call(); !apierrors.IsForbidden(err) {
				t.Errorf("%s: want 403 Forbidden, got %v", what, err)
			}
		}
	})
}

func attrs(ra authorizationv1.ResourceAttributes) string {
	r := ra.Resource
	if ra.Subresource != "" {
		r += "/" + ra.Subresource
	}
	if ra.Group != "" {
		r += "." + ra.Group
	}
	where := "cluster-wide"
	if ra.Namespace != "" {
		where = "in namespace " + ra.Namespace
	}
	return fmt.Sprintf("%s %s %s", ra.Verb, r, where)
}

// waitAllowed waits until the authorizer lets the service do every verb of
// rules in namespace (RBAC bindings take effect asynchronously).
func waitAllowed(t *testing.T, rc kubernetes.Interface, namespace string, rules []rbacv1.PolicyRule) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for _, r := range rules {
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				resource, sub, _ := strings.Cut(res, "/")
				for _, v := range r.Verbs {
					ra := authorizationv1.ResourceAttributes{Namespace: namespace, Verb: v, Group: g, Resource: resource, Subresource: sub}
					for {
						s, err := rc.AuthorizationV1().SelfSubjectAccessReviews().Create(t.Context(),
							&authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &ra}},
							metav1.CreateOptions{})
						if err != nil {
							t.Fatal(err)
						}
						if s.Status.Allowed {
							break
						}
						if time.Now().After(deadline) {
							t.Fatalf("the bound role does not let the service %s", attrs(ra))
						}
						time.Sleep(100 * time.Millisecond)
					}
				}
			}
		}
	}
}
