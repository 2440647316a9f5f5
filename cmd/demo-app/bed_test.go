package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/remediator/remediator/internal/action"
	"github.com/remediator/remediator/internal/planner"
	"github.com/remediator/remediator/internal/policy"
	"github.com/remediator/remediator/internal/probe"
	"github.com/remediator/remediator/internal/testbed"
)

func TestMain(m *testing.M) { testbed.Main(m) }

// shippedPolicies are policies/*.yaml with the dependency endpoints pointed
// at deps and every PromQL range [5m] shortened to [10s], the substitution
// the end-to-end test makes in the alert rules, so a test need not wait
// five minutes for a rate to reflect the load.
func shippedPolicies(t *testing.T, deps string) *policy.Set {
	t.Helper()
	root, err := testbed.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(root, "policies", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("shipped policies: %v (%d files)", err, len(files))
	}
	dir := t.TempDir()
	r := strings.NewReplacer("database:5432", deps, "redis:6379", deps, "[5m]", "[10s]")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), []byte(r.Replace(string(b))), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	set, err := policy.Load(dir, policy.DefaultCatalog())
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// listener accepts and closes connections: a reachable dependency.
func listener(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	return ln.Addr().String()
}

// startPrometheus runs the Debian prometheus scraping target every second
// as the pod ns/pod, as a PodMonitor would label it.
func startPrometheus(t *testing.T, target, ns, pod string) string {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatalf("prometheus not found (hack/install-deps.sh installs the Debian package): %v", err)
	}
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: platform-service
    static_configs:
      - targets: [%q]
        labels:
          namespace: %q
          pod: %q
