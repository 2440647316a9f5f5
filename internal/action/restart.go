package action

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/remediator/remediator/internal/probe"
)

// RestartChange sets the pod-template annotation that makes the Deployment
// roll all its pods, as `kubectl rollout restart` does.
type RestartChange struct {
	Annotation string `json:"annotation"`     // kubectl.kubernetes.io/restartedAt
	From       string `json:"from,omitempty"` // its current value, if any
	To         string `json:"to"`             // the planned timestamp (RFC 3339)
}

// Restart is `kubectl rollout restart`.
type Restart struct {
	kube kubernetes.Interface
	now  func() time.Time // for tests; time.Now when nil
}

func (*Restart) Name() string { return "restart" }

func (*Restart) Needs() []probe.Permission {
	return []probe.Permission{perm("apps", "deployments", "get", "patch")}
}

func (a *Restart) Plan(ctx context.Context, t probe.Target, _ Params) (Change, error) {
	d, err := getDeployment(ctx, a.kube, t)
	if err != nil {
		return Change{}, err
	}
	now := time.Now
	if a.now != nil {
		now = a.now
	}
	c := &RestartChange{Annotation: restartedAtAnnotation, From: d.Spec.Template.Annotations[restartedAtAnnotation],
		To: now().UTC().Format(time.RFC3339)}
	return Change{Action: a.Name(), Target: t, Restart: c,
		Summary: fmt.Sprintf("restart deployment %s/%s (pod template annotation %s=%s)", t.Namespace, t.Name, c.Annotation, c.To)}, nil
}

func (a *Restart) Check(ctx context.Context, t probe.Target, _ Change) []Block {
	return check(ctx, a.kube, t, a.Needs(), checkOpts{rollout: true, notPaused: true})
}

// Apply makes kubectl rollout restart's strategic merge patch of the pod
// template annotation, with the planned timestamp To and the
// resourceVersion read as a precondition. The annotation at To is
// AlreadyDone; at anything but From or To, ErrStale (someone else
// restarted it meanwhile). Like kubectl, it refuses a paused Deployment.
func (a *Restart) Apply(ctx context.Context, c Change) (Applied, error) {
	t, err := target(c, a.Name(), c.Restart != nil)
	if err != nil {
		return Applied{}, err
	}
	r := c.Restart
	what := fmt.Sprintf("restart deployment %s/%s", t.Namespace, t.Name)
	return apply(ctx, what, func(ctx context.Context) (Applied, error) {
		d, err := getDeployment(ctx, a.kube, t)
		if err != nil {
			return Applied{}, err
		}
		switch cur := d.Spec.Template.Annotations[r.Annotation]; {
		case cur == r.To:
			return Applied{AlreadyDone: true, ResourceVersion: d.ResourceVersion,
				Detail: fmt.Sprintf("already done: deployment %s/%s pod template has %s=%s", t.Namespace, t.Name, r.Annotation, cur)}, nil
		case cur != r.From:
			return Applied{}, stale("deployment %s/%s pod template has %s=%q, planned from %q", t.Namespace, t.Name, r.Annotation, cur, r.From)
		case d.Spec.Paused:
			return Applied{}, refuse("deployment %s/%s is paused; kubectl does not restart a paused deployment (resume it first)", t.Namespace, t.Name)
		}
		patch, err := json.Marshal(map[string]any{
			"metadata": map[string]any{"resourceVersion": d.ResourceVersion},
			"spec": map[string]any{"template": map[string]any{"metadata": map[string]any{
				"annotations": map[string]string{r.Annotation: r.To}}}},
		})
		if err != nil {
			return Applied{}, err
		}
		out, err := a.kube.AppsV1().Deployments(t.Namespace).Patch(ctx, t.Name, types.StrategicMergePatchType, patch,
			metav1.PatchOptions{FieldManager: fieldManager})
		if err != nil {
			return Applied{}, fmt.Errorf("patch deployment %s/%s: %w", t.Namespace, t.Name, err)
		}
		return Applied{ResourceVersion: out.ResourceVersion,
			Detail: fmt.Sprintf("deployment %s/%s restarted: pod template %s=%s (generation %d)", t.Namespace, t.Name, r.Annotation, r.To, out.Generation)}, nil
	})
}

// Observe: the pod template annotation is To.
func (a *Restart) Observe(ctx context.Context, c Change) (Observation, error) {
	t, err := target(c, a.Name(), c.Restart != nil)
	if err != nil {
		return Observation{}, err
	}
	d, err := getDeployment(ctx, a.kube, t)
	if err != nil {
		return Observation{}, err
	}
	cur := d.Spec.Template.Annotations[c.Restart.Annotation]
	if cur == c.Restart.To {
		return Observation{Applied: true, Detail: fmt.Sprintf("deployment %s/%s pod template has %s=%s", t.Namespace, t.Name, c.Restart.Annotation, cur)}, nil
	}
	return Observation{Detail: fmt.Sprintf("deployment %s/%s pod template has %s=%q, not %q", t.Namespace, t.Name, c.Restart.Annotation, cur, c.Restart.To)}, nil
}

// Verify waits until the pod template has the annotation To and `kubectl
// rollout status` reports the rollout complete (every pod replaced).
func (a *Restart) Verify(ctx context.Context, c Change) (Verification, error) {
	t, err := target(c, a.Name(), c.Restart != nil)
	if err != nil {
		return Verification{}, err
	}
	r := c.Restart
	return poll(ctx, func(ctx context.Context) (bool, string, error) {
		d, err := getDeployment(ctx, a.kube, t)
		if err != nil {
			return false, "", err
		}
		if cur := d.Spec.Template.Annotations[r.Annotation]; cur != r.To {
			return false, fmt.Sprintf("deployment %s/%s pod template has %s=%q, not %q", t.Namespace, t.Name, r.Annotation, cur, r.To), nil
		}
		return rolloutStatus(d)
	})
}
