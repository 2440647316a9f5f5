package action

import (
	"context"
	"fmt"
	"maps"
	"sort"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"
	"k8s.io/kubectl/pkg/polymorphichelpers"

	"github.com/remediator/remediator/internal/probe"
)

// RollbackChange is a rollback from the current revision to an earlier one.
type RollbackChange struct {
	FromRevision int64 `json:"fromRevision"`
	ToRevision   int64 `json:"toRevision"`
	// ToReplicaSet holds the pod template of ToRevision.
	ToReplicaSet string `json:"toReplicaSet"`
	// Images by container name, now and after the rollback.
	FromImages map[string]string `json:"fromImages"`
	ToImages   map[string]string `json:"toImages"`
}

// Rollback is `kubectl rollout undo`: back to the previous revision, or to
// the one in parameter toRevision.
type Rollback struct{ kube kubernetes.Interface }

func (*Rollback) Name() string { return "rollback" }

// Needs: Plan and kubectl's rollbacker get the Deployment and list its
// ReplicaSets; Apply, Observe and Verify get the planned ReplicaSet by
// name; kubectl patches the Deployment.
func (*Rollback) Needs() []probe.Permission {
	return []probe.Permission{
		perm("apps", "deployments", "get", "patch"),
		perm("apps", "replicasets", "get", "list"),
	}
}

func (a *Rollback) Plan(ctx context.Context, t probe.Target, p Params) (Change, error) {
	want, err := p.Int("toRevision", 0)
	if err != nil {
		return Change{}, err
	}
	d, err := getDeployment(ctx, a.kube, t)
	if err != nil {
		return Change{}, err
	}
	cur, err := strconv.ParseInt(d.Annotations[revisionAnnotation], 10, 64)
	if err != nil {
		return Change{}, fmt.Errorf("deployment %s/%s has no valid revision annotation %q", t.Namespace, t.Name, d.Annotations[revisionAnnotation])
	}
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		return Change{}, fmt.Errorf("deployment %s/%s selector: %w", t.Namespace, t.Name, err)
	}
	l, err := a.kube.AppsV1().ReplicaSets(t.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return Change{}, fmt.Errorf("list replicasets of %s/%s: %w", t.Namespace, t.Name, err)
	}
	byRev := map[int64]*appsv1.ReplicaSet{}
	for i := range l.Items {
		rs := &l.Items[i]
		if ref := metav1.GetControllerOf(rs); ref == nil || ref.UID != d.UID {
			continue
		}
		rev, err := strconv.ParseInt(rs.Annotations[revisionAnnotation], 10, 64)
		if err != nil {
			continue
		}
		byRev[rev] = rs
	}
	var to int64
	if want > 0 {
		if want == cur {
			return Change{}, refuse("revision %d is already the current revision of %s/%s", want, t.Namespace, t.Name)
		}
		if byRev[want] == nil {
			return Change{}, refuse("revision %d of %s/%s not found", want, t.Namespace, t.Name)
		}
		to = want
	} else {
		for rev := range byRev {
			if rev < cur && rev > to {
				to = rev
			}
		}
		if to == 0 {
			return Change{}, refuse("deployment %s/%s has no revision before %d to roll back to", t.Namespace, t.Name, cur)
		}
	}
	rs := byRev[to]
	c := &RollbackChange{
		FromRevision: cur, ToRevision: to, ToReplicaSet: rs.Name,
		FromImages: images(d.Spec.Template.Spec.Containers),
		ToImages:   images(rs.Spec.Template.Spec.Containers),
	}
	return Change{
		Action: a.Name(), Target: t, Rollback: c,
		Summary: fmt.Sprintf("rollback deployment %s/%s revision %d → %d (%s)", t.Namespace, t.Name, cur, to, imageDiff(c.FromImages, c.ToImages)),
	}, nil
}

// Check also blocks when the Deployment is no longer at the planned
// FromRevision.
func (a *Rollback) Check(ctx context.Context, t probe.Target, c Change) []Block {
	o := checkOpts{rollout: true, notPaused: true}
	if c.Rollback != nil {
		o.stale = func(d *appsv1.Deployment) string {
			if cur := d.Annotations[revisionAnnotation]; cur != strconv.FormatInt(c.Rollback.FromRevision, 10) {
				return fmt.Sprintf("deployment is at revision %s, planned from %d", cur, c.Rollback.FromRevision)
			}
			return ""
		}
	}
	return check(ctx, a.kube, t, a.Needs(), o)
}

