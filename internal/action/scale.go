package action

import (
	"context"
	"fmt"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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

func (*Scale) Needs() []probe.Permission {
	return []probe.Permission{
		perm("apps", "deployments", "get", "patch"),
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
