package main

import (
	"context"
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// defaultModel is the model of the flags' defaults.
func defaultModel() model {
	return model{capacityRPS: 50, service: 5 * time.Millisecond, maxLatency: 3 * time.Second}
}

func TestUtilization(t *testing.T) {
	tests := []struct {
		offered float64
		ready   int32
		want    float64
	}{
		{0, 3, 0},
		{0, 0, 0},
		{300, 3, 2},
		{300, 8, 0.75},
		{150, 3, 1},
		{75, 3, 0.5},
		{10, 0, math.Inf(1)},
	}
	for _, tt := range tests {
		if got := defaultModel().utilization(tt.offered, tt.ready); got != tt.want {
			t.Errorf("utilization(%g rps, %d ready) = %g, want %g", tt.offered, tt.ready, got, tt.want)
		}
	}
}

func TestMeanLatencyIsMM1Bounded(t *testing.T) {
	tests := []struct {
		rho  float64
		want time.Duration
	}{
		{0, 5 * time.Millisecond},
		{0.5, 10 * time.Millisecond},
		{0.75, 20 * time.Millisecond},
		{0.99, 500 * time.Millisecond},
		{0.999, 3 * time.Second}, // 5 s, bounded
		{1, 3 * time.Second},
		{2, 3 * time.Second},
		{math.Inf(1), 3 * time.Second},
	}
	for _, tt := range tests {
		got := defaultModel().meanLatency(tt.rho)
		if d := got - tt.want; d < -time.Microsecond || d > time.Microsecond {
			t.Errorf("meanLatency(%g) = %s, want %s", tt.rho, got, tt.want)
		}
	}
	// It only grows with the load.
	prev := time.Duration(0)
	for rho := 0.0; rho < 1.5; rho += 0.01 {
		m := defaultModel().meanLatency(rho)
		if m < prev {
			t.Fatalf("meanLatency(%g) = %s < %s at lower load", rho, m, prev)
		}
		prev = m
	}
}

// quantiles draws n latencies at rho through evenly spread variates and
// returns their mean and 95th percentile.
func quantiles(m model, rho float64, n int) (mean, p95 time.Duration, all []time.Duration) {
	var sum time.Duration
	for i := range n {
		d := m.latency(rho, (float64(i)+0.5)/float64(n))
		all = append(all, d)
		sum += d
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	return sum / time.Duration(n), all[n*95/100], all
}

// The request latency is exponential with the M/M/1 mean below
// saturation (p95 = mean × ln 20 ≈ 3 × mean), and the bound (less up to
// 10%) at or above it.
func TestLatencyDistribution(t *testing.T) {
	for _, rho := range []float64{0, 0.5, 0.75, 0.9} {
		mean, p95, _ := quantiles(defaultModel(), rho, 10000)
		want := defaultModel().meanLatency(rho)
		if r := float64(mean) / float64(want); r < 0.98 || r > 1.02 {
			t.Errorf("ρ=%g: sample mean %s, want ≈ %s", rho, mean, want)
		}
		if r := float64(p95) / (float64(want) * math.Log(20)); r < 0.98 || r > 1.02 {
			t.Errorf("ρ=%g: p95 %s, want ≈ %s", rho, p95, time.Duration(float64(want)*math.Log(20)))
		}
		if p95 >= time.Second {
			t.Errorf("ρ=%g: p95 %s would fire HighLatency (> 1s)", rho, p95)
		}
	}
	for _, rho := range []float64{1, 2, math.Inf(1)} {
		_, _, all := quantiles(defaultModel(), rho, 1000)
		if all[0] < 2700*time.Millisecond || all[len(all)-1] > 3*time.Second {
			t.Errorf("ρ=%g: latencies %s..%s, want within [2.7s, 3s]", rho, all[0], all[len(all)-1])
		}
	}
	// Near saturation the tail is cut at the bound.
	if d := defaultModel().latency(0.995, 0.999999); d != 3*time.Second {
		t.Errorf("latency at the far tail = %s, want the 3s bound", d)
	}
	// Out-of-range variates stay in range.
	for _, u := range []float64{-1, 1, 2} {
		if d := defaultModel().latency(0.5, u); d < 0 || d > 3*time.Second {
			t.Errorf("latency(0.5, %g) = %s", u, d)
		}
	}
}

func TestCPUCores(t *testing.T) {
	for _, tt := range []struct{ rho, limit, want float64 }{
		{0, 0.5, 0}, {0.5, 0.5, 0.25}, {0.75, 0.5, 0.375}, {1, 0.5, 0.5}, {2, 0.5, 0.5}, {math.Inf(1), 2, 2},
	} {
		if got := cpuCores(tt.rho, tt.limit); got != tt.want {
			t.Errorf("cpuCores(%g, %g) = %g, want %g", tt.rho, tt.limit, got, tt.want)
		}
	}
}

func TestModelValidate(t *testing.T) {
	if err := defaultModel().validate(); err != nil {
		t.Fatal(err)
	}
	for _, m := range []model{
		{capacityRPS: 0, service: time.Millisecond, maxLatency: time.Second},
		{capacityRPS: math.NaN(), service: time.Millisecond, maxLatency: time.Second},
		{capacityRPS: math.Inf(1), service: time.Millisecond, maxLatency: time.Second},
		{capacityRPS: 10, service: 0, maxLatency: time.Second},
		{capacityRPS: 10, service: time.Second, maxLatency: time.Second},
	} {
		if m.validate() == nil {
			t.Errorf("%+v accepted", m)
		}
	}
}

// demoDeployment is deploy/demo/platform-service.yaml's Deployment as the
// API server returns it, with ready replicas and an annotation.
func demoDeployment(image, offered string, ready int32) *appsv1.Deployment {
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "platform-service", Namespace: "prod", Annotations: map[string]string{}},
		Spec: appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "platform-service", Image: image,
			Resources: corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
				Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("256Mi")},
			},
		}}}}},
		Status: appsv1.DeploymentStatus{ReadyReplicas: ready},
	}
	if offered != "" {
		d.Annotations[OfferedRPSAnnotation] = offered
	}
	return d
}

