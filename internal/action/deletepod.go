package action

import (
	"context"
	"fmt"
	"sort"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/remediator/remediator/internal/probe"
)

// DefaultMinHealthyPercent is the min-healthy bound of delete-pod when the
// policy sets none.
const DefaultMinHealthyPercent = 50

// DeletePodChange evicts one OOMKilled or crash-looping pod of the target.
type DeletePodChange struct {
	Pod        string `json:"pod"`
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

func (*DeletePod) Needs() []probe.Permission {
	return []probe.Permission{
		perm("apps", "deployments", "get"),
		perm("", "pods", "list"),
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
	c := &DeletePodChange{Pod: pick.Name, Why: why, Reason: reason, PodReady: podReady(pick),
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
