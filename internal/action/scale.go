package action

import (
	"context"
	"errors"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/remediator/remediator/internal/probe"
)

// ScaleChange raises the Deployment's spec.replicas or, when an HPA manages
// the Deployment, the HPA's spec.minReplicas.
type ScaleChange struct {
	ViaHPA bool   `json:"viaHPA"`
	HPA    string `json:"hpa,omitempty"`    // name of the HPA when ViaHPA
	Field  string `json:"field"`            // "spec.replicas" or "spec.minReplicas"
	From   int32  `json:"from"`             // current value of Field
	To     int32  `json:"to"`               // planned value of Field
	Max    int32  `json:"max,omitempty"`    // the bound applied (policy max and HPA maxReplicas)
	Capped bool   `json:"capped,omitempty"` // the requested value was lowered to Max
	// CappedBy names the bound that lowered it: "max" (the policy) or
	// "HPA maxReplicas".
	CappedBy string `json:"cappedBy,omitempty"`
	// Replicas is the Deployment's spec.replicas now (with an HPA, raising
	// minReplicas to at most this changes no pod count at once).
	Replicas int32 `json:"replicas"`
}

// Scale is `kubectl scale`, HPA-aware: parameter replicas (absolute) or step
// (added), bounded by parameter max. An HPA fights manual scaling, so when
// one targets the Deployment its minReplicas is raised instead (bounded
// also by its maxReplicas).
type Scale struct{ kube kubernetes.Interface }

func (*Scale) Name() string { return "scale" }

// Needs: Plan and Verify read the Deployment and list HPAs; without an HPA
// Apply reads and updates the scale subresource (as `kubectl scale`), with
// one it reads and patches the HPA.
func (*Scale) Needs() []probe.Permission {
	return []probe.Permission{
		perm("apps", "deployments", "get"),
		perm("apps", "deployments/scale", "get", "update"),
		perm("autoscaling", "horizontalpodautoscalers", "get", "list", "patch"),
	}
}

func (a *Scale) Plan(ctx context.Context, t probe.Target, p Params) (Change, error) {
	replicas, err := p.Int("replicas", 0)
	if err != nil {
		return Change{}, err
	}
	step, err := p.Int("step", 0)
	if err != nil {
		return Change{}, err
	}
	max, err := p.Int("max", 0)
	if err != nil {
		return Change{}, err
	}
	switch {
	case (replicas > 0) == (step > 0):
		return Change{}, fmt.Errorf("scale: exactly one of the parameters replicas and step must be set (> 0)")
	case max < 0 || replicas < 0 || step < 0 || max > 1<<20 || replicas > 1<<20 || step > 1<<20:
		return Change{}, fmt.Errorf("scale: parameters out of range")
	}
	d, err := getDeployment(ctx, a.kube, t)
	if err != nil {
		return Change{}, err
	}
	hpa, err := a.hpaFor(ctx, t)
	if err != nil {
		return Change{}, err
	}
	c := &ScaleChange{Field: "spec.replicas", From: replicasOf(d), Max: int32(max), Replicas: replicasOf(d), CappedBy: "max"}
	if hpa != nil {
		c.ViaHPA, c.HPA, c.Field, c.From = true, hpa.Name, "spec.minReplicas", 1
		if hpa.Spec.MinReplicas != nil {
			c.From = *hpa.Spec.MinReplicas
		}
		if c.Max == 0 || hpa.Spec.MaxReplicas < c.Max {
			c.Max, c.CappedBy = hpa.Spec.MaxReplicas, "HPA maxReplicas"
		}
	}
	want := int64(c.From) + step
	if replicas > 0 {
		want = replicas
	}
	c.To = int32(want)
	if c.Max > 0 && c.To > c.Max {
		c.To, c.Capped = c.Max, true
	}
	if !c.Capped {
		c.CappedBy = ""
	}
	var what string
	if c.ViaHPA {
		what = fmt.Sprintf("deployment %s/%s via HPA minReplicas (%s)", t.Namespace, t.Name, c.HPA)
	} else {
		what = fmt.Sprintf("deployment %s/%s replicas", t.Namespace, t.Name)
	}
	if c.To <= c.From {
		return Change{}, refuse("scale %s: %d → %d would not increase anything (max %d)", what, c.From, want, c.Max)
	}
	summary := fmt.Sprintf("scale %s %d → %d", what, c.From, c.To)
	if c.Capped {
		summary += fmt.Sprintf(" (capped by %s %d, requested %d)", c.CappedBy, c.Max, want)
	}
	if c.ViaHPA && c.To <= c.Replicas {
		summary += fmt.Sprintf(" (no immediate effect: the Deployment already has %d replicas)", c.Replicas)
	}
	return Change{Action: a.Name(), Target: t, Summary: summary, Scale: c}, nil
}

