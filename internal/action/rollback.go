package action

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

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

func images(cs []corev1.Container) map[string]string {
	m := make(map[string]string, len(cs))
	for _, c := range cs {
		m[c.Name] = c.Image
	}
	return m
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
