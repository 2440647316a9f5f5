package testbed

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// PodHealth is what SetPodHealth writes into a pod's first container
// status, as the kubelet would. kwok does not simulate OOM kills or crash
// loops, so tests that need them write them through the status subresource.
type PodHealth struct {
	Ready    bool
	Restarts int32
	// LastTermination is the reason of the last termination ("OOMKilled",
	// "Error"); empty leaves the last state alone.
	LastTermination string
	LastExitCode    int32
	// Waiting is the current waiting reason ("CrashLoopBackOff"); empty
	// leaves the current state alone.
	Waiting string
}

// SetPodHealth updates namespace/pod's status (first container, and the
// Ready and ContainersReady conditions) with the admin client c.
func SetPodHealth(ctx context.Context, c kubernetes.Interface, namespace, pod string, h PodHealth) error {
	cur, err := c.CoreV1().Pods(namespace).Get(ctx, pod, metav1.GetOptions{})
	if err != nil {
		return err
	}
	if len(cur.Status.ContainerStatuses) == 0 {
		return fmt.Errorf("pod %s/%s has no container status yet", namespace, pod)
	}
	cs := &cur.Status.ContainerStatuses[0]
	cs.Ready = h.Ready
	cs.RestartCount = h.Restarts
	if h.LastTermination != "" {
		cs.LastTerminationState = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
			Reason: h.LastTermination, ExitCode: h.LastExitCode, FinishedAt: metav1.NewTime(time.Now().Add(-time.Minute))}}
	}
	if h.Waiting != "" {
		cs.State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: h.Waiting}}
	}
	status := corev1.ConditionFalse
	if h.Ready {
		status = corev1.ConditionTrue
	}
	for i := range cur.Status.Conditions {
		if t := cur.Status.Conditions[i].Type; t == corev1.PodReady || t == corev1.ContainersReady {
			cur.Status.Conditions[i].Status = status
		}
	}
	_, err = c.CoreV1().Pods(namespace).UpdateStatus(ctx, cur, metav1.UpdateOptions{})
	return err
}