// hpaFor returns the autoscaling/v2 HPA in t's namespace whose
// scaleTargetRef is the target Deployment, or nil.
func (a *Scale) hpaFor(ctx context.Context, t probe.Target) (*autoscalingv2.HorizontalPodAutoscaler, error) {
	l, err := a.kube.AutoscalingV2().HorizontalPodAutoscalers(t.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list horizontalpodautoscalers in %s: %w", t.Namespace, err)
	}
	for i := range l.Items {
		ref := l.Items[i].Spec.ScaleTargetRef
		if ref.Kind == "Deployment" && ref.Name == t.Name {
			return &l.Items[i], nil
		}
	}
	return nil, nil
}

func (a *Scale) Check(ctx context.Context, t probe.Target, _ Change) []Block {
	return check(ctx, a.kube, t, a.Needs(), checkOpts{rollout: true})
}

// hpaState reads the planned HPA and checks it still targets the Deployment
// (ErrStale if not, or if it is gone).
func (a *Scale) hpaState(ctx context.Context, t probe.Target, s *ScaleChange) (*autoscalingv2.HorizontalPodAutoscaler, int32, error) {
	h, err := a.kube.AutoscalingV2().HorizontalPodAutoscalers(t.Namespace).Get(ctx, s.HPA, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return nil, 0, stale("HPA %s/%s is gone", t.Namespace, s.HPA)
	case err != nil:
		return nil, 0, fmt.Errorf("read HPA %s/%s: %w", t.Namespace, s.HPA, err)
	}
	if ref := h.Spec.ScaleTargetRef; ref.Kind != "Deployment" || ref.Name != t.Name {
		return nil, 0, stale("HPA %s/%s now targets %s %s", t.Namespace, s.HPA, ref.Kind, ref.Name)
	}
	cur := int32(1)
	if h.Spec.MinReplicas != nil {
		cur = *h.Spec.MinReplicas
	}
	return h, cur, nil
}

// Apply raises the HPA's spec.minReplicas (JSON merge patch) or, without an
// HPA, the Deployment's replicas through the scale subresource (update),
// both with the resourceVersion read as a precondition. A value already
// above To is ErrStale (it was raised further meanwhile; writing would
// lower it); a value below To other than From is raised to To all the same.
func (a *Scale) Apply(ctx context.Context, c Change) (Applied, error) {
	t, err := target(c, a.Name(), c.Scale != nil)
	if err != nil {
		return Applied{}, err
	}
	s := c.Scale
	if s.ViaHPA {
		what := fmt.Sprintf("scale deployment %s/%s via HPA %s minReplicas %d → %d", t.Namespace, t.Name, s.HPA, s.From, s.To)
		return apply(ctx, what, func(ctx context.Context) (Applied, error) {
			h, cur, err := a.hpaState(ctx, t, s)
			if err != nil {
				return Applied{}, err
			}
			switch {
			case cur == s.To:
				return Applied{AlreadyDone: true, ResourceVersion: h.ResourceVersion,
					Detail: fmt.Sprintf("already done: HPA %s/%s spec.minReplicas is %d", t.Namespace, s.HPA, cur)}, nil
			case cur > s.To:
				return Applied{}, stale("HPA %s/%s spec.minReplicas is %d, above the planned %d (planned from %d)", t.Namespace, s.HPA, cur, s.To, s.From)
			case s.To > h.Spec.MaxReplicas:
				return Applied{}, stale("HPA %s/%s spec.maxReplicas is now %d, below the planned minReplicas %d", t.Namespace, s.HPA, h.Spec.MaxReplicas, s.To)
			}
			patch := fmt.Sprintf(`{"metadata":{"resourceVersion":%q},"spec":{"minReplicas":%d}}`, h.ResourceVersion, s.To)
			out, err := a.kube.AutoscalingV2().HorizontalPodAutoscalers(t.Namespace).Patch(ctx, s.HPA, types.MergePatchType, []byte(patch),
				metav1.PatchOptions{FieldManager: fieldManager})
			if err != nil {
				return Applied{}, fmt.Errorf("patch HPA %s/%s: %w", t.Namespace, s.HPA, err)
			}
			return Applied{ResourceVersion: out.ResourceVersion,
				Detail: fmt.Sprintf("HPA %s/%s spec.minReplicas %d → %d%s (deployment %s/%s)", t.Namespace, s.HPA, cur, s.To, plannedFrom(cur, s.From), t.Namespace, t.Name)}, nil
		})
	}
	what := fmt.Sprintf("scale deployment %s/%s replicas %d → %d", t.Namespace, t.Name, s.From, s.To)
	return apply(ctx, what, func(ctx context.Context) (Applied, error) {
		hpa, err := a.hpaFor(ctx, t)
		if err != nil {
			return Applied{}, err
		}
		if hpa != nil {
			return Applied{}, stale("HPA %s/%s now manages deployment %s; it would undo a change of spec.replicas", t.Namespace, hpa.Name, t.Name)
		}
		deps := a.kube.AppsV1().Deployments(t.Namespace)
		sc, err := deps.GetScale(ctx, t.Name, metav1.GetOptions{})
		if err != nil {
			return Applied{}, fmt.Errorf("read scale of deployment %s/%s: %w", t.Namespace, t.Name, err)
		}
		cur := sc.Spec.Replicas
		switch {
		case cur == s.To:
			return Applied{AlreadyDone: true, ResourceVersion: sc.ResourceVersion,
				Detail: fmt.Sprintf("already done: deployment %s/%s spec.replicas is %d", t.Namespace, t.Name, cur)}, nil
		case cur > s.To:
			return Applied{}, stale("deployment %s/%s spec.replicas is %d, above the planned %d (planned from %d)", t.Namespace, t.Name, cur, s.To, s.From)
		}
		sc.Spec.Replicas = s.To // sc carries the resourceVersion read: a precondition
		out, err := deps.UpdateScale(ctx, t.Name, sc, metav1.UpdateOptions{FieldManager: fieldManager})
		if err != nil {
			return Applied{}, fmt.Errorf("update scale of deployment %s/%s: %w", t.Namespace, t.Name, err)
		}
		return Applied{ResourceVersion: out.ResourceVersion,
			Detail: fmt.Sprintf("deployment %s/%s spec.replicas %d → %d%s (scale subresource)", t.Namespace, t.Name, cur, s.To, plannedFrom(cur, s.From))}, nil
	})
}

