package action

import (
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/remediator/remediator/internal/probe"
	"github.com/remediator/remediator/internal/testbed"
)

// fault is what faultProxy does to a write request.
type fault int

const (
	noFault    fault = iota
	fail503          // answer 503 without forwarding
	dropBefore       // close the connection without forwarding
	dropAfter        // forward, then close the connection instead of answering
)

// faultProxy is a loopback HTTP reverse proxy in front of the bed's API
// server that fails the next n write requests (POST, PUT, PATCH, DELETE;
// SelfSubjectAccessReviews excepted) in one of the fault ways; reads pass.
type faultProxy struct {
	srv     *httptest.Server
	rp      *httputil.ReverseProxy
	mu      sync.Mutex
	fault   fault
	left    int // faults left; < 0: every write
	faulted atomic.Int64
}

func newFaultProxy(t *testing.T, env *testbed.Env) *faultProxy {
	t.Helper()
	up := env.AdminConfig()
	u, err := url.Parse(up.Host)
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg, err := rest.TLSConfigFor(&rest.Config{Host: up.Host, TLSClientConfig: up.TLSClientConfig})
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{rp: &httputil.ReverseProxy{
		Rewrite:   func(r *httputil.ProxyRequest) { r.SetURL(u) },
		Transport: &http.Transport{TLSClientConfig: tlsCfg, ForceAttemptHTTP2: true},
		ErrorLog:  log.New(io.Discard, "", 0),
	}}
	p.srv = httptest.NewServer(p)
	t.Cleanup(p.srv.Close)
	return p
}

// set makes the next n writes fail with f (n < 0: all of them).
func (p *faultProxy) set(f fault, n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fault, p.left = f, n
	p.faulted.Store(0)
}

func (p *faultProxy) take(r *http.Request) fault {
	if !isWrite(r) {
		return noFault
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fault == noFault || p.left == 0 {
		return noFault
	}
	if p.left > 0 {
		p.left--
	}
	p.faulted.Add(1)
	return p.fault
}

func (p *faultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch p.take(r) {
	case fail503:
		http.Error(w, "injected fault: service unavailable", http.StatusServiceUnavailable)
	case dropBefore:
		hangUp(w)
	case dropAfter:
		p.rp.ServeHTTP(httptest.NewRecorder(), r)
		hangUp(w)
	default:
		p.rp.ServeHTTP(w, r)
	}
}

func hangUp(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(err)
	}
	conn.Close()
}

// quiet waits until the demo's rollout is complete and its objects stopped
// changing, so that no controller write races an Apply.
func (b *bed) quiet(t *testing.T) {
	t.Helper()
	if err := testbed.WaitForRollout(context.Background(), b.admin, b.ns, testbed.DemoDeployment, time.Minute); err != nil {
		t.Fatal(err)
	}
	b.settle(t)
}

// client is a clientset with the remediator's identity through the proxy.
func (p *faultProxy) client(t *testing.T, env *testbed.Env) kubernetes.Interface {
	t.Helper()
	kube, err := kubernetes.NewForConfig(&rest.Config{Host: p.srv.URL, BearerToken: env.RemediatorConfig().BearerToken, QPS: 100, Burst: 200})
	if err != nil {
		t.Fatal(err)
	}
	return kube
}

// TestApplyRetriesOnTheBed runs Apply through a proxy that fails writes:
// the first ones (503, connection dropped before or after the write reached
// the API server), then every one.
func TestApplyRetriesOnTheBed(t *testing.T) {
	t.Parallel()
	env := testbed.Get(t)
	ns := env.NewNamespace()
	env.ApplyDemo(ns)
	p := newFaultProxy(t, env)
	acts := New(p.client(t, env))
	env.GrantRemediator(ns, Rules(acts["rollback"], acts["scale"], acts["restart"], acts["delete-pod"])...)
	b := &bed{env: env, ns: ns, admin: env.AdminClient(), writes: &writeCounter{},
		target: probe.Target{Namespace: ns, Kind: "Deployment", Name: testbed.DemoDeployment}}
	b.setImage(t, badImage, false)
	ctx := context.Background()

	for _, tc := range []struct {
		name     string
		action   string
		params   Params
		prep     func(t *testing.T)
		fault    fault
		faults   int
		attempts int
		done     bool // the write landed despite the fault: the retry finds it done
	}{
		{name: "delete-pod eviction answered 503", action: "delete-pod", prep: func(t *testing.T) { b.makeOOMKilled(t) },
			fault: fail503, faults: 1, attempts: 2},
		{name: "rollback patch connection dropped", action: "rollback", fault: dropBefore, faults: 1, attempts: 2},
		{name: "restart answered 503 twice", action: "restart", fault: fail503, faults: 2, attempts: 3},
		{name: "scale response lost after the write", action: "scale", params: Params{"step": int64(2)},
			fault: dropAfter, faults: 1, attempts: 2, done: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b.quiet(t)
			if tc.prep != nil {
				tc.prep(t)
			}
			a := acts[tc.action]
			c, err := a.Plan(ctx, b.target, tc.params)
			if err != nil {
				t.Fatal(err)
			}
			p.set(tc.fault, tc.faults)
			res, err := a.Apply(ctx, c)
			p.set(noFault, 0)
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			if res.Attempts != tc.attempts || res.AlreadyDone != tc.done {
				t.Fatalf("Apply: want %d attempts, alreadyDone %v, got %+v", tc.attempts, tc.done, res)
			}
			t.Logf("%d attempts: %s", res.Attempts, res.Detail)
			if o, err := a.Observe(ctx, c); err != nil || !o.Applied {
				t.Fatalf("Observe: %+v %v", o, err)
			}
		})
	}

	t.Run("every write fails", func(t *testing.T) {
		a := acts["scale"]
		c, err := a.Plan(ctx, b.target, Params{"step": int64(1)})
		if err != nil {
			t.Fatal(err)
		}
		p.set(fail503, -1)
		defer p.set(noFault, 0)
		start := time.Now()
		res, err := a.Apply(ctx, c)
		took := time.Since(start)
		if err == nil || !apierrors.IsServiceUnavailable(err) || !strings.Contains(err.Error(), "gave up after 5 attempts") {
			t.Fatalf("Apply: want a 503 after 5 attempts, got %+v %v", res, err)
		}
		if res.Attempts != 5 || p.faulted.Load() != 5 || took > 30*time.Second {
			t.Fatalf("Apply: %d attempts, %d writes, %s", res.Attempts, p.faulted.Load(), took)
		}
		t.Logf("gave up in %s: %v", took.Round(time.Millisecond), err)
		if got := b.hpaMin(t); got != c.Scale.From {
			t.Fatalf("HPA minReplicas %d, want %d unchanged", got, c.Scale.From)
		}
		// Verify of the change that never happened gives up with the reason
		// when its deadline comes.
		vctx, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
		defer cancel()
		v, err := a.Verify(vctx, c)
		if err != nil || v.OK || v.Waited < time.Second || !strings.Contains(v.Detail, "spec.minReplicas is 5, below 6") {
			t.Fatalf("Verify: want not OK after its deadline, got %+v %v", v, err)
		}
		t.Logf("verify: %s", v.Detail)
	})
}

