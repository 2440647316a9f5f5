// Package action implements the remediator's actions (rollback, scale,
// restart, delete-pod, escalate). Each action has a read-only half, Plan
// (the exact intended change) and Check (pre-flight), and an executing half:
// Apply (make the change), Observe (is it in effect now?) and Verify (wait
// until it has taken effect).
//
// Each action declares the Kubernetes permissions it needs in the target's
// namespace (Needs), for every call including Apply, Observe and Verify;
// Check asks the API server, with a SelfSubjectAccessReview per verb,
// whether the remediator holds them. Creating selfsubjectaccessreviews is a
// cluster-level permission that every authenticated identity holds through
// the default system:basic-user ClusterRole; it is assumed and not part of
// Needs.
//
// # Apply
//
// Apply is idempotent and never acts on a stale plan. Every attempt first
// reads the object: if the change is already in effect it returns
// Applied{AlreadyDone: true} without writing; if the object moved on since
// the plan so that writing would be wrong it returns an error wrapping
// ErrStale without writing. Writes carry the resourceVersion of that read as
// a precondition, so a concurrent change makes the write fail with a
// conflict instead of overwriting it; the next attempt reads again and
// decides again. Transient failures (network errors, timeouts, 5xx, 429 other
// than an eviction's, conflicts) are retried with bounded exponential backoff
// (5 attempts, 200 ms doubling, each attempt at most 10 s, 20 s in all, and
// never beyond the caller's context); because every attempt re-reads, a
// write that landed although its response was lost is then seen as done.
// Other errors (Forbidden, NotFound, Invalid, a refusal) return at once,
// wrapped, so errors.Is/apierrors.IsForbidden work on them.
//
// The writes are kubectl's:
//   - rollback is `kubectl rollout undo --to-revision`: kubectl's own
//     DeploymentRollbacker (k8s.io/kubectl/pkg/polymorphichelpers,
//     RollbackerFor) run on the action's clientset, so its rules hold
//     (a paused Deployment is refused; "skipped rollback (current template
//     already matches revision N)" is reported as AlreadyDone). kubectl's
//     RollbackerFn only turns a RESTClientGetter into a clientset and calls
//     RollbackerFor, so no REST config is needed: New takes the clientset
//     alone (NewWithConfig exists for callers holding a config). kubectl
//     calls the API with context.TODO() and formats API errors with %v; the
//     clientset it is given is a thin view that binds its three calls (get
//     the Deployment, list its ReplicaSets, patch) to the attempt's
//     context, keeps their API errors for classification, and adds the
//     resourceVersion Apply validated to kubectl's JSON patch as a
//     precondition (kubectlView).
//   - restart is `kubectl rollout restart`: the same strategic merge patch
//     of the pod template annotation kubectl.kubernetes.io/restartedAt, with
//     the planned timestamp (kubectl's ObjectRestarterFn stamps time.Now(),
//     which would not be idempotent).
//   - scale is `kubectl scale` through the scale subresource (get, then
//     update with the resourceVersion precondition) or, when an HPA manages
//     the Deployment, a JSON merge patch of the HPA's spec.minReplicas.
//   - delete-pod evicts the pod through the Eviction API (policy/v1) with a
//     UID precondition, so PodDisruptionBudgets are honoured: the 429 of an
//     eviction that a budget forbids is ErrDisruptionBudget, never retried.
//
// # Observe and Verify
//
// Observe reports exactly what Apply would treat as AlreadyDone, so a
// reconciler that finds an intent without an outcome can tell whether the
// write landed. Verify polls (every 500 ms) until the change has taken
// effect — `kubectl rollout status` complete (kubectl's
// DeploymentStatusViewer) plus the change's own condition — or until its
// context ends, when it returns Verification{OK: false} with the last reason.
// Neither writes.
package action

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

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
	// Apply makes the change c (from Plan). It is idempotent: it first
	// reads the object; if the change is already in effect it returns
	// Applied{AlreadyDone: true} without writing; if the object moved on
	// since the plan so that applying would be wrong, it returns an error
	// wrapping ErrStale without writing. Transient API failures are retried
	// with bounded exponential backoff, re-reading before every attempt;
	// other errors return at once, wrapped. Applied.Attempts is set also
	// when an error is returned.
	Apply(ctx context.Context, c Change) (Applied, error)
	// Observe reads the cluster and says whether c is in effect now (what
	// Apply would call AlreadyDone), to reconcile an intent whose outcome
	// was never recorded. It never writes.
	Observe(ctx context.Context, c Change) (Observation, error)
	// Verify waits until the change has taken effect and returns OK, or
	// returns OK false with the reason when ctx ends (the caller sets the
	// deadline) or when it cannot take effect (a rollout past its progress
	// deadline). The error is for failures to read the cluster that are not
	// transient (Forbidden, NotFound). It never writes.
	Verify(ctx context.Context, c Change) (Verification, error)
}

// Applied is the outcome of Apply.
type Applied struct {
	// AlreadyDone: the change was found in effect and nothing was written
	// by this attempt (with Attempts > 1, an earlier attempt's write whose
	// response was lost may have made it).
	AlreadyDone bool `json:"alreadyDone,omitempty"`
	// Detail says what was done, e.g. "deployment ns/x rolled back to
	// revision 1 (image ...)".
	Detail string `json:"detail"`
	// ResourceVersion of the written object (of the object read, when
	// AlreadyDone).
	ResourceVersion string `json:"resourceVersion,omitempty"`
	// Attempts made, each a read and at most one write; 0 only when the
	// change itself was invalid (wrong action, no details).
	Attempts int `json:"attempts"`
}

// Observation says whether a change is in effect.
type Observation struct {
	Applied bool   `json:"applied"`
	Detail  string `json:"detail"`
}

// Verification is the outcome of Verify.
type Verification struct {
	OK     bool          `json:"ok"`
	Detail string        `json:"detail"`
	Waited time.Duration `json:"waited"`
}

// ErrStale is wrapped by Apply errors meaning the object moved on since the
// plan, so that applying it would be wrong; nothing was written.
var ErrStale = errors.New("plan is stale")

// ErrDisruptionBudget is wrapped by delete-pod's Apply error when a
// PodDisruptionBudget forbids the eviction; nothing was deleted.
var ErrDisruptionBudget = errors.New("blocked by PodDisruptionBudget")

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

// NewWithConfig is New for callers that hold the REST config of kube.
// No action needs it: kubectl's rollback helper runs on a clientset
// (polymorphichelpers.RollbackerFn only builds one from its
// RESTClientGetter's config and calls RollbackerFor, which this package
// calls with kube). cfg is used only when kube is nil, to build the
// clientset; if that fails the actions have no client, as with New(nil).
func NewWithConfig(kube kubernetes.Interface, cfg *rest.Config) map[string]Action {
	if kube == nil && cfg != nil {
		if cs, err := kubernetes.NewForConfig(cfg); err == nil {
			kube = cs
		}
	}
	return New(kube)
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

// fieldManager names the remediator's writes in managedFields.
const fieldManager = "remediator"

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
