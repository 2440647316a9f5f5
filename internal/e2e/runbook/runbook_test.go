// Package runbook runs the runbook's loop end to end with every outside
// component real: the demo-app (cmd/demo-app) serves platform-service's
// metrics and misbehaves while the Deployment runs the bad image; the real
// Prometheus (the Debian binary) scrapes it and evaluates the shipped alert
// rules (deploy/monitoring/rules.yml, windows shortened for a test); the
// real Alertmanager notifies the real `remediator serve` binary (enforce
// mode, SQLite, bearer token, the shipped policies), which acts on the test
// bed's real Kubernetes control plane (pods simulated by kwok).
//
//	go test ./internal/e2e/runbook -v
//
// Skipped with -short. Needs prometheus and prometheus-alertmanager
// (hack/install-deps.sh installs them).
package runbook

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"

	"github.com/remediator/remediator/internal/action"
	"github.com/remediator/remediator/internal/probe"
	"github.com/remediator/remediator/internal/testbed"
)

var bed testbed.Shared

var (
	binOnce sync.Once
	binDir  string
	binErr  error
)

func TestMain(m *testing.M) {
	code := bed.Run(m)
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	os.Exit(code)
}

const (
	goodImage = "registry.example/platform-service:v1.0.0"
	badImage  = "registry.example/platform-service:v1.1.0"
	token     = "runbook-e2e-token"
	revAnn    = "deployment.kubernetes.io/revision"
)

// binaries builds remediator and demo-app once per test process.
func binaries(t *testing.T) (remediator, demoApp string) {
	t.Helper()
	binOnce.Do(func() {
		root, err := testbed.RepoRoot()
		if err != nil {
			binErr = err
			return
		}
		if binDir, binErr = os.MkdirTemp("", "remediator-runbook-bin-"); binErr != nil {
			return
		}
		// One build for both: the go command builds them in parallel.
		cmd := exec.Command("go", "build", "-o", binDir+string(filepath.Separator), "./cmd/remediator", "./cmd/demo-app")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build ./cmd/remediator ./cmd/demo-app: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return filepath.Join(binDir, "remediator"), filepath.Join(binDir, "demo-app")
}

func prometheusBinary(t *testing.T) string {
	t.Helper()
	if b := os.Getenv("REMEDIATOR_PROMETHEUS_BIN"); b != "" {
		return b
	}
	b, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatalf("prometheus not found (hack/install-deps.sh installs the Debian package): %v", err)
	}
	return b
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// syncBuffer collects a process's output.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startProcess runs bin with args until the test ends; its output is
// logged (last lines) if the test failed.
func startProcess(t *testing.T, name, bin string, args ...string) *syncBuffer {
	t.Helper()
	out := &syncBuffer{}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", name, err)
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
			t.Logf("--- %s (pid %d), last lines ---\n%s", name, cmd.Process.Pid, tail(out.String(), 40))
		}
	})
	return out
}

func tail(s string, n int) string {
	var lines []string
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		// without the access log of the test's polling
		if strings.Contains(l, `"msg":"request"`) && strings.Contains(l, `"method":"GET"`) {
			continue
		}
		lines = append(lines, l)
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// waitHTTP polls url until it answers 200.
func waitHTTP(t *testing.T, what, url string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		resp, err := http.Get(url)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready at %s within %s: %v", what, url, d, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func getJSON(ctx context.Context, url, bearer string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, b)
	}
	return json.Unmarshal(b, v)
}