// rollbackState reads the Deployment and the planned ReplicaSet (nil if it
// is gone or no longer owned by the Deployment).
func (a *Rollback) state(ctx context.Context, t probe.Target, r *RollbackChange) (*appsv1.Deployment, *appsv1.ReplicaSet, error) {
	d, err := getDeployment(ctx, a.kube, t)
	if err != nil {
		return nil, nil, err
	}
	rs, err := a.kube.AppsV1().ReplicaSets(t.Namespace).Get(ctx, r.ToReplicaSet, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return d, nil, nil
	case err != nil:
		return nil, nil, fmt.Errorf("read replicaset %s/%s: %w", t.Namespace, r.ToReplicaSet, err)
	}
	if ref := metav1.GetControllerOf(rs); ref == nil || ref.UID != d.UID {
		return d, nil, nil
	}
	return d, rs, nil
}

// rolledBack says whether d runs the pod template of rs (the planned
// revision), and describes d.
func rolledBack(d *appsv1.Deployment, rs *appsv1.ReplicaSet, r *RollbackChange) (bool, string) {
	where := fmt.Sprintf("deployment %s/%s at revision %s runs %s", d.Namespace, d.Name, d.Annotations[revisionAnnotation],
		imageList(images(d.Spec.Template.Spec.Containers)))
	if rs == nil {
		return false, fmt.Sprintf("%s; replicaset %s of revision %d is gone", where, r.ToReplicaSet, r.ToRevision)
	}
	if templatesEqual(&rs.Spec.Template, &d.Spec.Template) {
		return true, fmt.Sprintf("%s, the pod template of revision %d (replicaset %s)", where, r.ToRevision, rs.Name)
	}
	return false, fmt.Sprintf("%s, not the pod template of revision %d (replicaset %s)", where, r.ToRevision, rs.Name)
}

// Apply is `kubectl rollout undo --to-revision=ToRevision` through
// kubectl's DeploymentRollbacker, after checking that the Deployment is
// still at FromRevision with FromImages (the controller sets the revision
// annotation an instant after a template change) and that ToRevision is
// still replicaset ToReplicaSet.
func (a *Rollback) Apply(ctx context.Context, c Change) (Applied, error) {
	t, err := target(c, a.Name(), c.Rollback != nil)
	if err != nil {
		return Applied{}, err
	}
	r := c.Rollback
	what := fmt.Sprintf("rollback deployment %s/%s revision %d → %d", t.Namespace, t.Name, r.FromRevision, r.ToRevision)
	return apply(ctx, what, func(ctx context.Context) (Applied, error) {
		d, rs, err := a.state(ctx, t, r)
		if err != nil {
			return Applied{}, err
		}
		if done, why := rolledBack(d, rs, r); done {
			return Applied{AlreadyDone: true, Detail: "already done: " + why, ResourceVersion: d.ResourceVersion}, nil
		}
		if cur := d.Annotations[revisionAnnotation]; cur != strconv.FormatInt(r.FromRevision, 10) {
			return Applied{}, stale("deployment %s/%s is at revision %s, planned from %d", t.Namespace, t.Name, cur, r.FromRevision)
		}
		if cur := images(d.Spec.Template.Spec.Containers); !maps.Equal(cur, r.FromImages) {
			return Applied{}, stale("deployment %s/%s runs %s, planned from %s", t.Namespace, t.Name, imageList(cur), imageList(r.FromImages))
		}
		if rs == nil {
			return Applied{}, stale("revision %d of %s/%s has no replicaset any more (%s is gone): refusing", r.ToRevision, t.Namespace, t.Name, r.ToReplicaSet)
		}
		if rev := rs.Annotations[revisionAnnotation]; rev != strconv.FormatInt(r.ToRevision, 10) {
			return Applied{}, stale("replicaset %s is now revision %s, planned %d", rs.Name, rev, r.ToRevision)
		}
		if d.Spec.Paused {
			return Applied{}, refuse("deployment %s/%s is paused; kubectl does not roll back a paused deployment (resume it first)", t.Namespace, t.Name)
		}
		view := &kubectlView{Interface: a.kube, ctx: ctx, resourceVersion: d.ResourceVersion}
		rb, err := polymorphichelpers.RollbackerFor(schema.GroupKind{Group: appsv1.GroupName, Kind: "Deployment"}, view)
		if err != nil {
			return Applied{}, err
		}
		msg, err := rb.Rollback(d, nil, r.ToRevision, cmdutil.DryRunNone)
		if err != nil {
			return Applied{}, &kubectlError{msg: err.Error(), api: view.apiErr}
		}
		if strings.HasPrefix(msg, "skipped rollback") {
			return Applied{AlreadyDone: true, Detail: fmt.Sprintf("already done: kubectl: %s", msg), ResourceVersion: d.ResourceVersion}, nil
		}
		out := Applied{Detail: fmt.Sprintf("deployment %s/%s rolled back from revision %d to revision %d (%s); kubectl: %s",
			t.Namespace, t.Name, r.FromRevision, r.ToRevision, imageDiff(images(d.Spec.Template.Spec.Containers), images(rs.Spec.Template.Spec.Containers)), msg)}
		if view.patched != nil {
			out.ResourceVersion = view.patched.ResourceVersion
		}
		return out, nil
	})
}

