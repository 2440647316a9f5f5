package action

import (
	"context"
	"encoding/json"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	typedappsv1 "k8s.io/client-go/kubernetes/typed/apps/v1"
)

// kubectlView is the clientset kubectl's DeploymentRollbacker runs on. It
// is the action's clientset, except that the three calls the rollbacker
// makes (get the Deployment, list its ReplicaSets, patch the Deployment):
//   - run with ctx instead of kubectl's context.TODO(), so the attempt's
//     timeout and the caller's cancellation apply;
//   - keep their last API error in apiErr, because kubectl formats errors
//     with %v and the retry needs the API status to classify them;
//   - the patch also sets metadata.resourceVersion to resourceVersion, the
//     version Apply checked the plan against, so the API server rejects it
//     with a conflict if the Deployment changed since (optimistic
//     concurrency; kubectl's own patch has no precondition).
//
// One view serves one attempt, from one goroutine.
type kubectlView struct {
	kubernetes.Interface
	ctx             context.Context
	resourceVersion string

	apiErr  error
	patched *appsv1.Deployment
}

func (v *kubectlView) note(err error) {
	if err != nil {
		v.apiErr = err
	}
}

func (v *kubectlView) AppsV1() typedappsv1.AppsV1Interface {
	return viewApps{AppsV1Interface: v.Interface.AppsV1(), v: v}
}

type viewApps struct {
	typedappsv1.AppsV1Interface
	v *kubectlView
}

func (a viewApps) Deployments(namespace string) typedappsv1.DeploymentInterface {
	return viewDeployments{DeploymentInterface: a.AppsV1Interface.Deployments(namespace), v: a.v}
}

func (a viewApps) ReplicaSets(namespace string) typedappsv1.ReplicaSetInterface {
	return viewReplicaSets{ReplicaSetInterface: a.AppsV1Interface.ReplicaSets(namespace), v: a.v}
}

type viewDeployments struct {
	typedappsv1.DeploymentInterface
	v *kubectlView
}

func (d viewDeployments) Get(_ context.Context, name string, o metav1.GetOptions) (*appsv1.Deployment, error) {
	out, err := d.DeploymentInterface.Get(d.v.ctx, name, o)
	d.v.note(err)
	return out, err
}

func (d viewDeployments) Patch(_ context.Context, name string, pt types.PatchType, data []byte, o metav1.PatchOptions, sub ...string) (*appsv1.Deployment, error) {
	data, err := withResourceVersion(pt, data, d.v.resourceVersion)
	if err != nil {
		return nil, err
	}
	if o.FieldManager == "" {
		o.FieldManager = fieldManager
	}
	out, err := d.DeploymentInterface.Patch(d.v.ctx, name, pt, data, o, sub...)
	d.v.note(err)
	if err == nil {
		d.v.patched = out
	}
	return out, err
}

type viewReplicaSets struct {
	typedappsv1.ReplicaSetInterface
	v *kubectlView
}

func (r viewReplicaSets) List(_ context.Context, o metav1.ListOptions) (*appsv1.ReplicaSetList, error) {
	out, err := r.ReplicaSetInterface.List(r.v.ctx, o)
	r.v.note(err)
	return out, err
}

// withResourceVersion adds a metadata.resourceVersion precondition to a
// JSON patch (kubectl's rollback patch is one).
func withResourceVersion(pt types.PatchType, data []byte, rv string) ([]byte, error) {
	if rv == "" {
		return data, nil
	}
	if pt != types.JSONPatchType {
		return nil, fmt.Errorf("kubectl rollback: unexpected patch type %s", pt)
	}
	var ops []any
	if err := json.Unmarshal(data, &ops); err != nil {
		return nil, fmt.Errorf("kubectl rollback patch: %w", err)
	}
	ops = append(ops, map[string]any{"op": "replace", "path": "/metadata/resourceVersion", "value": rv})
	return json.Marshal(ops)
}

// kubectlError is an error kubectl reported, unwrapping to the API error
// behind it (if any) so it can be classified.
type kubectlError struct {
	msg string
	api error
}

func (e *kubectlError) Error() string { return "kubectl: " + e.msg }
func (e *kubectlError) Unwrap() error { return e.api }
