package action

import (
	"context"
	"fmt"
	"time"

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