// Observe: the Deployment runs the pod template of the planned replicaset.
func (a *Rollback) Observe(ctx context.Context, c Change) (Observation, error) {
	t, err := target(c, a.Name(), c.Rollback != nil)
	if err != nil {
		return Observation{}, err
	}
	d, rs, err := a.state(ctx, t, c.Rollback)
	if err != nil {
		return Observation{}, err
	}
	ok, why := rolledBack(d, rs, c.Rollback)
	return Observation{Applied: ok, Detail: why}, nil
}

// Verify waits until the Deployment's template has the images of
// ToRevision and `kubectl rollout status` reports the rollout complete.
func (a *Rollback) Verify(ctx context.Context, c Change) (Verification, error) {
	t, err := target(c, a.Name(), c.Rollback != nil)
	if err != nil {
		return Verification{}, err
	}
	r := c.Rollback
	return poll(ctx, func(ctx context.Context) (bool, string, error) {
		d, err := getDeployment(ctx, a.kube, t)
		if err != nil {
			return false, "", err
		}
		if got := images(d.Spec.Template.Spec.Containers); !maps.Equal(got, r.ToImages) {
			return false, fmt.Sprintf("deployment %s/%s runs %s, not the images of revision %d (%s)",
				t.Namespace, t.Name, imageList(got), r.ToRevision, imageList(r.ToImages)), nil
		}
		done, why, err := rolloutStatus(d)
		if done {
			why = fmt.Sprintf("%s; revision %s runs %s", why, d.Annotations[revisionAnnotation], imageList(r.ToImages))
		}
		return done, why, err
	})
}

func images(cs []corev1.Container) map[string]string {
	m := make(map[string]string, len(cs))
	for _, c := range cs {
		m[c.Name] = c.Image
	}
	return m
}

// imageList is "image X" for one container, "a: X, b: Y" for several.
func imageList(m map[string]string) string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	if len(names) == 1 {
		return "image " + m[names[0]]
	}
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = n + ": " + m[n]
	}
	return "images " + strings.Join(parts, ", ")
}

// imageDiff describes images by container: "image A → B" for one
// container, "name: A → B; ..." for several, "images unchanged" if equal.
func imageDiff(from, to map[string]string) string {
	names := make([]string, 0, len(from)+len(to))
	for n := range from {
		names = append(names, n)
	}
	for n := range to {
		if _, ok := from[n]; !ok {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	var parts []string
	for _, n := range names {
		if from[n] == to[n] {
			continue
		}
		f, t := from[n], to[n]
		if f == "" {
			f = "(none)"
		}
		if t == "" {
			t = "(none)"
		}
		parts = append(parts, fmt.Sprintf("%s: image %s → %s", n, f, t))
	}
	if len(parts) == 0 {
		return "images unchanged"
	}
	if len(parts) == 1 && len(names) == 1 {
		return strings.TrimPrefix(parts[0], names[0]+": ")
	}
	return strings.Join(parts, "; ")
}
