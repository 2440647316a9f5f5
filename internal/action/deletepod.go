package action

import (
	"context"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/remediator/remediator/internal/probe"
)

// DefaultMinHealthyPercent is the min-healthy bound of delete-pod when the
// policy sets none.
const DefaultMinHealthyPercent = 50

// DeletePodChange evicts one OOMKilled or crash-looping pod of the target.
type DeletePodChange struct {
	Pod        string `json:"pod"`
	UID        string `json:"uid"`              // the pod's UID: Apply evicts this pod, not a namesake
	Why        string `json:"why"`              // e.g. "container app last terminated OOMKilled"
	Reason     string `json:"reason,omitempty"` // the policy's reason parameter
	PodReady   bool   `json:"podReady"`         // the pod counts as ready now
	ReadyPods  int    `json:"readyPods"`        // ready pods of the target now
	ReadyAfter int    `json:"readyAfter"`       // ready pods once it is gone
	MinReady   int    `json:"minReady"`         // ceil(minHealthyPercent/100 × replicas)
	Candidates int    `json:"candidates"`       // pods eligible; one is handled per change
}

// DeletePod deletes (through the eviction API, at Apply) one pod of the
// target whose container was OOMKilled or is in CrashLoopBackOff, never
// leaving fewer ready pods than parameter minHealthyPercent (default 50) of
// the Deployment's replicas, rounded up.
type DeletePod struct{ kube kubernetes.Interface }

func (*DeletePod) Name() string { return "delete-pod" }

// Needs: Plan lists the Deployment's pods; Apply, Observe and Verify get
// the pod, Apply evicts it (create pods/eviction: the Eviction API, which
// honours PodDisruptionBudgets).
func (*DeletePod) Needs() []probe.Permission {
	return []probe.Permission{
		perm("apps", "deployments", "get"),
		perm("", "pods", "get", "list"),
		perm("", "pods/eviction", "create"),
	}
}

func (a *DeletePod) Plan(ctx context.Context, t probe.Target, p Params) (Change, error) {
	pct, err := p.Int("minHealthyPercent", DefaultMinHealthyPercent)
	if err != nil {
		return Change{}, err
	}
	if pct < 0 || pct > 100 {
		return Change{}, fmt.Errorf("parameter minHealthyPercent: %d not in 0..100", pct)
	}
	reason, err := p.String("reason", "")
	if err != nil {
		return Change{}, err
	}
	d, err := getDeployment(ctx, a.kube, t)
	if err != nil {
		return Change{}, err
	}
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		return Change{}, fmt.Errorf("deployment %s/%s selector: %w", t.Namespace, t.Name, err)
	}
	l, err := a.kube.CoreV1().Pods(t.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return Change{}, fmt.Errorf("list pods of %s/%s: %w", t.Namespace, t.Name, err)
	}
	pods := l.Items
	sort.Slice(pods, func(i, j int) bool { return pods[i].Name < pods[j].Name })
	ready := 0
	var pick *corev1.Pod
	var why string
	candidates := 0
	for i := range pods {
		pod := &pods[i]
		if pod.DeletionTimestamp != nil {
			continue
		}
		if podReady(pod) {
			ready++
		}
		if w := unhealthy(pod); w != "" {
			candidates++
			if pick == nil {
				pick, why = pod, w
			}
		}
	}
	if pick == nil {
		return Change{}, refuse("no OOMKilled or crash-looping pod of deployment %s/%s", t.Namespace, t.Name)
	}
	minReady := int((pct*int64(replicasOf(d)) + 99) / 100)
	c := &DeletePodChange{Pod: pick.Name, UID: string(pick.UID), Why: why, Reason: reason, PodReady: podReady(pick),
		ReadyPods: ready, ReadyAfter: ready, MinReady: minReady, Candidates: candidates}
	if c.PodReady {
		c.ReadyAfter--
	}
	if c.ReadyAfter < minReady {
		return Change{}, refuse("deleting pod %s/%s would leave %d ready pods, below the min-healthy bound %d (%d%% of %d replicas)",
			t.Namespace, pick.Name, c.ReadyAfter, minReady, pct, replicasOf(d))
	}
	return Change{Action: a.Name(), Target: t, DeletePod: c,
		Summary: fmt.Sprintf("delete pod %s/%s of deployment %s (%s); %d of min %d ready pods remain",
			t.Namespace, pick.Name, t.Name, why, c.ReadyAfter, minReady)}, nil
}

