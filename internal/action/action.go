// Package action implements the remediator's actions (rollback, scale,
// restart, delete-pod, escalate). This package covers the read-only half of
// each action: Plan (the exact intended change) and Check (pre-flight).
// Apply and Verify are not here yet.
//
// Each action declares the Kubernetes permissions it needs in the target's
// namespace (Needs); Check asks the API server, with a SelfSubjectAccessReview
// per verb, whether the remediator holds them. Creating
// selfsubjectaccessreviews is a cluster-level permission that every
// authenticated identity holds through the default system:basic-user
// ClusterRole; it is assumed and not part of Needs.
package action

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/remediator/remediator/internal/probe"
)

// Params are an action's parameters as the policy loader validated them
// (int64 for integers, string, ...).
type Params = probe.Params

// Guard names used in Blocks.
const (
	GuardPreflight = "preflight"
	GuardRBAC      = "rbac"
)

// Block is one reason a pre-flight check refuses a change.
type Block struct {
	Guard  string `json:"guard"` // GuardPreflight or GuardRBAC
	Reason string `json:"reason"`
}

func (b Block) String() string { return "blocked by " + b.Guard + ": " + b.Reason }

// Change is the exact change an action intends to make. It is what dry-run
// records. Exactly one of the detail fields is set, matching Action (none
// for escalate).
type Change struct {
	Action  string       `json:"action"`
	Target  probe.Target `json:"target"`
	Summary string       `json:"summary"`

	Rollback  *RollbackChange  `json:"rollback,omitempty"`
	Scale     *ScaleChange     `json:"scale,omitempty"`
	Restart   *RestartChange   `json:"restart,omitempty"`
	DeletePod *DeletePodChange `json:"deletePod,omitempty"`
	Escalate  *EscalateChange  `json:"escalate,omitempty"`
}

// Action is one kind of remediation.
type Action interface {
	Name() string
	// Needs lists the permissions the action needs in the target's namespace.
	Needs() []probe.Permission
	// Plan works out the exact change without changing anything. It fails
	// when there is nothing sensible to do (no earlier revision, nothing to
	// scale up, no pod to delete, a bound would be broken).
	Plan(ctx context.Context, t probe.Target, p Params) (Change, error)
	// Check is the read-only pre-flight; an empty result means it passes.
	Check(ctx context.Context, t probe.Target, c Change) []Block
}

// New returns every action, by name, working through kube.
func New(kube kubernetes.Interface) map[string]Action {
	out := map[string]Action{}
	for _, a := range []Action{
		&Rollback{kube: kube},
		&Scale{kube: kube},
		&Restart{kube: kube},
		&DeletePod{kube: kube},
		&Escalate{},
	} {
		out[a.Name()] = a
	}
	return out
}

// Rules turns the permissions of actions into RBAC rules (one per
// permission, in a stable order), for a Role or for generating deploy RBAC.
func Rules(actions ...Action) []rbacv1.PolicyRule {
	var out []rbacv1.PolicyRule
	seen := map[string]bool{}
	for _, a := range actions {
		for _, p := range a.Needs() {
			k := p.String()
			if seen[k] {
				continue
			}
			seen[k] = true
			out = append(out, p.PolicyRule())
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].APIGroups[0] != out[j].APIGroups[0] {
			return out[i].APIGroups[0] < out[j].APIGroups[0]
		}
		return out[i].Resources[0] < out[j].Resources[0]
	})
	return out
}

// Annotations the actions read or plan to write.
const (
	revisionAnnotation    = "deployment.kubernetes.io/revision"
	restartedAtAnnotation = "kubectl.kubernetes.io/restartedAt"
)

func perm(group, resource string, verbs ...string) probe.Permission {
	return probe.Permission{Group: group, Resource: resource, Verbs: verbs}
}

// getDeployment reads the target Deployment after validating the target.
func getDeployment(ctx context.Context, kube kubernetes.Interface, t probe.Target) (*appsv1.Deployment, error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	d, err := kube.AppsV1().Deployments(t.Namespace).Get(ctx, t.Name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("read deployment %s/%s: %w", t.Namespace, t.Name, err)
	}
	return d, nil
}

func replicasOf(d *appsv1.Deployment) int32 {
	if d.Spec.Replicas != nil {
		return *d.Spec.Replicas
	}
	return 1
}