// testRules is deploy/monitoring/rules.yml with the windows a test can wait
// for: every range [5m] becomes [10s] and every `for:` 10s. Nothing else
// changes: the expressions (label_replace deriving deployment from pod,
// the ratios and thresholds), labels and annotations are the shipped ones.
// `for: 10s` rather than less leaves the test the few seconds it needs to
// set the new pods' logs (what errorDistribution reads) before the alert
// reaches remediator.
func testRules(t *testing.T, dst string) {
	t.Helper()
	root, err := testbed.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "deploy", "monitoring", "rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	if !strings.Contains(s, "rate(http_request_errors_total[5m])") || !strings.Contains(s, "for: 5m") {
		t.Fatalf("rules.yml changed: the test's window substitution needs updating")
	}
	s = strings.ReplaceAll(s, "[5m]", "[10s]")
	s = regexp.MustCompile(`(?m)^(\s+)for: \S+$`).ReplaceAllString(s, "${1}for: 10s")
	if err := os.WriteFile(dst, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// copyPolicies copies the shipped policies with the runbook's dependency
// endpoints (database:5432, redis:6379) replaced by deps, as hack/demo does.
func copyPolicies(t *testing.T, dst, deps string) {
	t.Helper()
	root, err := testbed.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(root, "policies", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("shipped policies: %v (%d files)", err, len(files))
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	r := strings.NewReplacer("database:5432", deps, "redis:6379", deps)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, filepath.Base(f)), []byte(r.Replace(string(b))), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// loop is one namespace's whole chain: demo-app → Prometheus →
// Alertmanager → remediator → the cluster.
type loop struct {
	t          *testing.T
	env        *testbed.Env
	ns         string
	admin      kubernetes.Interface
	remediator string // base URL
	prometheus string // base URL
	demoApp    string // base URL
	pod        string // the pod label Prometheus puts on the scraped metrics
	deps       string // the address the policies' dependency endpoints point at
}

// depsReachable: the policies' dependency endpoints point at a listener
// that accepts (true) or at a closed port (false).
func newLoop(t *testing.T, depsReachable bool) *loop {
	t.Helper()
	t0 := time.Now()
	env := bed.Get(t)
	remBin, demoBin := binaries(t)
	promBin := prometheusBinary(t)
	t.Logf("bed and binaries ready in %s", time.Since(t0).Round(100*time.Millisecond))
	ctx := t.Context()
	dir := t.TempDir()
	l := &loop{t: t, env: env, admin: env.AdminClient()}

	l.ns = env.NewNamespace()
	env.ApplyDemo(l.ns)
	var acts []action.Action
	for _, a := range action.New(nil) {
		acts = append(acts, a)
	}
	env.GrantRemediator(l.ns, append(probe.AllRules(), action.Rules(acts...)...)...)

	// The metrics carry a real pod name of the Deployment
	// (platform-service-<hash>-<suffix>), as a PodMonitor would set it.
	pods, err := testbed.ReadyPods(ctx, l.admin, l.ns, "app="+testbed.DemoDeployment)
	if err != nil || len(pods) == 0 {
		t.Fatalf("demo pods: %v (%d)", err, len(pods))
	}
	l.pod = pods[0].Name
	t.Logf("namespace %s with the demo (revision 1) ready in %s", l.ns, time.Since(t0).Round(100*time.Millisecond))

	// The runbook's dependencies.
	var deps string
	if depsReachable {
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
		deps = ln.Addr().String()
	} else {
		deps = freeAddr(t) // closed: connections are refused
	}
	l.deps = deps
	policies := filepath.Join(dir, "policies")
	copyPolicies(t, policies, deps)

	// demo-app, watching the Deployment.
	demoAddr := freeAddr(t)
	l.demoApp = "http://" + demoAddr
	startProcess(t, "demo-app", demoBin, "--listen", demoAddr, "--kubeconfig", env.Bed().State().AdminKubeconfig,
		"--namespace", l.ns, "--deployment", testbed.DemoDeployment, "--bad-image", "v1.1.0")
	waitHTTP(t, "demo-app", l.demoApp+"/metrics", 30*time.Second)

	// remediator serve: enforce, SQLite, bearer token, only this namespace.
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	promAddr := freeAddr(t)
	l.prometheus = "http://" + promAddr
	remAddr := freeAddr(t)
	l.remediator = "http://" + remAddr
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "listen: %s\nstore: %s\npolicies: %s\nmode: enforce\nkubeconfig: %s\n", q(remAddr),
		q("sqlite://"+filepath.Join(dir, "remediator.db")), q(policies), q(env.Bed().State().RemediatorKubeconfig))
	fmt.Fprintf(&cfg, "auth:\n  bearer_token_file: %s\n", q(tokenFile))
	fmt.Fprintf(&cfg, "worker:\n  poll: 100ms\n")
	fmt.Fprintf(&cfg, "prometheus:\n  url: %s\n", q(l.prometheus))
	fmt.Fprintf(&cfg, "guards:\n  namespaces: [%s]\n", l.ns)
	cfgFile := filepath.Join(dir, "remediator.yaml")
	if err := os.WriteFile(cfgFile, []byte(cfg.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	startProcess(t, "remediator", remBin, "serve", "--config", cfgFile)
	waitHTTP(t, "remediator", l.remediator+"/readyz", 30*time.Second)

	// Alertmanager routes to remediator, grouped as the shipped route
	// (deploy/monitoring/alertmanager.yml) groups, with test timings.
	am := env.StartAlertmanager(testbed.AlertmanagerOptions{
		Dir: filepath.Join(dir, "alertmanager"), WebhookURL: l.remediator + "/webhook/alertmanager",
		BearerTokenFile: tokenFile, GroupBy: []string{"alertname", "namespace", "deployment"},
		GroupWait: time.Second, GroupInterval: 2 * time.Second, RepeatInterval: time.Hour,
	})
	amURL, err := url.Parse(am.URL)
	if err != nil {
		t.Fatal(err)
	}

	// Prometheus: scrapes demo-app every second as the pod, evaluates the
	// rules every second, alerts to Alertmanager.
	rules := filepath.Join(dir, "rules.yml")
	testRules(t, rules)
	promCfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files: [%s]
alerting:
  alertmanagers:
    - static_configs:
        - targets: [%s]
scrape_configs:
  - job_name: platform-service
    static_configs:
      - targets: [%s]
        labels:
          namespace: %s
          pod: %s
`, q(rules), q(amURL.Host), q(demoAddr), q(l.ns), q(l.pod))
	promFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(promFile, []byte(promCfg), 0o644); err != nil {
		t.Fatal(err)
	}
	startProcess(t, "prometheus", promBin, "--config.file="+promFile, "--storage.tsdb.path="+filepath.Join(dir, "tsdb"),
		"--web.listen-address="+promAddr, "--log.level=info")
	waitHTTP(t, "prometheus", l.prometheus+"/-/ready", 30*time.Second)
	t.Logf("demo-app, remediator, alertmanager, prometheus ready in %s", time.Since(t0).Round(100*time.Millisecond))

	// Healthy to begin with: the target is up, the error ratio is known
	// (not absent) and no alert fires.
	l.waitQuery("the demo-app target scraped with a known, zero error ratio", 30*time.Second, func(v []promSample) bool {
		return len(v) == 1 && v[0].Value == "0"
	}, `sum by (namespace) (rate(http_request_errors_total{namespace="`+l.ns+`"}[10s])) / sum by (namespace) (rate(http_requests_total{namespace="`+l.ns+`"}[10s]))`)
	if a := l.alerts(); len(a) != 0 {
		t.Fatalf("alerts before the bad rollout: %+v", a)
	}
	return l
}

type promSample struct {
	Metric map[string]string
	Value  string
}

func (l *loop) query(expr string) ([]promSample, error) {
	var r struct {
		Status string `json:"status"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  []any             `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := getJSON(l.t.Context(), l.prometheus+"/api/v1/query?query="+url.QueryEscape(expr), "", &r); err != nil {
		return nil, err
	}
	var out []promSample
	for _, s := range r.Data.Result {
		v := ""
		if len(s.Value) == 2 {
			v, _ = s.Value[1].(string)
		}
		out = append(out, promSample{Metric: s.Metric, Value: v})
	}
	return out, nil
}

func (l *loop) waitQuery(what string, d time.Duration, ok func([]promSample) bool, expr string) {
	l.t.Helper()
	deadline := time.Now().Add(d)
	for {
		v, err := l.query(expr)
		if err == nil && ok(v) {
			return
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("prometheus: %s: not within %s: %v %+v", what, d, err, v)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

type promAlert struct {
	Labels map[string]string `json:"labels"`
	State  string            `json:"state"`
}

// alerts is Prometheus's pending and firing alerts.
func (l *loop) alerts() []promAlert {
	l.t.Helper()
	var r struct {
		Data struct {
			Alerts []promAlert `json:"alerts"`
		} `json:"data"`
	}
	if err := getJSON(l.t.Context(), l.prometheus+"/api/v1/alerts", "", &r); err != nil {
		l.t.Fatal(err)
	}
	return r.Data.Alerts
}

// rolloutBad rolls out the bad image as revision 2 and makes the new pods
// log errors (what the errorDistribution probe reads), as hack/demo does.
func (l *loop) rolloutBad() {
	l.t.Helper()
	ctx := l.t.Context()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		d, err := l.admin.AppsV1().Deployments(l.ns).Get(ctx, testbed.DemoDeployment, metav1.GetOptions{})
		if err != nil {
			return err
		}
		d.Spec.Template.Spec.Containers[0].Image = badImage
		if d.Annotations == nil {
			d.Annotations = map[string]string{}
		}
		d.Annotations["kubernetes.io/change-cause"] = "deploy v1.1.0"
		_, err = l.admin.AppsV1().Deployments(l.ns).Update(ctx, d, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		l.t.Fatal(err)
	}
	if err := testbed.WaitForRollout(ctx, l.admin, l.ns, testbed.DemoDeployment, time.Minute); err != nil {
		l.t.Fatal(err)
	}
	pods, err := testbed.ReadyPods(ctx, l.admin, l.ns, "app="+testbed.DemoDeployment)
	if err != nil {
		l.t.Fatal(err)
	}
	for _, p := range pods {
		l.env.SetPodLogs(l.ns, p.Name,
			testbed.LogRecord{Line: `{"level":"ERROR","msg":"payment gateway returned 502 for order 1001"}`},
			testbed.LogRecord{Line: `{"level":"ERROR","msg":"payment gateway returned 502 for order 1002"}`},
			testbed.LogRecord{Line: `{"level":"ERROR","msg":"nil pointer dereference in CheckoutHandler"}`},
			testbed.LogRecord{Line: `{"level":"info","msg":"served","path":"/api/orders","responseTimeMs":840}`},
		)
	}
}

func (l *loop) deployment() (revision, image string) {
	l.t.Helper()
	d, err := l.admin.AppsV1().Deployments(l.ns).Get(context.Background(), testbed.DemoDeployment, metav1.GetOptions{})
	if err != nil {
		l.t.Fatal(err)
	}
	return d.Annotations[revAnn], d.Spec.Template.Spec.Containers[0].Image
}

type event struct {
	Time    time.Time       `json:"time"`
	Type    string          `json:"type"`
	Actor   string          `json:"actor"`
	Reason  string          `json:"reason"`
	Details json.RawMessage `json:"details"`
}

type timeline []event

func (tl timeline) types() []string {
	out := make([]string, len(tl))
	for i, e := range tl {
		out[i] = e.Type
	}
	return out
}

func (tl timeline) first(typ string) (event, int) {
	for i, e := range tl {
		if e.Type == typ {
			return e, i
		}
	}
	return event{}, -1
}

func (tl timeline) String() string {
	var b strings.Builder
	for _, e := range tl {
		fmt.Fprintf(&b, "\n  %s %s[%s] %s", e.Time.Format("15:04:05.000"), e.Type, e.Actor, e.Reason)
	}
	return b.String()
}

type incidentView struct {
	ID        string            `json:"id"`
	AlertName string            `json:"alertname"`
	Namespace string            `json:"namespace"`
	Status    string            `json:"status"`
	Labels    map[string]string `json:"labels"`
	Timeline  timeline          `json:"-"`
}

// incidents lists remediator's incidents (GET /api/v1/incidents).
func (l *loop) incidents() []incidentView {
	l.t.Helper()
	var list struct {
		Incidents []incidentView `json:"incidents"`
	}
	if err := getJSON(l.t.Context(), l.remediator+"/api/v1/incidents?limit=100", token, &list); err != nil {
		l.t.Fatal(err)
	}
	return list.Incidents
}

// incident reads one incident with its timeline (GET /api/v1/incidents/{id}
// answers {"incident": {...}, "timeline": [...]}).
func (l *loop) incident(id string) incidentView {
	l.t.Helper()
	var one struct {
		Incident incidentView `json:"incident"`
		Timeline timeline     `json:"timeline"`
	}
	if err := getJSON(l.t.Context(), l.remediator+"/api/v1/incidents/"+id, token, &one); err != nil {
		l.t.Fatal(err)
	}
	one.Incident.Timeline = one.Timeline
	return one.Incident
}

// waitIncident waits for the only HighErrorRate incident to satisfy ok.
func (l *loop) waitIncident(what string, d time.Duration, ok func(incidentView) bool) incidentView {
	l.t.Helper()
	deadline := time.Now().Add(d)
	var last incidentView
	for {
		var ids []string
		for _, inc := range l.incidents() {
			if inc.AlertName == "HighErrorRate" {
				ids = append(ids, inc.ID)
			}
		}
		if len(ids) > 1 {
			l.t.Fatalf("%d HighErrorRate incidents, want one episode: %v", len(ids), ids)
		}
		if len(ids) == 1 {
			last = l.incident(ids[0])
			if ok(last) {
				return last
			}
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("incident: no %s within %s; prometheus alerts %+v; incident %s status %q timeline:%s",
				what, d, l.alerts(), last.ID, last.Status, last.Timeline)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func hasAll(tl timeline, types ...string) bool {
	for _, typ := range types {
		if _, i := tl.first(typ); i < 0 {
			return false
		}
	}
	return true
}

func (l *loop) demoAppBad() bool {
	l.t.Helper()
	var s struct {
		Bad bool `json:"bad"`
	}
	if err := getJSON(l.t.Context(), l.demoApp+"/state", "", &s); err != nil {
		l.t.Fatal(err)
	}
	return s.Bad
}

// TestRunbookRollbackLoop is the runbook's loop for a bad rollout:
// revision 2 (v1.1.0) makes 30% of the requests fail → Prometheus fires
// HighErrorRate → Alertmanager → remediator diagnoses (recent rollout,
// errors in the new pods' logs, dependencies reachable) and rolls back →
// the Deployment runs v1.0.0 again → the errors stop → Prometheus resolves
// the alert → Alertmanager sends the resolution → the incident is resolved
// and the change verified.
func TestRunbookRollbackLoop(t *testing.T) {
	t.Parallel()
	start := time.Now()
	l := newLoop(t, true)
	t.Logf("loop up in %s (namespace %s, metrics as pod %s)", time.Since(start).Round(100*time.Millisecond), l.ns, l.pod)

	t0 := time.Now()
	l.rolloutBad()
	if rev, img := l.deployment(); rev != "2" || img != badImage {
		t.Fatalf("after the bad rollout: revision %s image %s", rev, img)
	}
	t.Logf("bad rollout (revision 2, %s) complete in %s", badImage, time.Since(t0).Round(100*time.Millisecond))

	// Prometheus fires the shipped HighErrorRate rule, with the deployment
	// derived from the pod label.
	l.waitQuery("HighErrorRate firing for "+l.ns+"/platform-service", 45*time.Second, func(v []promSample) bool {
		return len(v) == 1 && v[0].Metric["deployment"] == testbed.DemoDeployment && v[0].Metric["severity"] == "critical"
	}, `ALERTS{alertname="HighErrorRate",alertstate="firing",namespace="`+l.ns+`"}`)
	t.Logf("HighErrorRate firing in Prometheus after %s", time.Since(t0).Round(100*time.Millisecond))

	inc := l.waitIncident("rollback applied", 45*time.Second, func(v incidentView) bool {
		return hasAll(v.Timeline, "intent", "applied")
	})
	t.Logf("incident %s: rollback applied after %s", inc.ID, time.Since(t0).Round(100*time.Millisecond))
	if inc.Labels["deployment"] != testbed.DemoDeployment || inc.Labels["namespace"] != l.ns || inc.Labels["severity"] != "critical" {
		t.Errorf("incident labels %v: want the rule's labels (deployment %s, namespace %s, severity critical)",
			inc.Labels, testbed.DemoDeployment, l.ns)
	}

	// The cluster: rolled back to revision 1's template (renumbered 3).
	if err := testbed.WaitForRollout(t.Context(), l.admin, l.ns, testbed.DemoDeployment, time.Minute); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		rev, img := l.deployment()
		if rev == "3" && img == goodImage {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the rollback: revision %s image %s, want revision 3 image %s", rev, img, goodImage)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if l.demoAppBad() {
		t.Fatalf("demo-app still misbehaving after the rollback")
	}

	// The errors stop, Prometheus resolves the alert, Alertmanager tells
	// remediator, the change is verified.
	inc = l.waitIncident("resolution and verification", 60*time.Second, func(v incidentView) bool {
		return v.Status == "resolved" && hasAll(v.Timeline, "verified")
	})
	t.Logf("incident %s resolved and verified after %s; timeline:%s", inc.ID, time.Since(t0).Round(100*time.Millisecond), inc.Timeline)

	// The timeline: intent → applied → rollout-complete → resolved → verified.
	prev := -1
	for _, typ := range []string{"intent", "applied", "rollout-complete", "resolved", "verified"} {
		_, i := inc.Timeline.first(typ)
		if i < 0 {
			t.Errorf("timeline has no %s event: %v", typ, inc.Timeline.types())
			continue
		}
		if i < prev {
			t.Errorf("timeline: %s out of order: %v", typ, inc.Timeline.types())
		}
		prev = i
	}
	for _, bad := range []string{"failed", "blocked", "ineffective", "duplicate-execution-prevented"} {
		if slices.Contains(inc.Timeline.types(), bad) {
			t.Errorf("timeline has %s: %s", bad, inc.Timeline)
		}
	}
	if diag, _ := inc.Timeline.first("diagnosed"); !strings.Contains(string(diag.Details), `"allReachable":true`) {
		t.Errorf("diagnosed: dependencies not reachable: %s", diag.Details)
	}
	if planned, _ := inc.Timeline.first("planned"); !strings.Contains(planned.Reason, "rollback-recent-rollout") {
		t.Errorf("planned: %q, want the rollback-recent-rollout remedy", planned.Reason)
	}
	applied, _ := inc.Timeline.first("applied")
	if !strings.Contains(string(applied.Details), "rollback") && !strings.Contains(applied.Reason, "rollback") {
		t.Errorf("applied event is not a rollback: %s %s", applied.Reason, applied.Details)
	}
	// Exactly one change: still revision 3, v1.0.0.
	if rev, img := l.deployment(); rev != "3" || img != goodImage {
		t.Errorf("at the end: revision %s image %s, want revision 3 image %s", rev, img, goodImage)
	}
	for _, a := range l.alerts() {
		if a.Labels["namespace"] == l.ns {
			t.Errorf("prometheus still has alert %+v", a)
		}
	}
	t.Logf("scenario done in %s (bad rollout → verified: %s)", time.Since(start).Round(100*time.Millisecond),
		time.Since(t0).Round(100*time.Millisecond))
}

// TestRunbookDependencyDown is the runbook's "fix the dependency first":
// the same bad rollout and HighErrorRate, but the dependencies
// (database, redis) are unreachable, so remediator changes nothing and
// escalates with the diagnosis as evidence.
func TestRunbookDependencyDown(t *testing.T) {
	t.Parallel()
	start := time.Now()
	l := newLoop(t, false)
	t.Logf("loop up in %s (namespace %s, metrics as pod %s)", time.Since(start).Round(100*time.Millisecond), l.ns, l.pod)

	t0 := time.Now()
	l.rolloutBad()
	l.waitQuery("HighErrorRate firing for "+l.ns+"/platform-service", 45*time.Second, func(v []promSample) bool {
		return len(v) == 1 && v[0].Metric["deployment"] == testbed.DemoDeployment
	}, `ALERTS{alertname="HighErrorRate",alertstate="firing",namespace="`+l.ns+`"}`)
	t.Logf("HighErrorRate firing in Prometheus after %s", time.Since(t0).Round(100*time.Millisecond))

	inc := l.waitIncident("escalation", 45*time.Second, func(v incidentView) bool {
		return hasAll(v.Timeline, "escalated")
	})
	t.Logf("incident %s escalated after %s; timeline:%s", inc.ID, time.Since(t0).Round(100*time.Millisecond), inc.Timeline)
	// Give a wrongly taken action time to show.
	time.Sleep(2 * time.Second)
	inc = l.incident(inc.ID)
	for _, bad := range []string{"intent", "applied", "proposed"} {
		if slices.Contains(inc.Timeline.types(), bad) {
			t.Errorf("timeline has %s with the dependencies down: %s", bad, inc.Timeline)
		}
	}
	if inc.Status != "firing" {
		t.Errorf("incident status %q, want firing (nothing was fixed)", inc.Status)
	}
	if rev, img := l.deployment(); rev != "2" || img != badImage {
		t.Errorf("the cluster changed: revision %s image %s, want revision 2 image %s", rev, img, badImage)
	}
	if !l.demoAppBad() {
		t.Errorf("demo-app no longer misbehaving, but nothing was rolled back")
	}
	// The decision and its evidence: the policy's dependency-down remedy,
	// priority P0 (the policy maps severity critical to P0), and the
	// dependencies probe's evidence naming the unreachable endpoint.
	planned, _ := inc.Timeline.first("planned")
	if !strings.Contains(planned.Reason, "dependency-down") || !strings.Contains(planned.Reason, "P0") {
		t.Errorf("planned: %q, want the dependency-down remedy at P0", planned.Reason)
	}
	esc, _ := inc.Timeline.first("escalated")
	var ed struct {
		Priority string `json:"priority"`
	}
	_ = json.Unmarshal(esc.Details, &ed)
	if ed.Priority != "P0" {
		t.Errorf("escalated with priority %q, want P0: %s", ed.Priority, esc.Details)
	}
	diag, _ := inc.Timeline.first("diagnosed")
	if d := string(diag.Details); !strings.Contains(d, `"allReachable":false`) || !strings.Contains(d, l.deps) {
		t.Errorf("diagnosed: no evidence of %s unreachable: %s", l.deps, d)
	}
	t.Logf("escalated: %s %s", esc.Reason, esc.Details)
	t.Logf("scenario done in %s (bad rollout → escalated: %s)", time.Since(start).Round(100*time.Millisecond),
		time.Since(t0).Round(100*time.Millisecond))
}