func TestViewOf(t *testing.T) {
	v := viewOf(demoDeployment("registry.example/platform-service:v1.1.0", "300", 3), "v1.1.0")
	if !v.bad || v.offered != 300 || v.offeredErr != "" || v.ready != 3 || v.image != "registry.example/platform-service:v1.1.0" {
		t.Fatalf("view %+v", v)
	}
	want := container{name: "platform-service", cpuLimit: 0.5, memoryLimit: 256 << 20, cpuRequest: 0.1}
	if len(v.containers) != 1 || v.containers[0] != want {
		t.Fatalf("containers %+v, want [%+v]", v.containers, want)
	}
	if v := viewOf(demoDeployment("registry.example/platform-service:v1.0.0", "", 8), "v1.1.0"); v.bad || v.offered != 0 || v.offeredErr != "" || v.ready != 8 {
		t.Fatalf("view %+v", v)
	}
	for _, bad := range []string{"lots", "-5", "NaN", "+Inf", "1e999"} {
		v := viewOf(demoDeployment("x:v1.0.0", bad, 3), "v1.1.0")
		if v.offered != 0 || !strings.Contains(v.offeredErr, OfferedRPSAnnotation) {
			t.Errorf("annotation %q: offered %g, reason %q", bad, v.offered, v.offeredErr)
		}
	}
	if v := viewOf(demoDeployment("x:v1.0.0", " 12.5 ", 3), "v1.1.0"); v.offered != 12.5 {
		t.Errorf("annotation \" 12.5 \": offered %g", v.offered)
	}
}