// rolloutInProgress applies the rule of `kubectl rollout status`: the
// controller has not observed the latest spec, or not every replica is
// updated and available, or old replicas are still running. It returns
// why, or "" when the rollout is complete.
func rolloutInProgress(d *appsv1.Deployment) string {
	want := replicasOf(d)
	s := d.Status
	switch {
	case s.ObservedGeneration < d.Generation:
		return fmt.Sprintf("rollout in progress: generation %d not yet observed (observed %d)", d.Generation, s.ObservedGeneration)
	case s.UpdatedReplicas < want:
		return fmt.Sprintf("rollout in progress: %d of %d replicas updated", s.UpdatedReplicas, want)
	case s.Replicas > s.UpdatedReplicas:
		return fmt.Sprintf("rollout in progress: %d old replicas pending termination", s.Replicas-s.UpdatedReplicas)
	case s.AvailableReplicas < want:
		return fmt.Sprintf("rollout in progress: %d of %d replicas available", s.AvailableReplicas, want)
	}
	return ""
}

type checkOpts struct {
	rollout   bool // block when a rollout is in progress
	notPaused bool // block when the Deployment is paused
	// stale, when set, says why the plan no longer matches the Deployment
	// ("" when it still does).
	stale func(d *appsv1.Deployment) string
}

// check is the common pre-flight: the Deployment exists, optionally no
// rollout in progress and not paused, and every needed permission is held.
func check(ctx context.Context, kube kubernetes.Interface, t probe.Target, needs []probe.Permission, o checkOpts) []Block {
	var blocks []Block
	if err := t.Validate(); err != nil {
		return []Block{{Guard: GuardPreflight, Reason: err.Error()}}
	}
	d, err := kube.AppsV1().Deployments(t.Namespace).Get(ctx, t.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		blocks = append(blocks, Block{Guard: GuardPreflight, Reason: fmt.Sprintf("deployment %s/%s not found", t.Namespace, t.Name)})
	case apierrors.IsForbidden(err):
		// The access review below names the missing permission.
	case err != nil:
		blocks = append(blocks, Block{Guard: GuardPreflight, Reason: fmt.Sprintf("cannot read deployment %s/%s: %v", t.Namespace, t.Name, err)})
	default:
		if o.notPaused && d.Spec.Paused {
			blocks = append(blocks, Block{Guard: GuardPreflight, Reason: fmt.Sprintf("deployment %s/%s is paused", t.Namespace, t.Name)})
		}
		if o.rollout {
			if why := rolloutInProgress(d); why != "" {
				blocks = append(blocks, Block{Guard: GuardPreflight, Reason: fmt.Sprintf("deployment %s/%s: %s", t.Namespace, t.Name, why)})
			}
		}
		if o.stale != nil {
			if why := o.stale(d); why != "" {
				blocks = append(blocks, Block{Guard: GuardPreflight, Reason: fmt.Sprintf("plan is stale: %s", why)})
			}
		}
	}
	return append(blocks, accessReview(ctx, kube, t.Namespace, needs)...)
}

// accessReview asks, one SelfSubjectAccessReview per verb, whether the
// client may do each of needs in namespace; each denial is a Block.
func accessReview(ctx context.Context, kube kubernetes.Interface, namespace string, needs []probe.Permission) []Block {
	var blocks []Block
	for _, p := range needs {
		resource, sub, _ := strings.Cut(p.Resource, "/")
		for _, verb := range p.Verbs {
			what := fmt.Sprintf("%s %s in namespace %s", verb, p.Resource, namespace)
			r, err := kube.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{
				Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authorizationv1.ResourceAttributes{
					Namespace: namespace, Verb: verb, Group: p.Group, Resource: resource, Subresource: sub,
				}},
			}, metav1.CreateOptions{})
			switch {
			case err != nil:
				blocks = append(blocks, Block{Guard: GuardRBAC, Reason: fmt.Sprintf("cannot verify permission to %s: %v", what, err)})
			case !r.Status.Allowed:
				reason := "cannot " + what
				if r.Status.Reason != "" || r.Status.EvaluationError != "" {
					reason += " (" + strings.TrimSpace(r.Status.Reason+" "+r.Status.EvaluationError) + ")"
				}
				blocks = append(blocks, Block{Guard: GuardRBAC, Reason: reason})
			}
		}
	}
	return blocks
}

// ErrRefused is wrapped by Plan errors meaning the action refuses to act
// on the current state (nothing earlier to roll back to, nothing to scale
// up, a bound would be broken), as opposed to failures to read the cluster.
var ErrRefused = errors.New("refused")

func refuse(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrRefused, fmt.Sprintf(format, args...))
}
