package probe

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/remediator/remediator/internal/testbed"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestMain(m *testing.M) { testbed.Main(m) }

type fakeEvidence struct{ N int64 }

type fakeProbe struct {
	name string
	run  func(ctx context.Context) (Evidence, error)
}

func (f fakeProbe) Name() string { return f.name }
func (f fakeProbe) Run(ctx context.Context, _ Target, _ Params) (Evidence, error) {
	return f.run(ctx)
}

var demoTarget = Target{Namespace: "ns", Kind: "Deployment", Name: "platform-service"}

func TestRunAllIsolatesFailures(t *testing.T) {
	ok := fakeProbe{"ok", func(context.Context) (Evidence, error) { return fakeEvidence{7}, nil }}
	fail := fakeProbe{"fail", func(context.Context) (Evidence, error) { return nil, errors.New("boom") }}
	panics := fakeProbe{"panics", func(context.Context) (Evidence, error) { panic("oops") }}
	slow := fakeProbe{"slow", func(ctx context.Context) (Evidence, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}}
	start := time.Now()
	res := RunAll(context.Background(), []Step{
		{ID: "a", Probe: ok, Target: demoTarget},
		{Probe: fail, Target: demoTarget},
		{ID: "p", Probe: panics, Target: demoTarget},
		{ID: "s", Probe: slow, Target: demoTarget, Timeout: 50 * time.Millisecond},
		{ID: "bad", Probe: ok, Target: Target{Namespace: "ns", Kind: "Deployment", Name: "*"}},
		{ID: "none"},
	})
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("RunAll took %s", el)
	}
	if len(res) != 6 {
		t.Fatalf("%d results", len(res))
	}
	if res[0].ID != "a" || res[0].Err != nil || res[0].Evidence != (fakeEvidence{7}) {
		t.Errorf("ok: %+v", res[0])
	}
	if res[1].ID != "fail" || res[1].Err == nil || !strings.Contains(res[1].Err.Error(), "boom") {
		t.Errorf("fail: %+v", res[1])
	}
	if !errors.Is(res[2].Err, ErrPanic) {
		t.Errorf("panic: %+v", res[2])
	}
	if !errors.Is(res[3].Err, context.DeadlineExceeded) || !strings.Contains(res[3].Err.Error(), "timed out after 50ms") {
		t.Errorf("slow: %v", res[3].Err)
	}
	if res[4].Err == nil || res[5].Err == nil {
		t.Errorf("bad target / no probe: %v / %v", res[4].Err, res[5].Err)
	}
	b, err := json.Marshal(res[1])
	if err != nil || !strings.Contains(string(b), `"error":"fail: boom"`) {
		t.Errorf("json: %s %v", b, err)
	}
}

func TestTargetValidate(t *testing.T) {
	for _, tt := range []struct {
		t  Target
		ok bool
	}{
		{demoTarget, true},
		{Target{Namespace: "", Kind: "Deployment", Name: "x"}, false},
		{Target{Namespace: "ns", Kind: "Deployment", Name: ""}, false},
		{Target{Namespace: "ns", Kind: "Deployment", Name: ".*"}, false},
		{Target{Namespace: "ns", Kind: "Deployment", Name: `x"}`}, false},
		{Target{Namespace: "ns", Kind: "StatefulSet", Name: "x"}, false},
	} {
		if err := tt.t.Validate(); (err == nil) != tt.ok {
			t.Errorf("%v: %v", tt.t, err)
		}
	}
}

func TestParams(t *testing.T) {
	p := Params{"i": int64(3), "d": 2 * time.Second, "ds": "1m", "s": "x", "l": []string{"a"}, "la": []any{"b"}, "bad": true}
	if v, err := p.Int("i", 0); v != 3 || err != nil {
		t.Error(v, err)
	}
	if v, err := p.Int("missing", 9); v != 9 || err != nil {
		t.Error(v, err)
	}
	if _, err := p.Int("bad", 0); err == nil {
		t.Error("bool as int")
	}
	if v, err := p.Duration("d", 0); v != 2*time.Second || err != nil {
		t.Error(v, err)
	}
	if v, err := p.Duration("ds", 0); v != time.Minute || err != nil {
		t.Error(v, err)
	}
	if v, err := p.Strings("la"); len(v) != 1 || v[0] != "b" || err != nil {
		t.Error(v, err)
	}
	if _, err := p.String("i", ""); err == nil {
		t.Error("int as string")
	}
	o, err := parseLogOptions(Params{"sinceSeconds": int64(60)}, true)
	if err != nil || o.since != time.Minute || o.maxLines != 2000 || o.top != 5 {
		t.Errorf("%+v %v", o, err)
	}
	if _, err := parseLogOptions(Params{"pattern": "("}, true); err == nil {
		t.Error("bad pattern accepted")
	}
	if _, err := parseLogOptions(Params{"top": int64(0)}, false); err == nil {
		t.Error("top 0 accepted")
	}
}