func TestModelCores(t *testing.T) {
	for _, tt := range []struct {
		cs   []container
		want float64
	}{
		{nil, 1},
		{[]container{{cpuLimit: 0.5, cpuRequest: 0.1}}, 0.5},
		{[]container{{cpuRequest: 0.1}}, 0.1},
		{[]container{{}, {cpuLimit: 4}}, 1}, // the app container is the first
	} {
		if got := modelCores(tt.cs); got != tt.want {
			t.Errorf("modelCores(%+v) = %g, want %g", tt.cs, got, tt.want)
		}
	}
}

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// The CPU counter integrates the usage rate, piecewise, across load and
// replica changes: 10 s saturated on 3 replicas at the 0.5-core limit,
// then 4 s at ρ = 0.75 on 8, then 5 s with no load.
func TestCPUSecondsIntegrate(t *testing.T) {
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	st := newState(defaultModel())
	if s := st.snapshot(c.now()); s.cpuSeconds != 0 || s.cpuCores != 0 {
		t.Fatalf("before any view: %+v", s)
	}
	st.set(viewOf(demoDeployment("x:v1.0.0", "300", 3), "v1.1.0"), c.now())
	c.add(10 * time.Second)
	if s := st.snapshot(c.now()); !near(s.cpuSeconds, 5) || s.cpuCores != 0.5 || s.utilization != 2 {
		t.Fatalf("saturated for 10s: %+v", s)
	}
	st.set(viewOf(demoDeployment("x:v1.0.0", "300", 8), "v1.1.0"), c.now())
	c.add(4 * time.Second)
	if s := st.snapshot(c.now()); !near(s.cpuSeconds, 5+1.5) || s.cpuCores != 0.375 {
		t.Fatalf("then 4s at ρ=0.75: %+v", s)
	}
	st.set(viewOf(demoDeployment("x:v1.0.0", "", 8), "v1.1.0"), c.now())
	c.add(5 * time.Second)
	if s := st.snapshot(c.now()); !near(s.cpuSeconds, 6.5) || s.cpuCores != 0 {
		t.Fatalf("then 5s idle: %+v", s)
	}
	// A clock that steps back never lowers the counter.
	c.add(-time.Minute)
	if s := st.snapshot(c.now()); !near(s.cpuSeconds, 6.5) {
		t.Fatalf("clock stepped back: %+v", s)
	}
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestStateChanged(t *testing.T) {
	st := newState(defaultModel())
	now := time.Now()
	v := viewOf(demoDeployment("x:v1.0.0", "", 3), "v1.1.0")
	if !st.set(v, now) {
		t.Fatal("first view: not changed")
	}
	if st.set(v, now) {
		t.Fatal("same view: changed")
	}
	for _, d := range []*appsv1.Deployment{
		demoDeployment("x:v1.1.0", "", 3),
		demoDeployment("x:v1.1.0", "100", 3),
		demoDeployment("x:v1.1.0", "100", 4),
		demoDeployment("x:v1.1.0", "x", 4),
	} {
		if !st.set(viewOf(d, "v1.1.0"), now) {
			t.Errorf("%+v: not changed", viewOf(d, "v1.1.0"))
		}
	}
}

// testApp is an app with a settable clock, fixed variates and a sleep that
// records what it was asked to wait.
func testApp(t *testing.T, u float64) (*app, *clock, *[]time.Duration) {
	t.Helper()
	o := options{namespace: "prod", deployment: "platform-service", badImage: "v1.1.0", errorRatio: 0.3,
		badLatency: 300 * time.Millisecond, goodLatency: 5 * time.Millisecond, capacityRPS: 50, maxLatency: 3 * time.Second}
	a := newApp(o)
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	a.now = c.now
	a.uniform = func() float64 { return u }
	var mu sync.Mutex
	slept := &[]time.Duration{}
	a.sleep = func(_ context.Context, d time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		*slept = append(*slept, d)
	}
	return a, c, slept
}

func get(t *testing.T, h http.Handler, path string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec
}

// The synthetic endpoint waits what the model says: --good-latency with no
// load, the bound when saturated, the M/M/1 time once scaled out; the bad
// image adds its latency and errors.
func TestOrdersFollowTheModel(t *testing.T) {
	a, _, slept := testApp(t, 0.5) // u = 0.5: the median
	h := a.handler()
	median := func(mean time.Duration) time.Duration { return time.Duration(float64(mean) * math.Ln2) }
	steps := []struct {
		d      *appsv1.Deployment
		want   time.Duration
		status int
	}{
		{demoDeployment("x:v1.0.0", "", 3), 5 * time.Millisecond, 200},
		{demoDeployment("x:v1.0.0", "300", 3), 3*time.Second - 150*time.Millisecond, 200},
		{demoDeployment("x:v1.0.0", "300", 5), 3*time.Second - 150*time.Millisecond, 200}, // ρ = 1.2
		{demoDeployment("x:v1.0.0", "300", 8), median(20 * time.Millisecond), 200},
		{demoDeployment("x:v1.1.0", "", 3), 450 * time.Millisecond, 200}, // u = 0.5 ≥ error ratio: succeeds
		{demoDeployment("x:v1.1.0", "300", 8), median(20*time.Millisecond) + 450*time.Millisecond, 200},
	}
	for i, s := range steps {
		a.observe(s.d)
		rec := get(t, h, "/api/orders")
		if rec.Code != s.status {
			t.Errorf("step %d: status %d, want %d", i, rec.Code, s.status)
		}
		got := (*slept)[len(*slept)-1]
		if d := got - s.want; d < -time.Microsecond || d > time.Microsecond {
			t.Errorf("step %d (%s, %s rps, %d ready): waited %s, want %s", i, s.d.Spec.Template.Spec.Containers[0].Image,
				s.d.Annotations[OfferedRPSAnnotation], s.d.Status.ReadyReplicas, got, s.want)
		}
	}
	// With a variate under the error ratio, the bad image fails requests.
	b, _, _ := testApp(t, 0.1)
	b.observe(demoDeployment("x:v1.1.0", "", 3))
	if rec := get(t, b.handler(), "/api/orders"); rec.Code != http.StatusInternalServerError {
		t.Errorf("bad image: status %d, want 500", rec.Code)
	}
	b.observe(demoDeployment("x:v1.0.0", "300", 3))
	if rec := get(t, b.handler(), "/api/orders"); rec.Code != http.StatusOK {
		t.Errorf("saturated, good image: status %d, want 200 (saturation slows, never fails)", rec.Code)
	}
}

// The exported metrics have the real exporters' names, types and label
// names, as that pod's; the CPU counter follows the model.
func TestSaturationMetrics(t *testing.T) {
	a, c, _ := testApp(t, 0.5)
	a.observe(demoDeployment("x:v1.0.0", "300", 3))
	c.add(20 * time.Second)
	want := `# HELP container_cpu_usage_seconds_total Cumulative cpu time consumed in seconds.
# TYPE container_cpu_usage_seconds_total counter
container_cpu_usage_seconds_total{container="platform-service"} 10
# HELP demo_app_misbehaving 1 while the watched Deployment's template has the bad image.
# TYPE demo_app_misbehaving gauge
demo_app_misbehaving 0
# HELP demo_app_model_mean_latency_seconds Mean time of a request in a pod under the offered load (queueing model).
# TYPE demo_app_model_mean_latency_seconds gauge
demo_app_model_mean_latency_seconds 3
# HELP demo_app_offered_requests_per_second Request rate offered to the whole Deployment (annotation demo.remediator.io/offered-rps).
# TYPE demo_app_offered_requests_per_second gauge
demo_app_offered_requests_per_second 300
# HELP demo_app_ready_replicas Ready replicas of the Deployment sharing the offered load.
# TYPE demo_app_ready_replicas gauge
demo_app_ready_replicas 3
# HELP demo_app_utilization Offered load over the ready replicas' capacity (+Inf with load and no ready replica).
# TYPE demo_app_utilization gauge
demo_app_utilization 2
# HELP kube_pod_container_resource_limits The number of requested limit resource by a container.
# TYPE kube_pod_container_resource_limits gauge
kube_pod_container_resource_limits{container="platform-service",resource="cpu",unit="core"} 0.5
kube_pod_container_resource_limits{container="platform-service",resource="memory",unit="byte"} 2.68435456e+08
`
	names := []string{"container_cpu_usage_seconds_total", "kube_pod_container_resource_limits", "demo_app_offered_requests_per_second",
		"demo_app_ready_replicas", "demo_app_utilization", "demo_app_model_mean_latency_seconds", "demo_app_misbehaving"}
	if got := exposition(t, a.reg, names...); got != want {
		t.Fatalf("metrics:\n%s\nwant:\n%s", got, want)
	}
	// Scaled to 8: three quarters of the limit from now on.
	a.observe(demoDeployment("x:v1.0.0", "300", 8))
	c.add(4 * time.Second)
	if got, want := exposition(t, a.reg, "container_cpu_usage_seconds_total", "demo_app_utilization"), `# HELP container_cpu_usage_seconds_total Cumulative cpu time consumed in seconds.
# TYPE container_cpu_usage_seconds_total counter
container_cpu_usage_seconds_total{container="platform-service"} 11.5
# HELP demo_app_utilization Offered load over the ready replicas' capacity (+Inf with load and no ready replica).
# TYPE demo_app_utilization gauge
demo_app_utilization 0.75
`; got != want {
		t.Fatalf("metrics:\n%s\nwant:\n%s", got, want)
	}
	// A template without limits has no limit series (as kube-state-metrics).
	d := demoDeployment("x:v1.0.0", "300", 8)
	d.Spec.Template.Spec.Containers[0].Resources = corev1.ResourceRequirements{}
	a.observe(d)
	if n := exposition(t, a.reg, "kube_pod_container_resource_limits"); n != "" {
		t.Fatalf("limit series for a container without limits:\n%s", n)
	}
	// Deleted: no containers, no pod series.
	a.observe(nil)
	if n := exposition(t, a.reg, "container_cpu_usage_seconds_total"); n != "" {
		t.Fatalf("cpu series after the Deployment was deleted:\n%s", n)
	}
}

// exposition is the text exposition of reg's families named names, in
// the registry's (sorted) order.
func exposition(t *testing.T, reg *prometheus.Registry, names ...string) string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, mf := range mfs {
		if slices.Contains(names, mf.GetName()) {
			if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
				t.Fatal(err)
			}
		}
	}
	return b.String()
}

