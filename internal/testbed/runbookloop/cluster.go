package runbookloop

import (
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"

	"github.com/remediator/remediator/internal/testbed"
)

// Admin is a cluster-admin client of the bed.
func (l *Loop) Admin() kubernetes.Interface { return l.admin }

// BadPodLogs is what the bad version's pods log: the errors the
// errorDistribution probe finds after a bad rollout.
func BadPodLogs() []testbed.LogRecord {
	return []testbed.LogRecord{
		{Line: `{"level":"ERROR","msg":"payment gateway returned 502 for order 1001"}`},
		{Line: `{"level":"ERROR","msg":"payment gateway returned 502 for order 1002"}`},
		{Line: `{"level":"ERROR","msg":"nil pointer dereference in CheckoutHandler"}`},
		{Line: `{"level":"info","msg":"served","path":"/api/orders","responseTimeMs":840}`},
	}
}

// RolloutBad rolls out BadImage ("deploy v1.1.0", revision 2), waits for the
// rollout, and makes the new pods log BadPodLogs.
func (l *Loop) RolloutBad() DeploymentState {
	l.t.Helper()
	return l.Rollout(BadImage, "deploy v1.1.0", BadPodLogs()...)
}

// Rollout changes the Deployment's image (with a change-cause), waits for
// the rollout to complete and sets the new pods' logs.
func (l *Loop) Rollout(image, cause string, logs ...testbed.LogRecord) DeploymentState {
	l.t.Helper()
	l.update(func(d *appsv1.Deployment) {
		d.Spec.Template.Spec.Containers[0].Image = image
		if d.Annotations == nil {
			d.Annotations = map[string]string{}
		}
		d.Annotations["kubernetes.io/change-cause"] = cause
	})
	l.WaitRollout(time.Minute)
	if len(logs) > 0 {
		pods, err := testbed.ReadyPods(l.t.Context(), l.admin, l.Namespace, "app="+testbed.DemoDeployment)
		if err != nil {
			l.t.Fatalf("runbookloop: %v", err)
		}
		for _, p := range pods {
			if err := l.bed.SetPodLogs(l.t.Context(), l.Namespace, p.Name, logs); err != nil {
				l.t.Fatalf("runbookloop: %v", err)
			}
		}
	}
	return l.Deployment()
}

// Annotate sets annotations on the Deployment (a value "" removes one).
func (l *Loop) Annotate(annotations map[string]string) {
	l.t.Helper()
	l.update(func(d *appsv1.Deployment) {
		if d.Annotations == nil {
			d.Annotations = map[string]string{}
		}
		for k, v := range annotations {
			if v == "" {
				delete(d.Annotations, k)
			} else {
				d.Annotations[k] = v
			}
		}
	})
}

func (l *Loop) update(change func(*appsv1.Deployment)) {
	l.t.Helper()
	ctx := l.t.Context()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		d, err := l.admin.AppsV1().Deployments(l.Namespace).Get(ctx, testbed.DemoDeployment, metav1.GetOptions{})
		if err != nil {
			return err
		}
		change(d)
		_, err = l.admin.AppsV1().Deployments(l.Namespace).Update(ctx, d, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		l.t.Fatalf("runbookloop: updating deployment %s/%s: %v", l.Namespace, testbed.DemoDeployment, err)
	}
}

// WaitRollout waits until the Deployment's rollout is complete.
func (l *Loop) WaitRollout(d time.Duration) {
	l.t.Helper()
	if err := testbed.WaitForRollout(l.t.Context(), l.admin, l.Namespace, testbed.DemoDeployment, d); err != nil {
		l.t.Fatalf("runbookloop: %v", err)
	}
}

// DeploymentState is what a scenario checks of the Deployment.
type DeploymentState struct {
	Revision   string // deployment.kubernetes.io/revision
	Image      string // the template's first container
	Generation int64
	Replicas   int32
	Ready      int32
}

func (s DeploymentState) String() string {
	return fmt.Sprintf("revision %s, image %s, %d/%d ready (generation %d)", s.Revision, s.Image, s.Ready, s.Replicas, s.Generation)
}

// Deployment reads the Deployment.
func (l *Loop) Deployment() DeploymentState {
	l.t.Helper()
	d, err := l.admin.AppsV1().Deployments(l.Namespace).Get(l.t.Context(), testbed.DemoDeployment, metav1.GetOptions{})
	if err != nil {
		l.t.Fatalf("runbookloop: %v", err)
	}
	s := DeploymentState{Revision: d.Annotations[RevisionAnnotation], Image: d.Spec.Template.Spec.Containers[0].Image,
		Generation: d.Generation, Ready: d.Status.ReadyReplicas}
	if d.Spec.Replicas != nil {
		s.Replicas = *d.Spec.Replicas
	}
	return s
}

