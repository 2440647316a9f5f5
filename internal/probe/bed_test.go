package probe

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/remediator/remediator/internal/testbed"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// demo applies deploy/demo into a fresh namespace and grants the
// remediator exactly what probes declare they need (plus extra rules).
func demo(t *testing.T, env *testbed.Env, probes []Probe, extra ...rbacv1.PolicyRule) (Target, kubernetes.Interface) {
	t.Helper()
	ns := env.NewNamespace()
	env.ApplyDemo(ns)
	env.GrantRemediator(ns, append(Rules(probes...), extra...)...)
	return Target{Namespace: ns, Kind: "Deployment", Name: testbed.DemoDeployment}, env.RemediatorClient()
}

func demoPods(t *testing.T, c kubernetes.Interface, tg Target) []corev1.Pod {
	t.Helper()
	pods, err := testbed.ReadyPods(t.Context(), c, tg.Namespace, "app="+testbed.DemoDeployment)
	if err != nil {
		t.Fatal(err)
	}
	if len(pods) != 3 {
		t.Fatalf("want 3 ready demo pods, got %d", len(pods))
	}
	return pods
}

func TestBedRolloutHistory(t *testing.T) {
	env := testbed.Get(t)
	tg, rc := demo(t, env, []Probe{RolloutHistory{}})
	admin := env.AdminClient()
	ctx := t.Context()

	d, err := admin.AppsV1().Deployments(tg.Namespace).Get(ctx, tg.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	d.Spec.Template.Spec.Containers[0].Image = "registry.example/platform-service:v1.1.0"
	if d.Annotations == nil {
		d.Annotations = map[string]string{}
	}
	d.Annotations[annChangeCause] = "set image v1.1.0"
	if _, err := admin.AppsV1().Deployments(tg.Namespace).Update(ctx, d, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := testbed.WaitForRollout(ctx, admin, tg.Namespace, tg.Name, time.Minute); err != nil {
		t.Fatal(err)
	}

	res := RunAll(ctx, []Step{{Probe: RolloutHistory{Client: rc}, Target: tg}})
	if res[0].Err != nil {
		t.Fatal(res[0].Err)
	}
	ev := res[0].Evidence.(RolloutHistoryEvidence)
	t.Logf("rolloutHistory in %s: %+v", res[0].Duration, ev)
	if len(ev.Revisions) != 2 {
		t.Fatalf("want 2 revisions, got %+v", ev.Revisions)
	}
	if r := ev.Revisions[0]; r.Revision != 2 || r.Image != "registry.example/platform-service:v1.1.0" || r.ChangeCause != "set image v1.1.0" {
		t.Errorf("newest revision: %+v", r)
	}
	if r := ev.Revisions[1]; r.Revision != 1 || r.Image != "registry.example/platform-service:v1.0.0" {
		t.Errorf("first revision: %+v", r)
	}
	if ev.CurrentRevision != 2 || ev.InProgress || ev.NewestRolloutAge <= 0 || ev.NewestRolloutAge > 2*time.Minute {
		t.Errorf("current=%d inProgress=%v age=%s", ev.CurrentRevision, ev.InProgress, ev.NewestRolloutAge)
	}
}

// TestBedPodStatus sets container statuses with the admin client through the
// pods/status subresource (what a kubelet would report): kwok's stages only
// touch pods that are Pending or being deleted, so these stay as written.
func TestBedPodStatus(t *testing.T) {
	env := testbed.Get(t)
	tg, rc := demo(t, env, []Probe{PodStatus{}})
	admin := env.AdminClient()
	ctx := t.Context()
	pods := demoPods(t, admin, tg)

	oom, crash := pods[0], pods[1]
	if err := testbed.SetPodHealth(ctx, admin, tg.Namespace, oom.Name,
		testbed.PodHealth{Ready: true, Restarts: 3, LastTermination: "OOMKilled", LastExitCode: 137}); err != nil {
		t.Fatal(err)
	}
	if err := testbed.SetPodHealth(ctx, admin, tg.Namespace, crash.Name,
		testbed.PodHealth{Restarts: 5, LastTermination: "Error", LastExitCode: 1, Waiting: "CrashLoopBackOff"}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // give kwok a chance to (wrongly) rewrite them

	ev, err := PodStatus{Client: rc}.Run(ctx, tg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ps := ev.(PodStatusEvidence)
	t.Logf("podStatus: %+v", ps)
	if ps.Total != 3 || ps.Ready != 2 || ps.Restarts != 8 || ps.OOMKilled != 1 || ps.CrashLooping != 1 {
		t.Errorf("got total=%d ready=%d restarts=%d oom=%d crash=%d", ps.Total, ps.Ready, ps.Restarts, ps.OOMKilled, ps.CrashLooping)
	}
	reasons := map[string]string{}
	for _, p := range ps.Pods {
		reasons[p.Name] = p.LastTerminationReason
	}
	if reasons[oom.Name] != "OOMKilled" || reasons[crash.Name] != "Error" {
		t.Errorf("reasons: %v", reasons)
	}
}

func TestBedResourcesUnavailable(t *testing.T) {
	env := testbed.Get(t)
	tg, rc := demo(t, env, []Probe{Resources{}})
	ev, err := Resources{Client: rc}.Run(t.Context(), tg, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := ev.(ResourcesEvidence)
	t.Logf("resources: %+v", r)
	if r.Available || !strings.Contains(r.Reason, "not served") || r.CPUNearLimitPercent != 0 || r.MemoryNearLimitPercent != 0 {
		t.Errorf("want unavailable with a reason, got %+v", r)
	}
	if len(r.Containers) != 1 {
		t.Fatalf("containers: %+v", r.Containers)
	}
	c := r.Containers[0]
	if c.Name != "platform-service" || c.CPULimit != "500m" || c.CPULimitMillis != 500 || c.MemoryLimitBytes != 256<<20 ||
		c.CPURequestMillis != 100 || c.MemoryRequest != "128Mi" {
		t.Errorf("container: %+v", c)
	}
}

func TestBedLogs(t *testing.T) {
	env := testbed.Get(t)
	tg, rc := demo(t, env, []Probe{ErrorDistribution{}, SlowEndpoints{}})
	pods := demoPods(t, env.AdminClient(), tg)
	now := time.Now()
	rec := func(ago time.Duration, line string) testbed.LogRecord {
		return testbed.LogRecord{Time: now.Add(-ago), Line: line}
	}
	for i, p := range pods {
		recs := []testbed.LogRecord{
			// Outside sinceSeconds=300: must not count.
			rec(time.Hour, `{"level":"ERROR","msg":"old failure 1"}`),
			rec(time.Hour, `{"method":"GET","path":"/old","responseTimeMs":99999}`),
		}
		for j := range 4 {
			recs = append(recs, rec(time.Minute, fmt.Sprintf(`{"level":"ERROR","msg":"database timeout after %dms","requestId":"%d"}`, 3000+i*10+j, j)))
		}
		recs = append(recs,
			rec(time.Minute, fmt.Sprintf(`{"level":"error","message":"redis connection refused 10.0.0.%d:6379"}`, i)),
			rec(time.Minute, `{"level":"info","msg":"request served"}`),
			rec(50*time.Second, fmt.Sprintf(`2026-11-26T03:00:00Z ERROR payment %d declined`, 1000+i)),
		)
		for j := range 20 {
			recs = append(recs,
				rec(30*time.Second, fmt.Sprintf(`{"level":"info","method":"GET","path":"/api/users/%d","responseTimeMs":%d}`, j, 100+j*10)),
				rec(30*time.Second, fmt.Sprintf(`{"level":"info","method":"POST","path":"/api/orders","responseTimeMs":%d}`, 800+j*100)),
				rec(30*time.Second, fmt.Sprintf(`{"level":"info","method":"GET","path":"/healthz","responseTimeMs":%d}`, 1+j%2)),
			)
		}
		env.SetPodLogs(tg.Namespace, p.Name, recs...)
	}

	res := RunAll(t.Context(), []Step{
		{Probe: ErrorDistribution{Client: rc}, Target: tg, Params: Params{"sinceSeconds": int64(300), "top": int64(3)}},
		{Probe: SlowEndpoints{Client: rc}, Target: tg, Params: Params{"since": 5 * time.Minute}},
	})
	for _, r := range res {
		if r.Err != nil {
			t.Fatalf("%s: %v", r.ID, r.Err)
		}
		t.Logf("%s in %s: %+v", r.ID, r.Duration, r.Evidence)
	}
	ed := res[0].Evidence.(ErrorDistributionEvidence)
	want := []MessageCount{
		{"database timeout after <n>ms", 12},
		{"payment <n> declined", 3},
		{"redis connection refused <n>.<n>.<n>.<n>:<n>", 3},
	}
	if ed.Total != 18 || fmt.Sprint(ed.Top) != fmt.Sprint(want) {
		t.Errorf("errorDistribution: total=%d top=%v, want 18 %v", ed.Total, ed.Top, want)
	}
	if ed.Pods != 3 || len(ed.Failed) != 0 {
		t.Errorf("read: %+v", ed.LogStats)
	}
	se := res[1].Evidence.(SlowEndpointsEvidence)
	if len(se.Top) != 3 || se.Samples != 180 {
		t.Fatalf("slowEndpoints: %+v", se)
	}
	// POST /api/orders: 800..2700 ms per pod (×3); nearest-rank p95 of 60 values is the 57th: 2600.
	if se.Top[0] != (EndpointLatency{"POST /api/orders", 2600, 60}) ||
		se.Top[1] != (EndpointLatency{"GET /api/users/{id}", 280, 60}) ||
		se.Top[2] != (EndpointLatency{"GET /healthz", 2, 60}) {
		t.Errorf("slowEndpoints top: %+v", se.Top)
	}
}

// TestBedForbidden: without list pods, podStatus fails with the API
// server's 403 and the other probes of the same RunAll still report.
func TestBedForbidden(t *testing.T) {
	env := testbed.Get(t)
	tg, rc := demo(t, env, []Probe{RolloutHistory{}}) // deployments get, replicasets list: no pods
	res := RunAll(t.Context(), []Step{
		{Probe: PodStatus{Client: rc}, Target: tg},
		{Probe: RolloutHistory{Client: rc}, Target: tg},
		{Probe: ErrorDistribution{Client: rc}, Target: tg},
		{Probe: Dependencies{}, Target: tg, Params: Params{"endpoints": []string{"127.0.0.1:1"}, "timeout": time.Second}},
	})
	if err := res[0].Err; err == nil || !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "list pods") {
		t.Errorf("podStatus: want a forbidden error, got %v", err)
	} else {
		t.Logf("podStatus error: %v", err)
	}
	if !apierrors.IsForbidden(res[2].Err) {
		t.Errorf("errorDistribution: want forbidden, got %v", res[2].Err)
	}
	if res[1].Err != nil || res[1].Evidence.(RolloutHistoryEvidence).CurrentRevision != 1 {
		t.Errorf("rolloutHistory: %+v", res[1])
	}
	if res[3].Err != nil || res[3].Evidence.(DependenciesEvidence).AllReachable {
		t.Errorf("dependencies: %+v", res[3])
	}
}

var _ = context.Background

func TestBedOwnerDeployment(t *testing.T) {
	env := testbed.Get(t)
	ns := env.NewNamespace()
	env.ApplyDemo(ns)
	rc := env.RemediatorClient()
	pods := demoPods(t, env.AdminClient(), Target{Namespace: ns})
	if _, err := OwnerDeployment(t.Context(), rc, ns, pods[0].Name); !apierrors.IsForbidden(err) {
		t.Errorf("without RBAC: want forbidden, got %v", err)
	}
	env.GrantRemediator(ns, Rules(ownerNeeder{})...)
	tg, err := OwnerDeployment(t.Context(), rc, ns, pods[0].Name)
	if err != nil || tg != (Target{Namespace: ns, Kind: "Deployment", Name: testbed.DemoDeployment}) {
		t.Errorf("got %+v %v", tg, err)
	}
	if _, err := OwnerDeployment(t.Context(), rc, ns, "no-such-pod"); !apierrors.IsNotFound(err) {
		t.Errorf("missing pod: %v", err)
	}
}

// TestBedResourcesWithMetrics puts a small proxy in front of the real API
// server that serves metrics.k8s.io itself (discovery and PodMetrics with
// usage the test chooses) and forwards everything else, authenticated as the
// remediator. metrics-server cannot run on the bed (see
// ../shared/notes/kubernetes-testbed.md); this exercises the probe's real
// discovery and REST path against real pods. The proxy does not enforce
// RBAC for metrics.k8s.io.
func TestBedResourcesWithMetrics(t *testing.T) {
	env := testbed.Get(t)
	tg, _ := demo(t, env, []Probe{Resources{}})
	pods := demoPods(t, env.AdminClient(), tg)
	// pod 0: CPU 480m/500m (96%), memory 100Mi/256Mi; pod 1: memory 250Mi/256Mi (97%); pod 2 idle.
	usage := []string{`"cpu":"480m","memory":"100Mi"`, `"cpu":"50m","memory":"250Mi"`, `"cpu":"1m","memory":"10Mi"`}
	var items []string
	for i, p := range pods {
		items = append(items, fmt.Sprintf(`{"metadata":{"name":%q,"namespace":%q},"timestamp":"2026-11-26T03:00:00Z","window":"10s","containers":[{"name":"platform-service","usage":{%s}}]}`,
			p.Name, tg.Namespace, usage[i]))
	}
	metricsList := `{"kind":"PodMetricsList","apiVersion":"metrics.k8s.io/v1beta1","metadata":{},"items":[` + strings.Join(items, ",") + `]}`
	discovery := `{"kind":"APIResourceList","apiVersion":"v1","groupVersion":"metrics.k8s.io/v1beta1","resources":[{"name":"pods","singularName":"","namespaced":true,"kind":"PodMetrics","verbs":["get","list"]}]}`

	upstream := env.RemediatorConfig()
	tr, err := rest.TransportFor(upstream)
	if err != nil {
		t.Fatal(err)
	}
	target, _ := url.Parse(upstream.Host)
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.Transport = tr
	var sawSelector string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/apis/metrics.k8s.io/v1beta1":
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(discovery))
		case "/apis/metrics.k8s.io/v1beta1/namespaces/" + tg.Namespace + "/pods":
			sawSelector = r.URL.Query().Get("labelSelector")
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(metricsList))
		default:
			proxy.ServeHTTP(w, r)
		}
	}))
	defer srv.Close()
	c, err := kubernetes.NewForConfig(&rest.Config{Host: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := Resources{Client: c}.Run(t.Context(), tg, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := ev.(ResourcesEvidence)
	t.Logf("resources: %+v", r)
	if !r.Available || r.Reason != "" || r.CPUNearLimitPercent != 33 || r.MemoryNearLimitPercent != 33 || len(r.Pods) != 3 {
		t.Errorf("got %+v", r)
	}
	if sawSelector != "app="+testbed.DemoDeployment {
		t.Errorf("metrics queried with selector %q", sawSelector)
	}
	// nearLimitPercent 30 counts pod 0's memory (39%) too.
	ev, err = Resources{Client: c}.Run(t.Context(), tg, Params{"nearLimitPercent": int64(30)})
	if err != nil {
		t.Fatal(err)
	}
	if r := ev.(ResourcesEvidence); r.MemoryNearLimitPercent != 66 || r.CPUNearLimitPercent != 33 {
		t.Errorf("nearLimitPercent 30: %+v", r)
	}
}
