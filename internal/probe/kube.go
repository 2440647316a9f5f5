package probe

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

func getDeployment(ctx context.Context, c kubernetes.Interface, t Target) (*appsv1.Deployment, error) {
	if c == nil {
		return nil, fmt.Errorf("no Kubernetes client configured")
	}
	d, err := c.AppsV1().Deployments(t.Namespace).Get(ctx, t.Name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("get deployment %s/%s: %w", t.Namespace, t.Name, err)
	}
	return d, nil
}

func selectorOf(d *appsv1.Deployment) (string, error) {
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		return "", fmt.Errorf("deployment %s/%s selector: %w", d.Namespace, d.Name, err)
	}
	if sel.Empty() {
		return "", fmt.Errorf("deployment %s/%s has an empty selector; refusing to select every pod", d.Namespace, d.Name)
	}
	return sel.String(), nil
}

// targetPods lists the live (not terminating) pods of the target Deployment.
func targetPods(ctx context.Context, c kubernetes.Interface, t Target) (*appsv1.Deployment, []corev1.Pod, error) {
	d, err := getDeployment(ctx, c, t)
	if err != nil {
		return nil, nil, err
	}
	sel, err := selectorOf(d)
	if err != nil {
		return nil, nil, err
	}
	l, err := c.CoreV1().Pods(t.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return nil, nil, fmt.Errorf("list pods of %s/%s: %w", t.Namespace, t.Name, err)
	}
	pods := make([]corev1.Pod, 0, len(l.Items))
	for _, p := range l.Items {
		if p.DeletionTimestamp == nil {
			pods = append(pods, p)
		}
	}
	return d, pods, nil
}