// WaitDeployment waits until ok accepts the Deployment's state.
func (l *Loop) WaitDeployment(what string, d time.Duration, ok func(DeploymentState) bool) DeploymentState {
	l.t.Helper()
	var s DeploymentState
	err := poll(l.t.Context(), d, func() (bool, error) {
		s = l.Deployment()
		return ok(s), nil
	})
	if err != nil {
		l.t.Fatalf("deployment %s/%s: %s: %v; last %s", l.Namespace, testbed.DemoDeployment, what, err, s)
	}
	return s
}

// WaitRolledBack waits until the rollback to revision 1's template
// (renumbered 3) has rolled out and demo-app, watching the template, has
// stopped misbehaving.
func (l *Loop) WaitRolledBack(d time.Duration) DeploymentState {
	l.t.Helper()
	s := l.WaitDeployment("rolled back to "+GoodImage+" as revision 3", d, func(s DeploymentState) bool {
		return s.Revision == "3" && s.Image == GoodImage
	})
	l.WaitRollout(d)
	l.WaitDemoApp(false, d)
	return s
}

// HPAState is what a scenario checks of the Deployment's
// HorizontalPodAutoscaler (deploy/demo's, named as the Deployment).
type HPAState struct {
	MinReplicas, MaxReplicas         int32
	CurrentReplicas, DesiredReplicas int32
}

func (s HPAState) String() string {
	return fmt.Sprintf("minReplicas %d, maxReplicas %d, current %d, desired %d", s.MinReplicas, s.MaxReplicas, s.CurrentReplicas, s.DesiredReplicas)
}

// HPA reads the Deployment's HorizontalPodAutoscaler.
func (l *Loop) HPA() HPAState {
	l.t.Helper()
	h, err := l.admin.AutoscalingV2().HorizontalPodAutoscalers(l.Namespace).Get(l.t.Context(), testbed.DemoDeployment, metav1.GetOptions{})
	if err != nil {
		l.t.Fatalf("runbookloop: %v", err)
	}
	s := HPAState{MaxReplicas: h.Spec.MaxReplicas, CurrentReplicas: h.Status.CurrentReplicas, DesiredReplicas: h.Status.DesiredReplicas}
	if h.Spec.MinReplicas != nil {
		s.MinReplicas = *h.Spec.MinReplicas
	}
	return s
}

// OfferedRPSAnnotation on the Deployment is the request rate demo-app
// models as offered to the whole service (cmd/demo-app: 300 saturates the
// demo's 3 replicas, 8 serve it).
const OfferedRPSAnnotation = "demo.remediator.io/offered-rps"

// DemoAppState is part of what demo-app's GET /state answers.
type DemoAppState struct {
	Image         string  `json:"image"`
	Bad           bool    `json:"bad"`
	OfferedRPS    float64 `json:"offeredRPS"`
	ReadyReplicas int32   `json:"readyReplicas"`
	// Utilization is nil while infinite (load, no ready replica).
	Utilization        *float64 `json:"utilization"`
	Saturated          bool     `json:"saturated"`
	MeanLatencySeconds float64  `json:"meanLatencySeconds"`
}

func (s DemoAppState) String() string {
	u := "∞"
	if s.Utilization != nil {
		u = fmt.Sprintf("%.2f", *s.Utilization)
	}
	return fmt.Sprintf("bad %v, offered %g rps, %d ready replicas, utilization %s, saturated %v, mean latency %.3fs",
		s.Bad, s.OfferedRPS, s.ReadyReplicas, u, s.Saturated, s.MeanLatencySeconds)
}

// DemoAppState reads demo-app's state.
func (l *Loop) DemoAppState() DemoAppState {
	l.t.Helper()
	var s DemoAppState
	if err := getJSON(l.t.Context(), l.DemoApp+"/state", "", &s); err != nil {
		l.t.Fatalf("demo-app: %v", err)
	}
	return s
}

// DemoAppBad reports whether demo-app currently misbehaves.
func (l *Loop) DemoAppBad() bool {
	l.t.Helper()
	return l.DemoAppState().Bad
}

// WaitDemoApp waits until demo-app misbehaves (bad) or not.
func (l *Loop) WaitDemoApp(bad bool, d time.Duration) {
	l.t.Helper()
	l.WaitDemoAppState(fmt.Sprintf("misbehaving %v", bad), d, func(s DemoAppState) bool { return s.Bad == bad })
}

// WaitDemoAppState waits until ok accepts demo-app's state, and returns it.
func (l *Loop) WaitDemoAppState(what string, d time.Duration, ok func(DemoAppState) bool) DemoAppState {
	l.t.Helper()
	var s DemoAppState
	if err := poll(l.t.Context(), d, func() (bool, error) { s = l.DemoAppState(); return ok(s), nil }); err != nil {
		l.t.Fatalf("demo-app: %s: %v; last %s", what, err, s)
	}
	return s
}
