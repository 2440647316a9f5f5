package probe

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

const prometheusBin = "/usr/bin/prometheus"

func TestRenderQuery(t *testing.T) {
	got, err := RenderQuery(`rate(x{namespace="{{.Namespace}}",deployment="{{.Name}}"}[5m])`, demoTarget)
	if err != nil || got != `rate(x{namespace="ns",deployment="platform-service"}[5m])` {
		t.Errorf("%q %v", got, err)
	}
	for _, bad := range []string{`{{.Nope}}`, `{{.Name`} {
		if _, err := RenderQuery(bad, demoTarget); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// exporter serves fixed request/error counters for namespace demo and a
// memory gauge that grows by 1 MB per second.
func exporter(t *testing.T) *httptest.Server {
	reg := prometheus.NewRegistry()
	labels := prometheus.Labels{"namespace": "demo", "deployment": "platform-service"}
	reqs := prometheus.NewCounter(prometheus.CounterOpts{Name: "http_requests_total", Help: "requests", ConstLabels: labels})
	errs := prometheus.NewCounter(prometheus.CounterOpts{Name: "http_request_errors_total", Help: "errors", ConstLabels: labels})
	reqs.Add(200)
	errs.Add(10)
	start := time.Now()
	mem := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "container_memory_working_set_bytes", Help: "memory", ConstLabels: labels},
		func() float64 { return 100e6 + 1e6*time.Since(start).Seconds() })
	reg.MustRegister(reqs, errs, mem)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	t.Cleanup(srv.Close)
	return srv
}

func freePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startPrometheus runs Debian's prometheus on loopback scraping target every
// second and returns its URL once it is ready.
func startPrometheus(t *testing.T, target string) string {
	t.Helper()
	if _, err := os.Stat(prometheusBin); err != nil {
		t.Skipf("no %s: %v", prometheusBin, err)
	}
	dir := t.TempDir()
	cfg := fmt.Sprintf("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: exporter\n    static_configs:\n      - targets: [%q]\n", target)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := freePort(t)
	var logs bytes.Buffer
	cmd := exec.Command(prometheusBin,
		"--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--log.level=warn")
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("prometheus log:\n%s", logs.String())
		}
	})
	base := "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("prometheus exited: %v\n%s", err, logs.String())
		default:
		}
		resp, err := http.Get(base + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("prometheus not ready after 30s\n%s", logs.String())
	return ""
}

func TestPrometheus(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real Prometheus; skipped with -short")
	}
	t0 := time.Now()
	exp := exporter(t)
	u, _ := url.Parse(exp.URL)
	base := startPrometheus(t, u.Host)
	t.Logf("prometheus ready in %s at %s", time.Since(t0), base)
	p := Prometheus{URL: base}
	tg := Target{Namespace: "demo", Kind: "Deployment", Name: "platform-service"}
	ctx := t.Context()

	// Wait until a few scrapes are stored (the range query needs points).
	deadline := time.Now().Add(30 * time.Second)
	for {
		ev, err := p.Run(ctx, tg, Params{"query": `count_over_time(up{job="exporter"}[1m])`})
		if err == nil && ev.(PrometheusEvidence).Value >= 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no scrapes after 30s: %v %+v", err, ev)
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Logf("4 scrapes after %s", time.Since(t0))

	errRate := `sum(http_request_errors_total{namespace="{{.Namespace}}",deployment="{{.Name}}"}) / sum(http_requests_total{namespace="{{.Namespace}}",deployment="{{.Name}}"})`
	tests := []struct {
		name    string
		params  Params
		check   func(PrometheusEvidence) bool
		wantErr string
	}{
		{"instant error ratio", Params{"query": errRate}, func(e PrometheusEvidence) bool {
			return e.Available && e.Value == 0.05 && e.Samples == 1 && e.Mode == "instant" && strings.Contains(e.Query, `namespace="demo"`)
		}, ""},
		{"scalar", Params{"query": `scalar(sum(http_requests_total))`}, func(e PrometheusEvidence) bool {
			return e.Available && e.Value == 200
		}, ""},
		{"no data", Params{"query": `http_requests_total{namespace="elsewhere"}`}, func(e PrometheusEvidence) bool {
			return !e.Available && e.Samples == 0 && e.Reason != "" && e.Value == 0
		}, ""},
		{"NaN is unavailable", Params{"query": `sum(http_requests_total) * 0 / 0`}, func(e PrometheusEvidence) bool {
			return !e.Available && strings.Contains(e.Reason, "NaN")
		}, ""},
		{"memory trend", Params{"query": `container_memory_working_set_bytes{deployment="{{.Name}}"}`, "mode": "range", "window": time.Minute, "step": time.Second},
			func(e PrometheusEvidence) bool {
				// 1 MB/s = 60 MB/min; staircase sampling makes it approximate.
				return e.Available && e.Mode == "range" && e.Samples >= 4 && e.Last > e.First &&
					e.SlopePerMinute > 30e6 && e.SlopePerMinute < 120e6
			}, ""},
		{"window implies range", Params{"query": `container_memory_working_set_bytes`, "window": "1m", "step": "1s"},
			func(e PrometheusEvidence) bool { return e.Mode == "range" && e.Available }, ""},
		{"bad promql", Params{"query": `sum(`}, nil, "bad_data"},
		{"missing query", Params{}, nil, "required"},
		{"bad mode", Params{"query": "up", "mode": "sideways"}, nil, "mode"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := p.Run(ctx, tg, tt.params)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("want error containing %q, got %v %+v", tt.wantErr, err, ev)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			e := ev.(PrometheusEvidence)
			t.Logf("%+v", e)
			if !tt.check(e) {
				t.Errorf("unexpected evidence %+v", e)
			}
		})
	}

	// Prometheus down: an error, not evidence.
	down := Prometheus{URL: "http://" + freePort(t)}
	if _, err := down.Run(ctx, tg, Params{"query": "up"}); err == nil {
		t.Error("unreachable Prometheus gave no error")
	}
	res := RunAll(context.Background(), []Step{
		{Probe: down, Target: tg, Params: Params{"query": "up"}, Timeout: 2 * time.Second},
		{Probe: p, Target: tg, Params: Params{"query": errRate}},
	})
	if res[0].Err == nil || res[1].Err != nil || !res[1].Evidence.(PrometheusEvidence).Available {
		t.Errorf("RunAll: %v / %+v", res[0].Err, res[1])
	}
}