func (a *DeletePod) Check(ctx context.Context, t probe.Target, _ Change) []Block {
	return check(ctx, a.kube, t, a.Needs(), checkOpts{})
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// unhealthy says why p is eligible for deletion, or "" if it is not: a
// container last (or now) terminated OOMKilled, or waiting in CrashLoopBackOff.
func unhealthy(p *corev1.Pod) string {
	for _, cs := range p.Status.ContainerStatuses {
		switch {
		case cs.State.Waiting != nil && cs.State.Waiting.Reason == "CrashLoopBackOff":
			return fmt.Sprintf("container %s in CrashLoopBackOff", cs.Name)
		case cs.State.Terminated != nil && cs.State.Terminated.Reason == "OOMKilled":
			return fmt.Sprintf("container %s terminated OOMKilled", cs.Name)
		case cs.LastTerminationState.Terminated != nil && cs.LastTerminationState.Terminated.Reason == "OOMKilled":
			return fmt.Sprintf("container %s last terminated OOMKilled", cs.Name)
		}
	}
	return ""
}

// podGone reads the planned pod: gone says it no longer exists as planned
// (deleted, replaced by a namesake with another UID, or terminating), with
// why; otherwise pod is it.
func (a *DeletePod) podGone(ctx context.Context, t probe.Target, p *DeletePodChange) (gone bool, why string, pod *corev1.Pod, err error) {
	pod, err = a.kube.CoreV1().Pods(t.Namespace).Get(ctx, p.Pod, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return true, fmt.Sprintf("pod %s/%s is gone", t.Namespace, p.Pod), nil, nil
	case err != nil:
		return false, "", nil, fmt.Errorf("read pod %s/%s: %w", t.Namespace, p.Pod, err)
	case string(pod.UID) != p.UID:
		return true, fmt.Sprintf("pod %s/%s (uid %s) is gone; a pod of that name now has uid %s", t.Namespace, p.Pod, p.UID, pod.UID), nil, nil
	case pod.DeletionTimestamp != nil:
		return true, fmt.Sprintf("pod %s/%s (uid %s) is terminating since %s", t.Namespace, p.Pod, p.UID, pod.DeletionTimestamp.UTC().Format("15:04:05")), pod, nil
	}
	return false, fmt.Sprintf("pod %s/%s (uid %s) exists", t.Namespace, p.Pod, p.UID), pod, nil
}

// Apply evicts the pod through the Eviction API with its UID as a
// precondition. A pod that is gone, replaced or terminating is AlreadyDone.
// Before evicting it re-checks the min-healthy bound (ErrStale if the
// other ready pods are now fewer than MinReady). A PodDisruptionBudget that
// forbids the eviction (429) is ErrDisruptionBudget, not retried.
func (a *DeletePod) Apply(ctx context.Context, c Change) (Applied, error) {
	t, err := target(c, a.Name(), c.DeletePod != nil)
	if err != nil {
		return Applied{}, err
	}
	p := c.DeletePod
	if p.UID == "" {
		return Applied{}, stale("delete-pod change for %s/%s has no pod UID; plan again", t.Namespace, p.Pod)
	}
	what := fmt.Sprintf("delete pod %s/%s of deployment %s", t.Namespace, p.Pod, t.Name)
	return apply(ctx, what, func(ctx context.Context) (Applied, error) {
		gone, why, pod, err := a.podGone(ctx, t, p)
		if err != nil {
			return Applied{}, err
		}
		if gone {
			out := Applied{AlreadyDone: true, Detail: "already done: " + why}
			if pod != nil {
				out.ResourceVersion = pod.ResourceVersion
			}
			return out, nil
		}
		ready, err := a.readyOthers(ctx, t, p)
		if err != nil {
			return Applied{}, err
		}
		if ready < p.MinReady {
			return Applied{}, stale("deleting pod %s/%s would leave %d ready pods, below the min-healthy bound %d", t.Namespace, p.Pod, ready, p.MinReady)
		}
		uid := types.UID(p.UID)
		err = a.kube.PolicyV1().Evictions(t.Namespace).Evict(ctx, &policyv1.Eviction{
			ObjectMeta:    metav1.ObjectMeta{Name: p.Pod, Namespace: t.Namespace},
			DeleteOptions: &metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}},
		})
		switch {
		case apierrors.IsTooManyRequests(err),
			apierrors.IsInternalError(err) && strings.Contains(err.Error(), "PodDisruptionBudget"):
			// 429: a budget forbids it now; 500: more than one budget
			// covers the pod, which the Eviction API does not support.
			return Applied{}, final(fmt.Errorf("%w: eviction of pod %s/%s refused: %v", ErrDisruptionBudget, t.Namespace, p.Pod, err))
		case apierrors.IsNotFound(err):
			return Applied{AlreadyDone: true, Detail: fmt.Sprintf("already done: pod %s/%s is gone", t.Namespace, p.Pod)}, nil
		case err != nil:
			// A conflict (the UID precondition failed) is retried: the
			// next attempt reads the pod again.
			return Applied{}, fmt.Errorf("evict pod %s/%s: %w", t.Namespace, p.Pod, err)
		}
		return Applied{ResourceVersion: pod.ResourceVersion,
			Detail: fmt.Sprintf("pod %s/%s (uid %s) of deployment %s evicted (%s); %d other ready pods, min %d", t.Namespace, p.Pod, p.UID, t.Name, p.Why, ready, p.MinReady)}, nil
	})
}

