package probe

import (
	"context"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// OwnerNeeds are the permissions of OwnerDeployment: get pods, get replicasets.
func OwnerNeeds() []Permission {
	return []Permission{
		{Group: "", Resource: "pods", Verbs: []string{"get"}},
		{Group: "apps", Resource: "replicasets", Verbs: []string{"get"}},
	}
}

// ownerNeeder lets Rules include OwnerNeeds.
type ownerNeeder struct{}

func (ownerNeeder) Name() string { return "ownerDeployment" }
func (ownerNeeder) Run(context.Context, Target, Params) (Evidence, error) {
	return nil, fmt.Errorf("not a probe")
}
func (ownerNeeder) Needs() []Permission { return OwnerNeeds() }

// OwnerDeployment resolves the Deployment that owns pod namespace/pod
// (pod → controlling ReplicaSet → controlling Deployment), for policies whose
// alerts name a pod. A pod not owned that way is an error: the remediator
// only acts on Deployments.
func OwnerDeployment(ctx context.Context, c kubernetes.Interface, namespace, pod string) (Target, error) {
	if c == nil {
		return Target{}, fmt.Errorf("no Kubernetes client configured")
	}
	p, err := c.CoreV1().Pods(namespace).Get(ctx, pod, metav1.GetOptions{})
	if err != nil {
		return Target{}, fmt.Errorf("get pod %s/%s: %w", namespace, pod, err)
	}
	ref := metav1.GetControllerOf(p)
	if ref == nil || ref.Kind != "ReplicaSet" {
		return Target{}, fmt.Errorf("pod %s/%s is not controlled by a ReplicaSet", namespace, pod)
	}
	rs, err := c.AppsV1().ReplicaSets(namespace).Get(ctx, ref.Name, metav1.GetOptions{})
	if err != nil {
		return Target{}, fmt.Errorf("get replicaset %s/%s: %w", namespace, ref.Name, err)
	}
	if rs.UID != ref.UID {
		return Target{}, fmt.Errorf("replicaset %s/%s was replaced", namespace, ref.Name)
	}
	dref := metav1.GetControllerOf(rs)
	if dref == nil || dref.Kind != "Deployment" {
		return Target{}, fmt.Errorf("replicaset %s/%s is not controlled by a Deployment", namespace, ref.Name)
	}
	t := Target{Namespace: namespace, Kind: "Deployment", Name: dref.Name}
	return t, t.Validate()
}
