package action

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

func TestTransient(t *testing.T) {
	gr := schema.GroupResource{Group: "apps", Resource: "deployments"}
	urlErr := func(err error) error { return &url.Error{Op: "Patch", URL: "https://127.0.0.1:6443/x", Err: err} }
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"503", apierrors.NewServiceUnavailable("down"), true},
		{"500", apierrors.NewInternalError(errors.New("boom")), true},
		{"504", apierrors.NewTimeoutError("slow", 1), true},
		{"server timeout", apierrors.NewServerTimeout(gr, "patch", 1), true},
		{"429", apierrors.NewTooManyRequests("slow down", 1), true},
		{"502 from a proxy", apierrors.NewGenericServerResponse(502, "PATCH", gr, "x", "bad gateway", 0, true), true},
		{"conflict", apierrors.NewConflict(gr, "x", errors.New("modified")), true},
		{"connection refused", urlErr(&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}), true},
		{"connection reset", urlErr(&net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}), true},
		{"EOF", urlErr(io.EOF), true},
		{"attempt timeout", fmt.Errorf("read: %w", context.DeadlineExceeded), true},
		{"wrapped 503", fmt.Errorf("patch: %w", apierrors.NewServiceUnavailable("down")), true},
		{"kubectl's error around a 503", &kubectlError{msg: "failed restoring revision 1: down", api: apierrors.NewServiceUnavailable("down")}, true},
		{"forbidden", apierrors.NewForbidden(gr, "x", errors.New("no")), false},
		{"not found", apierrors.NewNotFound(gr, "x"), false},
		{"invalid", apierrors.NewInvalid(schema.GroupKind{Kind: "Deployment"}, "x", nil), false},
		{"bad request", apierrors.NewBadRequest("no"), false},
		{"403 from a proxy", apierrors.NewGenericServerResponse(403, "PATCH", gr, "x", "denied", 0, true), false},
		{"stale", stale("moved on"), false},
		{"refused", refuse("paused"), false},
		{"disruption budget", fmt.Errorf("%w: 429", ErrDisruptionBudget), false},
		{"kubectl's own error", &kubectlError{msg: "you cannot rollback a paused deployment"}, false},
		{"x509", urlErr(errors.New("tls: failed to verify certificate: x509: certificate signed by unknown authority")), false},
	} {
		if got := transient(tc.err); got != tc.want {
			t.Errorf("%s: transient(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}

var fastRetry = retryPolicy{
	backoff: wait.Backoff{Duration: time.Millisecond, Factor: 2, Steps: 5},
	attempt: 100 * time.Millisecond,
	budget:  2 * time.Second,
}

func TestApplyWithRetries(t *testing.T) {
	unavailable := apierrors.NewServiceUnavailable("down")
	forbidden := apierrors.NewForbidden(schema.GroupResource{Resource: "deployments"}, "x", errors.New("no"))
	for _, tc := range []struct {
		name     string
		policy   retryPolicy
		fails    []error // returned by the first attempts, in order
		hang     bool    // attempts wait for their context to end
		attempts int
		wantErr  func(error) bool
	}{
		{name: "first try", policy: fastRetry, attempts: 1},
		{name: "two 503s", policy: fastRetry, fails: []error{unavailable, unavailable}, attempts: 3},
		{name: "forbidden at once", policy: fastRetry, fails: []error{forbidden}, attempts: 1, wantErr: apierrors.IsForbidden},
		{name: "stale at once", policy: fastRetry, fails: []error{stale("x")}, attempts: 1, wantErr: func(err error) bool { return errors.Is(err, ErrStale) }},
		{name: "final at once", policy: fastRetry, fails: []error{final(apierrors.NewTooManyRequests("pdb", 0))}, attempts: 1, wantErr: apierrors.IsTooManyRequests},
		{name: "503 forever", policy: fastRetry, fails: []error{unavailable, unavailable, unavailable, unavailable, unavailable, unavailable}, attempts: 5,
			wantErr: func(err error) bool {
				return apierrors.IsServiceUnavailable(err) && strings.Contains(err.Error(), "gave up after 5 attempts")
			}},
		{name: "hanging attempts end with the budget", hang: true, attempts: 3,
			policy: retryPolicy{backoff: wait.Backoff{Duration: time.Millisecond, Steps: 100}, attempt: 100 * time.Millisecond, budget: 250 * time.Millisecond},
			wantErr: func(err error) bool {
				return errors.Is(err, context.DeadlineExceeded) && strings.Contains(err.Error(), "gave up")
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := 0
			start := time.Now()
			res, err := applyWith(context.Background(), tc.policy, "test change", func(ctx context.Context) (Applied, error) {
				n++
				if tc.hang {
					<-ctx.Done()
					return Applied{}, ctx.Err()
				}
				if n <= len(tc.fails) {
					return Applied{}, tc.fails[n-1]
				}
				return Applied{Detail: "done"}, nil
			})
			if time.Since(start) > 2*time.Second {
				t.Fatalf("took %s", time.Since(start))
			}
			if tc.wantErr == nil && err != nil || tc.wantErr != nil && (err == nil || !tc.wantErr(err)) {
				t.Fatalf("err %v", err)
			}
			if err != nil && !strings.HasPrefix(err.Error(), "test change: ") {
				t.Fatalf("err not named: %v", err)
			}
			if tc.hang {
				// ~100 ms per attempt and 250 ms in all: 2 or 3 attempts.
				if res.Attempts < 2 || res.Attempts > 3 {
					t.Fatalf("attempts %d", res.Attempts)
				}
				return
			}
			if res.Attempts != tc.attempts || n != tc.attempts {
				t.Fatalf("attempts %d (%d calls), want %d", res.Attempts, n, tc.attempts)
			}
		})
	}
}

func TestApplyStopsWithTheContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	p := fastRetry
	p.backoff.Duration = time.Hour
	go func() { time.Sleep(50 * time.Millisecond); cancel() }()
	res, err := applyWith(ctx, p, "x", func(context.Context) (Applied, error) {
		return Applied{}, apierrors.NewServiceUnavailable("down")
	})
	if err == nil || res.Attempts != 1 || !strings.Contains(err.Error(), "context canceled") {
		t.Fatalf("%+v %v", res, err)
	}
}

func TestWithResourceVersion(t *testing.T) {
	in := []byte(`[{"op":"replace","path":"/spec/template","value":{}}]`)
	out, err := withResourceVersion(types.JSONPatchType, in, "42")
	if err != nil {
		t.Fatal(err)
	}
	var ops []map[string]any
	if err := json.Unmarshal(out, &ops); err != nil || len(ops) != 2 ||
		ops[1]["op"] != "replace" || ops[1]["path"] != "/metadata/resourceVersion" || ops[1]["value"] != "42" {
		t.Fatalf("%s %v", out, err)
	}
	if _, err := withResourceVersion(types.MergePatchType, []byte(`{}`), "42"); err == nil {
		t.Fatal("merge patch: want an error")
	}
}

func TestPoll(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	v, err := poll(ctx, func(context.Context) (bool, string, error) { return false, "2 of 3 replicas available", nil })
	if err != nil || v.OK || !strings.Contains(v.Detail, "2 of 3 replicas available") || v.Waited < 250*time.Millisecond {
		t.Fatalf("%+v %v", v, err)
	}

	// A read cut short by the deadline does not hide the last reason.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel2()
	first := true
	v, err = poll(ctx2, func(ctx context.Context) (bool, string, error) {
		if first {
			first = false
			return false, "1 of 3 updated replicas are available", nil
		}
		<-ctx.Done()
		return false, "", ctx.Err()
	})
	if err != nil || v.OK || !strings.Contains(v.Detail, "1 of 3 updated") {
		t.Fatalf("%+v %v", v, err)
	}

	n := 0
	v, err = poll(context.Background(), func(context.Context) (bool, string, error) {
		n++
		if n == 1 {
			return false, "", apierrors.NewServiceUnavailable("down") // polled again
		}
		return true, "rolled out", nil
	})
	if err != nil || !v.OK || v.Detail != "rolled out" || n != 2 {
		t.Fatalf("%+v %v %d", v, err, n)
	}

	v, err = poll(context.Background(), func(context.Context) (bool, string, error) {
		return false, "", errNotVerifiable{why: `deployment "x" exceeded its progress deadline`}
	})
	if err != nil || v.OK || !strings.Contains(v.Detail, "progress deadline") {
		t.Fatalf("%+v %v", v, err)
	}

	forbidden := apierrors.NewForbidden(schema.GroupResource{Resource: "deployments"}, "x", errors.New("no"))
	if _, err := poll(context.Background(), func(context.Context) (bool, string, error) { return false, "", forbidden }); !apierrors.IsForbidden(err) {
		t.Fatalf("forbidden: %v", err)
	}
}

func TestNewWithConfig(t *testing.T) {
	all := NewWithConfig(nil, &rest.Config{Host: "https://127.0.0.1:1"})
	if len(all) != 5 || all["rollback"].(*Rollback).kube == nil {
		t.Fatalf("actions from a REST config: %v", all)
	}
	kube, err := kubernetes.NewForConfig(&rest.Config{Host: "https://127.0.0.1:2"})
	if err != nil {
		t.Fatal(err)
	}
	if got := NewWithConfig(kube, nil)["restart"].(*Restart).kube; got != kube {
		t.Fatal("NewWithConfig must use the given clientset")
	}
}
