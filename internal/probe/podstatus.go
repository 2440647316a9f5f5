package probe

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
)

// PodStatus counts ready pods, restarts, OOM kills and crash loops of the
// target's pods.
type PodStatus struct {
	Client kubernetes.Interface
}

// Name is "podStatus".
func (PodStatus) Name() string { return "podStatus" }

// Needs: get deployments, list pods.
func (PodStatus) Needs() []Permission { return []Permission{permDeployGet, permPodsList} }

// PodInfo is one pod in PodStatusEvidence.
type PodInfo struct {
	Name                  string `cel:"name" json:"name"`
	Ready                 bool   `cel:"ready" json:"ready"`
	Restarts              int64  `cel:"restarts" json:"restarts"`
	LastTerminationReason string `cel:"lastTerminationReason" json:"lastTerminationReason"`
}

// PodStatusEvidence is the podStatus probe's evidence.
type PodStatusEvidence struct {
	Ready        int64     `cel:"ready" json:"ready"`
	Total        int64     `cel:"total" json:"total"`
	Restarts     int64     `cel:"restarts" json:"restarts"`         // sum over all containers
	OOMKilled    int64     `cel:"oomKilled" json:"oomKilled"`       // pods with a container last terminated OOMKilled
	CrashLooping int64     `cel:"crashLooping" json:"crashLooping"` // pods with a container waiting in CrashLoopBackOff
	Pods         []PodInfo `cel:"pods" json:"pods"`
}

// Run lists the target's pods. It takes no parameters.
func (p PodStatus) Run(ctx context.Context, t Target, _ Params) (Evidence, error) {
	_, pods, err := targetPods(ctx, p.Client, t)
	if err != nil {
		return nil, err
	}
	return summarizePods(pods), nil
}

func summarizePods(pods []corev1.Pod) PodStatusEvidence {
	ev := PodStatusEvidence{Pods: []PodInfo{}}
	for i := range pods {
		pod := &pods[i]
		info := PodInfo{Name: pod.Name, Ready: podReady(pod)}
		oom, crash := false, false
		statuses := append(append([]corev1.ContainerStatus(nil), pod.Status.InitContainerStatuses...), pod.Status.ContainerStatuses...)
		for _, cs := range statuses {
			info.Restarts += int64(cs.RestartCount)
			if term := cs.LastTerminationState.Terminated; term != nil {
				if info.LastTerminationReason == "" || term.Reason == "OOMKilled" {
					info.LastTerminationReason = term.Reason
				}
				if term.Reason == "OOMKilled" {
					oom = true
				}
			}
			if term := cs.State.Terminated; term != nil && term.Reason == "OOMKilled" {
				oom = true
				info.LastTerminationReason = term.Reason
			}
			if w := cs.State.Waiting; w != nil && w.Reason == "CrashLoopBackOff" {
				crash = true
			}
		}
		ev.Total++
		if info.Ready {
			ev.Ready++
		}
		ev.Restarts += info.Restarts
		if oom {
			ev.OOMKilled++
		}
		if crash {
			ev.CrashLooping++
		}
		ev.Pods = append(ev.Pods, info)
	}
	return ev
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
