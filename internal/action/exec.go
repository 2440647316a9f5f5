package action

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/kubectl/pkg/polymorphichelpers"

	"github.com/remediator/remediator/internal/probe"
)

// retryPolicy bounds Apply's retries of transient failures.
type retryPolicy struct {
	backoff wait.Backoff  // Steps is the number of attempts
	attempt time.Duration // timeout of one attempt
	budget  time.Duration // timeout of all attempts together
}

var defaultRetry = retryPolicy{
	backoff: wait.Backoff{Duration: 200 * time.Millisecond, Factor: 2, Steps: 5, Cap: 5 * time.Second},
	attempt: 10 * time.Second,
	budget:  20 * time.Second,
}

// errNoRetry marks an error an attempt found final although its class
// would be transient (the 429 of a forbidden eviction).
type errNoRetry struct{ err error }

func (e errNoRetry) Error() string { return e.err.Error() }
func (e errNoRetry) Unwrap() error { return e.err }

func final(err error) error { return errNoRetry{err} }

// apply runs attempt until it succeeds, fails with an error that is not
// transient, or the policy's attempts or budget (or ctx) run out. Each
// attempt must read the object before writing, so that it sees what an
// earlier attempt did. what names the change in errors.
func apply(ctx context.Context, what string, attempt func(ctx context.Context) (Applied, error)) (Applied, error) {
	return applyWith(ctx, defaultRetry, what, attempt)
}

func applyWith(ctx context.Context, p retryPolicy, what string, attempt func(ctx context.Context) (Applied, error)) (Applied, error) {
	ctx, cancel := context.WithTimeout(ctx, p.budget)
	defer cancel()
	b := p.backoff
	steps := b.Steps
	for n := 1; ; n++ {
		actx, acancel := context.WithTimeout(ctx, p.attempt)
		res, err := attempt(actx)
		acancel()
		res.Attempts = n
		if err == nil {
			return res, nil
		}
		var nr errNoRetry
		if errors.As(err, &nr) {
			return res, fmt.Errorf("%s: %w", what, nr.err)
		}
		if !transient(err) {
			return res, fmt.Errorf("%s: %w", what, err)
		}
		if n >= steps {
			return res, fmt.Errorf("%s: gave up after %d attempts: %w", what, n, err)
		}
		t := time.NewTimer(b.Step())
		select {
		case <-ctx.Done():
			t.Stop()
			return res, fmt.Errorf("%s: gave up after %d attempts (%v): %w", what, n, context.Cause(ctx), err)
		case <-t.C:
		}
	}
}

// transient reports whether err is worth another attempt: the API server or
// the network failed (timeouts, 5xx, 429, connection refused/reset/EOF), or
// the object changed under the write (conflict: the next attempt reads
// again). Forbidden, NotFound, Invalid, BadRequest, stale plans and
// refusals are not.
func transient(err error) bool {
	switch {
	case err == nil, errors.Is(err, ErrStale), errors.Is(err, ErrRefused), errors.Is(err, ErrDisruptionBudget):
		return false
	case apierrors.IsServerTimeout(err), apierrors.IsTimeout(err), apierrors.IsTooManyRequests(err),
		apierrors.IsInternalError(err), apierrors.IsServiceUnavailable(err), apierrors.IsConflict(err):
		return true
	case errors.Is(err, context.DeadlineExceeded):
		// One attempt's timeout; the overall budget is checked by the caller.
		return true
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		utilnet.IsConnectionRefused(err), utilnet.IsConnectionReset(err), utilnet.IsProbableEOF(err),
		utilnet.IsHTTP2ConnectionLost(err):
		return true
	}
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		code := status.Status().Code
		return code >= http.StatusInternalServerError && code != http.StatusNotImplemented
	}
	var op *net.OpError
	if errors.As(err, &op) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// stale returns an error wrapping ErrStale.
func stale(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrStale, fmt.Sprintf(format, args...))
}

// verifyEvery is Verify's polling interval.
const verifyEvery = 500 * time.Millisecond

// poll calls cond every verifyEvery until it reports done, until the
// change can no longer take effect (cond returns errNotVerifiable: OK false
// at once), until cond returns an error that is not transient (returned),
// or until ctx ends (OK false with cond's last reason). Transient errors
// become the reason and polling goes on.
func poll(ctx context.Context, cond func(ctx context.Context) (done bool, why string, err error)) (Verification, error) {
	start := time.Now()
	var last string
	for {
		done, why, err := cond(ctx)
		var nv errNotVerifiable
		switch {
		case errors.As(err, &nv):
			return Verification{Detail: nv.why, Waited: time.Since(start)}, nil
		case err != nil && ctx.Err() == nil && !transient(err):
			return Verification{Detail: err.Error(), Waited: time.Since(start)}, err
		case err != nil && ctx.Err() != nil:
			why = "" // the wait ended; keep the last real reason
		case err != nil:
			why = err.Error()
		case done:
			return Verification{OK: true, Detail: why, Waited: time.Since(start)}, nil
		}
		if why != "" {
			last = why
		}
		t := time.NewTimer(verifyEvery)
		select {
		case <-ctx.Done():
			t.Stop()
			if last == "" {
				last = "not verified"
			}
			return Verification{Detail: fmt.Sprintf("%s (gave up after %s: %v)", last, time.Since(start).Round(time.Millisecond), context.Cause(ctx)),
				Waited: time.Since(start)}, nil
		case <-t.C:
		}
	}
}

// errNotVerifiable is returned by a poll condition when the change can no
// longer take effect (a rollout past its progress deadline).
type errNotVerifiable struct{ why string }

func (e errNotVerifiable) Error() string { return e.why }

// rolloutStatus is `kubectl rollout status` for d, through kubectl's own
// DeploymentStatusViewer: done, or why not. A rollout past its progress
// deadline is errNotVerifiable.
func rolloutStatus(d *appsv1.Deployment) (bool, string, error) {
	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(d)
	if err != nil {
		return false, "", err
	}
	msg, done, err := (&polymorphichelpers.DeploymentStatusViewer{}).Status(&unstructured.Unstructured{Object: u}, 0)
	if err != nil {
		return false, "", errNotVerifiable{why: err.Error()}
	}
	return done, trimNL(msg), nil
}

func trimNL(s string) string {
	for len(s) > 0 && (s[len(s)-1] == '\n' || s[len(s)-1] == '.') {
		s = s[:len(s)-1]
	}
	return s
}

// templatesEqual compares pod templates ignoring the pod-template-hash label,
// as kubectl's rollback does.
func templatesEqual(a, b *corev1.PodTemplateSpec) bool {
	a, b = a.DeepCopy(), b.DeepCopy()
	delete(a.Labels, appsv1.DefaultDeploymentUniqueLabelKey)
	delete(b.Labels, appsv1.DefaultDeploymentUniqueLabelKey)
	return apiequality.Semantic.DeepEqual(a, b)
}

// target checks that c is a change of action name with its detail set.
func target(c Change, name string, detail bool) (probe.Target, error) {
	if c.Action != name {
		return probe.Target{}, fmt.Errorf("%s: change is for action %q", name, c.Action)
	}
	if !detail {
		return probe.Target{}, fmt.Errorf("%s: change has no %s details", name, name)
	}
	if err := c.Target.Validate(); err != nil {
		return probe.Target{}, err
	}
	return c.Target, nil
}