// readyOthers counts the ready, non-terminating pods of the Deployment
// other than the planned one.
func (a *DeletePod) readyOthers(ctx context.Context, t probe.Target, p *DeletePodChange) (int, error) {
	pods, err := a.pods(ctx, t)
	if err != nil {
		return 0, err
	}
	n := 0
	for i := range pods {
		if string(pods[i].UID) != p.UID && pods[i].DeletionTimestamp == nil && podReady(&pods[i]) {
			n++
		}
	}
	return n, nil
}

func (a *DeletePod) pods(ctx context.Context, t probe.Target) ([]corev1.Pod, error) {
	d, err := getDeployment(ctx, a.kube, t)
	if err != nil {
		return nil, err
	}
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		return nil, fmt.Errorf("deployment %s/%s selector: %w", t.Namespace, t.Name, err)
	}
	l, err := a.kube.CoreV1().Pods(t.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return nil, fmt.Errorf("list pods of %s/%s: %w", t.Namespace, t.Name, err)
	}
	return l.Items, nil
}

// Observe: the planned pod is gone, replaced or terminating.
func (a *DeletePod) Observe(ctx context.Context, c Change) (Observation, error) {
	t, err := target(c, a.Name(), c.DeletePod != nil)
	if err != nil {
		return Observation{}, err
	}
	gone, why, _, err := a.podGone(ctx, t, c.DeletePod)
	if err != nil {
		return Observation{}, err
	}
	return Observation{Applied: gone, Detail: why}, nil
}

// Verify waits until the pod with the planned UID no longer exists (not
// merely terminating) and the Deployment again has all its replicas ready:
// as many ready, non-terminating pods as spec.replicas, and as many
// available replicas in its status.
func (a *DeletePod) Verify(ctx context.Context, c Change) (Verification, error) {
	t, err := target(c, a.Name(), c.DeletePod != nil)
	if err != nil {
		return Verification{}, err
	}
	p := c.DeletePod
	return poll(ctx, func(ctx context.Context) (bool, string, error) {
		gone, why, pod, err := a.podGone(ctx, t, p)
		if err != nil {
			return false, "", err
		}
		if !gone || pod != nil {
			return false, why, nil
		}
		d, err := getDeployment(ctx, a.kube, t)
		if err != nil {
			return false, "", err
		}
		pods, err := a.pods(ctx, t)
		if err != nil {
			return false, "", err
		}
		ready := 0
		for i := range pods {
			if pods[i].DeletionTimestamp == nil && podReady(&pods[i]) {
				ready++
			}
		}
		want := replicasOf(d)
		switch {
		case ready < int(want):
			return false, fmt.Sprintf("%s; deployment %s/%s has %d of %d pods ready", why, t.Namespace, t.Name, ready, want), nil
		case d.Status.AvailableReplicas < want:
			return false, fmt.Sprintf("%s; deployment %s/%s has %d of %d replicas available", why, t.Namespace, t.Name, d.Status.AvailableReplicas, want), nil
		}
		return true, fmt.Sprintf("%s; deployment %s/%s has %d of %d pods ready", why, t.Namespace, t.Name, ready, want), nil
	})
}