func TestStateEndpoint(t *testing.T) {
	a, _, _ := testApp(t, 0.5)
	read := func() map[string]any {
		t.Helper()
		rec := get(t, a.handler(), "/state")
		var m map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil || rec.Code != 200 {
			t.Fatalf("GET /state: %d %s: %v", rec.Code, rec.Body, err)
		}
		return m
	}
	a.observe(demoDeployment("x:v1.0.0", "300", 3))
	if m := read(); m["saturated"] != true || m["utilization"] != 2.0 || m["offeredRPS"] != 300.0 || m["readyReplicas"] != 3.0 ||
		m["cpuCores"] != 0.5 || m["cpuLimitCores"] != 0.5 || m["meanLatencySeconds"] != 3.0 || m["bad"] != false || m["image"] != "x:v1.0.0" {
		t.Errorf("saturated: %v", m)
	}
	a.observe(demoDeployment("x:v1.0.0", "300", 0))
	if m := read(); m["saturated"] != true || m["utilization"] != nil {
		t.Errorf("no ready replica: %v", m)
	}
	a.observe(demoDeployment("x:v1.0.0", "300", 8))
	if m := read(); m["saturated"] != false || m["utilization"] != 0.75 || m["meanLatencySeconds"] != 0.02 {
		t.Errorf("scaled out: %v", m)
	}
}