func TestRules(t *testing.T) {
	rules := Rules(RolloutHistory{}, PodStatus{}, Resources{}, ErrorDistribution{}, SlowEndpoints{}, Prometheus{}, Dependencies{})
	var got []string
	for _, r := range rules {
		got = append(got, r.APIGroups[0]+"/"+r.Resources[0]+":"+strings.Join(r.Verbs, ","))
	}
	want := "/pods:list /pods/log:get apps/deployments:get apps/replicasets:list metrics.k8s.io/pods:list"
	if strings.Join(got, " ") != want {
		t.Errorf("rules:\n got %s\nwant %s", strings.Join(got, " "), want)
	}
}

func TestNearLimits(t *testing.T) {
	pod := func(name string) corev1.Pod {
		return corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "app",
			Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{
				corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("256Mi"),
			}},
		}}}}
	}
	use := func(cpu, mem string) map[string]corev1.ResourceList {
		return map[string]corev1.ResourceList{"app": {corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse(mem)}}
	}
	pods := []corev1.Pod{pod("a"), pod("b"), pod("c"), pod("d")}
	u := containerUsage{"a": use("480m", "100Mi"), "b": use("450m", "250Mi"), "c": use("10m", "240Mi"), "d": use("100m", "10Mi")}
	ok, per, cpu, mem, reason := nearLimits(pods, u, 90)
	if !ok || cpu != 50 || mem != 50 || len(per) != 4 || reason != "" {
		t.Errorf("ok=%v cpu=%d mem=%d per=%+v reason=%q", ok, cpu, mem, per, reason)
	}
	if ok, _, cpu, mem, reason := nearLimits(pods, containerUsage{}, 90); ok || cpu != 0 || mem != 0 || reason == "" {
		t.Errorf("no usage: ok=%v %d %d %q", ok, cpu, mem, reason)
	}
}

func TestDependencies(t *testing.T) {
	up, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	go func() {
		for {
			c, err := up.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := closed.Addr().String()
	closed.Close()
	okHTTP := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/fail" {
			http.Error(w, "no", http.StatusServiceUnavailable)
			return
		}
		if r.URL.Path == "/redirect" {
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
			return
		}
	}))
	defer okHTTP.Close()

	tests := []struct {
		name      string
		endpoints []string
		wantAll   bool
		wantDown  []string
		wantErr   bool
	}{
		{"tcp up", []string{up.Addr().String()}, true, nil, false},
		{"tcp up and down", []string{up.Addr().String(), down}, false, []string{down}, false},
		{"http ok and redirect", []string{okHTTP.URL + "/healthz", okHTTP.URL + "/redirect"}, true, nil, false},
		{"http 503 and closed", []string{okHTTP.URL + "/fail", "http://" + down + "/"}, false, []string{okHTTP.URL + "/fail", "http://" + down + "/"}, false},
		{"no endpoints", nil, false, nil, true},
		{"not an endpoint", []string{"redis"}, false, nil, true},
		{"ftp url", []string{"ftp://x:21"}, false, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := Dependencies{}.Run(t.Context(), demoTarget, Params{"endpoints": tt.endpoints, "timeout": time.Second})
			if tt.wantErr {
				if err == nil {
					t.Fatalf("want error, got %+v", ev)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			d := ev.(DependenciesEvidence)
			if d.AllReachable != tt.wantAll || strings.Join(d.Unreachable, ",") != strings.Join(tt.wantDown, ",") || len(d.Checks) != len(tt.endpoints) {
				t.Errorf("got %+v", d)
			}
			for _, c := range d.Checks {
				if c.LatencyMs < 0 || (c.OK != (c.Error == "")) {
					t.Errorf("check %+v", c)
				}
			}
		})
	}
}