// raceOnce runs hook once, just before the first write request it sees is
// sent: a change by someone else between Apply's read and its write.
type raceOnce struct {
	mu   sync.Mutex
	hook func()
}

func (r *raceOnce) set(hook func()) { r.mu.Lock(); r.hook = hook; r.mu.Unlock() }

func (r *raceOnce) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		if isWrite(req) {
			r.mu.Lock()
			h := r.hook
			r.hook = nil
			r.mu.Unlock()
			if h != nil {
				h()
			}
		}
		return rt.RoundTrip(req)
	})
}

// TestApplyPreconditionOnTheBed changes the object (harmlessly: a label)
// between Apply's read and its write. The write carries the version read as
// a precondition, so it fails with a conflict instead of overwriting; the
// next attempt reads again and writes.
func TestApplyPreconditionOnTheBed(t *testing.T) {
	t.Parallel()
	env := testbed.Get(t)
	ns := env.NewNamespace()
	env.ApplyDemo(ns)
	race := &raceOnce{}
	cfg := env.RemediatorConfig()
	cfg.Wrap(race.wrap)
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	acts := New(kube)
	env.GrantRemediator(ns, Rules(acts["rollback"], acts["scale"], acts["restart"])...)
	b := &bed{env: env, ns: ns, admin: env.AdminClient(), writes: &writeCounter{},
		target: probe.Target{Namespace: ns, Kind: "Deployment", Name: testbed.DemoDeployment}}
	b.setImage(t, badImage, false)
	ctx := context.Background()
	label := func(resource string) func() {
		return func() {
			patch := []byte(`{"metadata":{"labels":{"touched":"` + time.Now().Format("150405.000000") + `"}}}`)
			var err error
			if resource == "hpa" {
				_, err = b.admin.AutoscalingV2().HorizontalPodAutoscalers(ns).Patch(ctx, testbed.DemoDeployment, types.MergePatchType, patch, metav1.PatchOptions{})
			} else {
				_, err = b.admin.AppsV1().Deployments(ns).Patch(ctx, testbed.DemoDeployment, types.MergePatchType, patch, metav1.PatchOptions{})
			}
			if err != nil {
				t.Errorf("touch %s: %v", resource, err)
			}
		}
	}
	for _, tc := range []struct {
		action, touch string
		params        Params
	}{
		{action: "rollback", touch: "deployment"},
		{action: "restart", touch: "deployment"},
		{action: "scale", touch: "hpa", params: Params{"step": int64(1)}},
	} {
		t.Run(tc.action, func(t *testing.T) {
			b.quiet(t)
			a := acts[tc.action]
			c, err := a.Plan(ctx, b.target, tc.params)
			if err != nil {
				t.Fatal(err)
			}
			touched := false
			touch := label(tc.touch)
			race.set(func() { touched = true; touch() })
			res, err := a.Apply(ctx, c)
			// 2 attempts; more if a controller also wrote in between.
			if err != nil || !touched || res.Attempts < 2 || res.AlreadyDone {
				t.Fatalf("Apply: want success after a conflict, got %+v %v (touched %v)", res, err, touched)
			}
			if o, err := a.Observe(ctx, c); err != nil || !o.Applied {
				t.Fatalf("Observe: %+v %v", o, err)
			}
		})
	}
}