func plannedFrom(cur, from int32) string {
	if cur == from {
		return ""
	}
	return fmt.Sprintf(" (planned from %d)", from)
}

// Observe: the field is To.
func (a *Scale) Observe(ctx context.Context, c Change) (Observation, error) {
	t, err := target(c, a.Name(), c.Scale != nil)
	if err != nil {
		return Observation{}, err
	}
	s := c.Scale
	var cur int32
	var field string
	if s.ViaHPA {
		field = fmt.Sprintf("HPA %s/%s spec.minReplicas", t.Namespace, s.HPA)
		_, cur, err = a.hpaState(ctx, t, s)
		if errors.Is(err, ErrStale) {
			return Observation{Detail: err.Error()}, nil
		}
	} else {
		field = fmt.Sprintf("deployment %s/%s spec.replicas", t.Namespace, t.Name)
		var d *appsv1.Deployment
		if d, err = getDeployment(ctx, a.kube, t); err == nil {
			cur = replicasOf(d)
		}
	}
	if err != nil {
		return Observation{}, err
	}
	if cur == s.To {
		return Observation{Applied: true, Detail: fmt.Sprintf("%s is %d", field, cur)}, nil
	}
	return Observation{Detail: fmt.Sprintf("%s is %d, not the planned %d (planned from %d)", field, cur, s.To, s.From)}, nil
}

// Verify waits until the scaled field is at least To and the Deployment has
// at least To replicas, all updated and available (`kubectl rollout
// status`). With an HPA that means its controller has acted on the raised
// minReplicas: it scales a target below minReplicas up to it even without
// metrics (on the test bed there is no metrics API, and it does).
func (a *Scale) Verify(ctx context.Context, c Change) (Verification, error) {
	t, err := target(c, a.Name(), c.Scale != nil)
	if err != nil {
		return Verification{}, err
	}
	s := c.Scale
	return poll(ctx, func(ctx context.Context) (bool, string, error) {
		var hpaNote string
		if s.ViaHPA {
			h, cur, err := a.hpaState(ctx, t, s)
			if err != nil {
				return false, "", err
			}
			if cur < s.To {
				return false, fmt.Sprintf("HPA %s/%s spec.minReplicas is %d, below %d", t.Namespace, s.HPA, cur, s.To), nil
			}
			hpaNote = fmt.Sprintf("HPA %s/%s minReplicas %d, desiredReplicas %d; ", t.Namespace, s.HPA, cur, h.Status.DesiredReplicas)
		}
		d, err := getDeployment(ctx, a.kube, t)
		if err != nil {
			return false, "", err
		}
		if r := replicasOf(d); r < s.To {
			return false, fmt.Sprintf("%sdeployment %s/%s spec.replicas is %d, below %d", hpaNote, t.Namespace, t.Name, r, s.To), nil
		}
		done, why, err := rolloutStatus(d)
		if err != nil || !done {
			return false, hpaNote + why, err
		}
		if d.Status.AvailableReplicas < s.To {
			return false, fmt.Sprintf("%sdeployment %s/%s has %d available replicas, below %d", hpaNote, t.Namespace, t.Name, d.Status.AvailableReplicas, s.To), nil
		}
		return true, fmt.Sprintf("%sdeployment %s/%s has %d of %d replicas available", hpaNote, t.Namespace, t.Name, d.Status.AvailableReplicas, replicasOf(d)), nil
	})
}