`, target, ns, pod)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path="+filepath.Join(dir, "tsdb"),
		"--web.listen-address="+addr, "--log.level=warn")
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("prometheus output:\n%s", out.String())
		}
	})
	url := "http://" + addr
	waitFor(t, "prometheus ready", 30*time.Second, func() (bool, string) {
		resp, err := http.Get(url + "/-/ready")
		if err != nil {
			return false, err.Error()
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})
	return url
}

// waitFor polls ok every 250 ms until it is true, failing the test after d
// with ok's last word.
func waitFor(t *testing.T, what string, d time.Duration, ok func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		done, last := ok()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s; last: %s", what, d, last)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

type appState struct {
	Synced        bool     `json:"synced"`
	OfferedRPS    float64  `json:"offeredRPS"`
	ReadyReplicas int32    `json:"readyReplicas"`
	Utilization   *float64 `json:"utilization"`
	Saturated     bool     `json:"saturated"`
}

func readState(t *testing.T, url string) appState {
	t.Helper()
	resp, err := http.Get(url + "/state")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var s appState
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

// evidence is the plan's evidence of step id, of type E.
func evidence[E any](t *testing.T, plan *planner.Plan, id string) (E, error) {
	t.Helper()
	var zero E
	for _, r := range plan.Evidence {
		if r.ID != id {
			continue
		}
		if r.Err != nil {
			return zero, r.Err
		}
		switch e := r.Evidence.(type) {
		case E:
			return e, nil
		case *E:
			return *e, nil
		}
		return zero, fmt.Errorf("evidence %s is a %T", id, r.Evidence)
	}
	return zero, fmt.Errorf("no evidence %s", id)
}

// TestSaturationScaleLoopOnTheBed is the runbook's "saturation →
// HighLatency → scale" without Alertmanager and remediator's executor:
// the demo's Deployment (one revision, seconds old, an HPA, no
// metrics.k8s.io) and demo-app watching it; real Prometheus scraping
// demo-app as one of its pods. The offered-load annotation saturates the 3
// replicas → p95 above the HighLatency threshold and the pods at their CPU
// limit in Prometheus → the shipped high-latency policy, planned with the
// real probes through the remediator's identity, scales out through the
// HPA (minReplicas 3 → 8) → applied → the HPA scales the Deployment, kwok
// makes the pods Ready → demo-app's utilization drops below 1 → p95 falls
// back under a second, and the policy no longer scales.
func TestSaturationScaleLoopOnTheBed(t *testing.T) {
	env := testbed.Get(t)
	ctx := t.Context()
	admin, kube := env.AdminClient(), env.RemediatorClient()
	ns := env.NewNamespace()
	env.ApplyDemo(ns)
	acts := action.New(kube)
	var list []action.Action
	for _, a := range acts {
		list = append(list, a)
	}
	env.GrantRemediator(ns, append(probe.AllRules(), action.Rules(list...)...)...)
	const deploy = testbed.DemoDeployment
	pods, err := testbed.ReadyPods(ctx, admin, ns, "app="+deploy)
	if err != nil || len(pods) != 3 {
		t.Fatalf("demo pods: %v (%d)", err, len(pods))
	}

	// demo-app, watching the Deployment with the admin's kubeconfig.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	appURL := "http://" + ln.Addr().String()
	o := options{kubeconfig: env.Bed().State().AdminKubeconfig, namespace: ns, deployment: deploy, badImage: "v1.1.0",
		rps: 20, errorRatio: 0.3, badLatency: 300 * time.Millisecond, goodLatency: 5 * time.Millisecond,
		capacityRPS: 50, maxLatency: 3 * time.Second}
	appCtx, stopApp := context.WithCancel(context.Background())
	appDone := make(chan error, 1)
	go func() { appDone <- run(appCtx, o, ln) }()
	t.Cleanup(func() {
		stopApp()
		if err := <-appDone; err != nil {
			t.Errorf("demo-app: %v", err)
		}
	})
	waitFor(t, "demo-app synced", 30*time.Second, func() (bool, string) {
		s := readState(t, appURL)
		return s.Synced && s.ReadyReplicas == 3, fmt.Sprintf("%+v", s)
	})
	promURL := startPrometheus(t, ln.Addr().String(), ns, pods[0].Name)

	set := shippedPolicies(t, listener(t))
	pl := &planner.Planner{Policies: func() *policy.Set { return set },
		Probes: probe.New(probe.Config{Kube: kube, PrometheusURL: promURL}), Kube: kube, Actions: acts}
	alert := policy.Alert{Status: "firing", StartsAt: time.Now(), Labels: map[string]string{
		"alertname": "HighLatency", "namespace": ns, "deployment": deploy, "severity": "warning"}}
	plan := func() *planner.Plan {
		t.Helper()
		p, err := pl.Plan(ctx, alert)
		if err != nil {
			t.Fatal(err)
		}
		if !p.Matched || p.Policy != "high-latency" {
			t.Fatalf("plan: %+v", p)
		}
		return p
	}

	// Before any load: the saturation evidence is there, and says no.
	waitFor(t, "unsaturated evidence from Prometheus", 30*time.Second, func() (bool, string) {
		p := plan()
		sat, err := evidence[probe.PrometheusEvidence](t, p, "cpuSaturation")
		return err == nil && sat.Available && sat.Value == 0 && p.Decision.Escalated, fmt.Sprintf("%+v %v; decision %+v", sat, err, p.Decision)
	})

	// Saturate: 300 rps offered to 3 replicas of 50.
	t0 := time.Now()
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:"300"}}}`, OfferedRPSAnnotation)
	if _, err := admin.AppsV1().Deployments(ns).Patch(ctx, deploy, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "demo-app saturated", 10*time.Second, func() (bool, string) {
		s := readState(t, appURL)
		return s.Saturated && s.OfferedRPS == 300, fmt.Sprintf("%+v", s)
	})

	// The policy decides to scale out, on Prometheus's evidence alone.
	var scale *planner.Plan
	waitFor(t, "the high-latency policy choosing scale-out", 60*time.Second, func() (bool, string) {
		p := plan()
		if p.Decision.Remedy == "scale-out" {
			scale = p
			return true, ""
		}
		sat, err := evidence[probe.PrometheusEvidence](t, p, "cpuSaturation")
		return false, fmt.Sprintf("cpuSaturation %+v %v; decision %s", sat, err, p.Decision.Action)
	})
	tDecided := time.Since(t0)
	sat, _ := evidence[probe.PrometheusEvidence](t, scale, "cpuSaturation")
	p95, err := evidence[probe.PrometheusEvidence](t, scale, "p95")
	if err != nil || !p95.Available || p95.Value <= 1 {
		t.Errorf("p95 when deciding: %+v %v; want above HighLatency's 1s", p95, err)
	}
	if res, err := evidence[probe.ResourcesEvidence](t, scale, "resources"); err != nil || res.Available {
		t.Errorf("resources evidence %+v %v: the bed serves no metrics.k8s.io, want available false", res, err)
	}
	if ro, err := evidence[probe.RolloutHistoryEvidence](t, scale, "rolloutHistory"); err != nil || len(ro.Revisions) != 1 || ro.NewestRolloutAge >= 30*time.Minute {
		t.Errorf("rollout history %+v %v: want one fresh revision", ro, err)
	}
	c := scale.Change
	if c == nil || c.Scale == nil || !c.Scale.ViaHPA || c.Scale.Field != "spec.minReplicas" || c.Scale.From != 3 || c.Scale.To != 8 || len(scale.Blocks) != 0 {
		t.Fatalf("change %+v (%+v), blocks %v, error %q", c, c, scale.Blocks, scale.ChangeError)
	}
	if d := scale.Decision; d.Priority != policy.P2 {
		t.Errorf("priority %s, want P2 (warning)", d.Priority)
	}
	t.Logf("saturated → scale-out decided after %s (cpuSaturation %.0f%%, p95 %.2fs): %s",
		tDecided.Round(100*time.Millisecond), sat.Value, p95.Value, c.Summary)

	// Apply it, as the executor would.
	if _, err := acts["scale"].Apply(ctx, *c); err != nil {
		t.Fatal(err)
	}
	tApplied := time.Since(t0)
	waitFor(t, "8 ready replicas seen by demo-app", 60*time.Second, func() (bool, string) {
		s := readState(t, appURL)
		return s.ReadyReplicas == 8 && !s.Saturated, fmt.Sprintf("%+v", s)
	})
	tReady := time.Since(t0)
	h, err := admin.AutoscalingV2().HorizontalPodAutoscalers(ns).Get(ctx, deploy, metav1.GetOptions{})
	if err != nil || h.Spec.MinReplicas == nil || *h.Spec.MinReplicas != 8 {
		t.Fatalf("HPA %v: minReplicas %v, want 8", err, h.Spec.MinReplicas)
	}
	d, err := admin.AppsV1().Deployments(ns).Get(ctx, deploy, metav1.GetOptions{})
	if err != nil || *d.Spec.Replicas != 8 || d.Status.ReadyReplicas != 8 {
		t.Fatalf("deployment %v: replicas %d ready %d, want 8", err, *d.Spec.Replicas, d.Status.ReadyReplicas)
	}

	// Latency falls back and the policy no longer scales: 300 rps on 8
	// replicas is ρ = 0.75, 75% of the CPU limit, under the 90% mark.
	var after *planner.Plan
	waitFor(t, "p95 under 1s and no saturation", 60*time.Second, func() (bool, string) {
		p := plan()
		sat, err1 := evidence[probe.PrometheusEvidence](t, p, "cpuSaturation")
		p95, err2 := evidence[probe.PrometheusEvidence](t, p, "p95")
		after = p
		return err1 == nil && err2 == nil && sat.Available && sat.Value == 0 && p95.Available && p95.Value < 1,
			fmt.Sprintf("cpuSaturation %+v %v, p95 %+v %v", sat, err1, p95, err2)
	})
	if after.Decision.Remedy != "" || !after.Decision.Escalated {
		t.Errorf("after scaling out: decision %+v, want no remedy", after.Decision)
	}
	t.Logf("timings from the annotation: scale decided %s, applied %s, 8 replicas ready %s, p95 < 1s and no saturation %s",
		tDecided.Round(100*time.Millisecond), tApplied.Round(100*time.Millisecond), tReady.Round(100*time.Millisecond),
		time.Since(t0).Round(100*time.Millisecond))
}
