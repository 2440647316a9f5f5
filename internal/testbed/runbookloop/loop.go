// Package runbookloop runs the runbook's whole loop on the test bed, every
// outside component real: the demo-app (cmd/demo-app) serves
// platform-service's metrics and misbehaves while the Deployment runs the
// bad image; the real Prometheus (the Debian binary) scrapes it and
// evaluates the shipped alert rules (deploy/monitoring/rules.yml, windows
// shortened); the real Alertmanager routes the alerts as the shipped route
// groups them to the real `remediator serve` binary (SQLite, bearer token,
// the shipped policies, Slack written to a log file), which acts on the
// bed's Kubernetes control plane (pods simulated by kwok).
//
// One Loop is one namespace with its own demo-app, Prometheus, Alertmanager
// and remediator. The end-to-end tests (internal/e2e/runbook) and `make
// demo` (hack/demo) both drive it: a test through *testing.T, a program
// through Run. Every method that can fail stops the caller with T.Fatalf;
// the Check functions return errors for the caller to report.
//
// A scenario chooses remediator's mode (enforce or dry-run), whether the
// runbook's dependencies are reachable, extra demo-app flags (its
// misbehaviour) and extra remediator configuration, then changes the
// Deployment (Rollout, RolloutBad, Annotate), approves proposals (Approve)
// and waits on Prometheus (WaitAlert, WaitResolved, WaitQuery), the
// incident (WaitIncident), the cluster (WaitDeployment, WaitRolledBack,
// HPA) and demo-app (WaitDemoApp, WaitDemoAppState), then checks the audit
// trail (CheckAudit) and the Slack stand-in (CheckSlack); PolicyDecision
// says what the policy files decide for the incident's evidence.
package runbookloop

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/remediator/remediator/internal/action"
	"github.com/remediator/remediator/internal/probe"
	"github.com/remediator/remediator/internal/testbed"
)

// The runbook's images, and the annotation that numbers a Deployment's
// revisions.
const (
	GoodImage          = "registry.example/platform-service:v1.0.0"
	BadImage           = "registry.example/platform-service:v1.1.0"
	RevisionAnnotation = "deployment.kubernetes.io/revision"
)

// remediator's modes.
const (
	ModeEnforce = "enforce"
	ModeDryRun  = "dry-run"
)

// Options configure one loop.
type Options struct {
	// Bed is the test bed (required).
	Bed *testbed.Bed
	// Binaries run the loop (required: Build, or a Builder).
	Binaries Binaries
	// Dir holds the loop's files: configurations, the SQLite store, the
	// Slack log and every process's log (required; a test's t.TempDir()).
	Dir string
	// Mode is remediator's mode: ModeEnforce or ModeDryRun (required).
	Mode string
	// NamespacePrefix names the loop's fresh namespace (default "runbook-").
	NamespacePrefix string
	// DependenciesDown points the policies' dependency endpoints
	// (database:5432, redis:6379) at a closed port instead of a listener.
	DependenciesDown bool
	// DemoAppArgs are extra demo-app flags: a scenario's misbehaviour.
	DemoAppArgs []string
	// EditPolicies, if set, edits each shipped policy file (base name,
	// content) after the dependency endpoints and query ranges were
	// replaced (CopyPolicies).
	EditPolicies func(file, content string) string
	// RemediatorConfig is YAML appended to remediator's configuration
	// (top-level keys the loop does not set itself).
	RemediatorConfig string
	// Window replaces the rules' [5m] ranges and every `for:`, and the
	// policies' PromQL [5m] ranges (default DefaultWindow).
	Window time.Duration
}

// DefaultWindow is the rules' range and `for:` in a loop: long enough for a
// scenario to set the new pods' logs (what errorDistribution reads) before
// the alert reaches remediator, short enough to wait for.
const DefaultWindow = 10 * time.Second

// Loop is one namespace's whole chain: demo-app → Prometheus →
// Alertmanager → remediator → the cluster.
type Loop struct {
	t    T
	bed  *testbed.Bed
	bins Binaries
	opts Options

	Namespace  string
	Pod        string // the pod label Prometheus puts on the scraped metrics
	Deps       string // where the policies' dependency endpoints point
	Mode       string
	Window     time.Duration
	Started    time.Time
	Remediator string // base URLs
	Prometheus string
	Alertmgr   string
	DemoApp    string
	// Policies is the directory remediator loads: the shipped policies
	// with the dependency endpoints and the query ranges replaced.
	Policies string
	// StoreDSN is remediator's SQLite store; SlackLog the file the Slack
	// stand-in writes.
	StoreDSN string
	SlackLog string

	admin      kubernetes.Interface
	token      string // webhook and /api/v1
	tokenFile  string
	auditToken string // /audit/*
}

// Start brings up the loop in a fresh namespace with the demo
// (deploy/demo, revision 1) and waits until Prometheus scrapes demo-app with
// a known, zero error ratio and no alert. Everything is stopped and removed
// at t's cleanup.
func Start(t T, o Options) *Loop {
	t.Helper()
	switch {
	case o.Bed == nil || o.Dir == "" || o.Binaries.Remediator == "" || o.Binaries.DemoApp == "" || o.Binaries.Prometheus == "":
		t.Fatalf("runbookloop: Bed, Dir and Binaries are required")
	case o.Mode != ModeEnforce && o.Mode != ModeDryRun:
		t.Fatalf("runbookloop: mode %q: want %s or %s", o.Mode, ModeEnforce, ModeDryRun)
	}
	if o.NamespacePrefix == "" {
		o.NamespacePrefix = "runbook-"
	}
	if o.Window <= 0 {
		o.Window = DefaultWindow
	}
	ctx := t.Context()
	t0 := time.Now()
	l := &Loop{t: t, bed: o.Bed, bins: o.Binaries, opts: o, Mode: o.Mode, Window: o.Window, Started: t0,
		token: randomToken(), auditToken: randomToken()}
	var err error
	if l.admin, err = o.Bed.AdminClient(); err != nil {
		t.Fatalf("runbookloop: %v", err)
	}

	// The namespace, the demo at revision 1, and exactly the RBAC the
	// probes and actions declare.
	if l.Namespace, err = o.Bed.CreateNamespace(ctx, o.NamespacePrefix); err != nil {
		t.Fatalf("runbookloop: %v", err)
	}
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := o.Bed.DeleteNamespace(cctx, l.Namespace); err != nil {
			t.Logf("runbookloop: deleting namespace %s: %v", l.Namespace, err)
		}
	})
	if err := testbed.ApplyDemo(ctx, o.Bed.AdminConfig(), l.Namespace); err != nil {
		t.Fatalf("runbookloop: %v", err)
	}
	var acts []action.Action
	for _, a := range action.New(nil) {
		acts = append(acts, a)
	}
	if err := o.Bed.GrantRemediator(ctx, l.Namespace, "remediator",
		append(probe.AllRules(), action.Rules(acts...)...)...); err != nil {
		t.Fatalf("runbookloop: %v", err)
	}
	// The metrics carry a real pod name of the Deployment
	// (platform-service-<hash>-<suffix>), as a PodMonitor would set it.
	pods, err := testbed.ReadyPods(ctx, l.admin, l.Namespace, "app="+testbed.DemoDeployment)
	if err != nil || len(pods) == 0 {
		t.Fatalf("runbookloop: demo pods: %v (%d)", err, len(pods))
	}
	l.Pod = pods[0].Name
	t.Logf("namespace %s with the demo (revision 1) ready in %s", l.Namespace, since(t0))

	l.Deps = l.dependencies(!o.DependenciesDown)
	l.Policies = filepath.Join(o.Dir, "policies")
	if err := CopyPolicies(l.Policies, l.Deps, o.Window, o.EditPolicies); err != nil {
		t.Fatalf("runbookloop: %v", err)
	}

	demoAddr := freeAddr(t)
	l.DemoApp = "http://" + demoAddr
	l.start("demo-app", l.DemoApp+"/metrics", o.Binaries.DemoApp, append([]string{"--listen", demoAddr,
		"--kubeconfig", o.Bed.State().AdminKubeconfig, "--namespace", l.Namespace,
		"--deployment", testbed.DemoDeployment, "--bad-image", "v1.1.0"}, o.DemoAppArgs...)...)

	promAddr, remAddr := freeAddr(t), freeAddr(t)
	l.Prometheus, l.Remediator = "http://"+promAddr, "http://"+remAddr
	l.tokenFile = l.file("webhook-token", l.token)
	cfgFile := l.remediatorConfig(remAddr)
	l.start("remediator", l.Remediator+"/readyz", o.Binaries.Remediator, "serve", "--config", cfgFile)

	// Alertmanager routes to remediator, grouped as the shipped route
	// (deploy/monitoring/alertmanager.yml) groups, with short timings.
	am, err := testbed.StartAlertmanager(ctx, testbed.AlertmanagerOptions{
		Dir: filepath.Join(o.Dir, "alertmanager"), WebhookURL: l.Remediator + "/webhook/alertmanager",
		BearerTokenFile: l.tokenFile, GroupBy: []string{"alertname", "namespace", "deployment"},
		GroupWait: time.Second, GroupInterval: 2 * time.Second, RepeatInterval: time.Hour, KillWithParent: true,
	})
	if err != nil {
		t.Fatalf("runbookloop: %v", err)
	}
	t.Cleanup(func() {
		if err := am.Stop(); err != nil {
			t.Logf("runbookloop: stopping alertmanager: %v", err)
		}
		if t.Failed() {
			t.Logf("--- alertmanager, last lines of %s ---\n%s", am.LogFile, tail(am.LogFile, 30))
		}
	})
	l.Alertmgr = am.URL
	amURL, err := url.Parse(am.URL)
	if err != nil {
		t.Fatalf("runbookloop: %v", err)
	}

	// Prometheus: scrapes demo-app every second as the pod, evaluates the
	// rules every second, alerts to Alertmanager.
	rules := filepath.Join(o.Dir, "rules.yml")
	if err := WriteRules(rules, o.Window); err != nil {
		t.Fatalf("runbookloop: %v", err)
	}
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
`, quote(rules), quote(amURL.Host), quote(demoAddr), quote(l.Namespace), quote(l.Pod))
	l.start("prometheus", l.Prometheus+"/-/ready", o.Binaries.Prometheus,
		"--config.file="+l.file("prometheus.yml", promCfg), "--storage.tsdb.path="+filepath.Join(o.Dir, "tsdb"),
		"--web.listen-address="+promAddr, "--web.external-url="+l.Prometheus, "--log.level=info")
	t.Logf("demo-app, remediator (%s), alertmanager, prometheus ready in %s", o.Mode, since(t0))

	// Healthy to begin with: the target is up, the error ratio is known
	// (not absent) and no alert fires.
	l.WaitQuery("the demo-app target scraped with a known, zero error ratio", 30*time.Second, func(v []Sample) bool {
		return len(v) == 1 && v[0].Value == "0"
	}, l.ErrorRatioExpr())
	if a := l.Alerts(); len(a) != 0 {
		t.Fatalf("runbookloop: alerts before anything happened: %+v", a)
	}
	t.Logf("loop up in %s (namespace %s, metrics as pod %s)", since(t0), l.Namespace, l.Pod)
	return l
}

// dependencies returns the address the policies' dependency endpoints
// point at: a listener that accepts (reachable), or a closed port.
func (l *Loop) dependencies(reachable bool) string {
	if !reachable {
		return freeAddr(l.t)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		l.t.Fatalf("runbookloop: %v", err)
	}
	l.t.Cleanup(func() { _ = ln.Close() })
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

// remediatorConfig writes remediator's configuration file: the mode, SQLite,
// bearer tokens for the API and the audit endpoints, only this namespace
// allowed, Slack to a log file, then Options.RemediatorConfig.
func (l *Loop) remediatorConfig(addr string) string {
	o := l.opts
	l.StoreDSN = "sqlite://" + filepath.Join(o.Dir, "remediator.db")
	l.SlackLog = filepath.Join(o.Dir, "slack.log")
	var b strings.Builder
	fmt.Fprintf(&b, "listen: %s\nstore: %s\npolicies: %s\nmode: %s\nkubeconfig: %s\nexternal_url: %s\n", quote(addr),
		quote(l.StoreDSN), quote(l.Policies), o.Mode, quote(o.Bed.State().RemediatorKubeconfig), quote(l.Remediator))
	fmt.Fprintf(&b, "auth:\n  bearer_token_file: %s\n", quote(l.tokenFile))
	fmt.Fprintf(&b, "audit:\n  bearer_token_file: %s\n", quote(l.file("audit-token", l.auditToken)))
	fmt.Fprintf(&b, "worker:\n  poll: 100ms\n")
	fmt.Fprintf(&b, "prometheus:\n  url: %s\n", quote(l.Prometheus))
	fmt.Fprintf(&b, "guards:\n  namespaces: [%s]\n", quote(l.Namespace))
	fmt.Fprintf(&b, "slack:\n  log_file: %s\n  default_channel: %s\n", quote(l.SlackLog), quote(SlackChannel))
	b.WriteString(o.RemediatorConfig)
	return l.file("remediator.yaml", b.String())
}

// SlackChannel is the Slack stand-in's channel.
const SlackChannel = "#incidents"

// file writes content to the loop's dir (private) and returns its path.
func (l *Loop) file(name, content string) string {
	p := filepath.Join(l.opts.Dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		l.t.Fatalf("runbookloop: %v", err)
	}
	return p
}

// start runs a process of the loop until t's cleanup and waits until ready
// answers 200. If t failed, the cleanup logs the last lines of its log.
func (l *Loop) start(name, ready, bin string, args ...string) {
	t := l.t
	t.Helper()
	bin, args, err := withoutConfigEnv(bin, args)
	if err != nil {
		t.Fatalf("runbookloop: %v", err)
	}
	p, err := testbed.StartProcess(name, bin, args, filepath.Join(l.opts.Dir, name+".log"))
	if err != nil {
		t.Fatalf("runbookloop: %v", err)
	}
	t.Cleanup(func() {
		if err := p.Stop(10 * time.Second); err != nil {
			t.Logf("runbookloop: %v", err)
		}
		if t.Failed() {
			t.Logf("--- %s (pid %d), last lines of %s ---\n%s", name, p.PID(), p.LogFile(), tail(p.LogFile(), 40))
		}
	})
	if err := waitHTTP(t.Context(), p, ready, 30*time.Second); err != nil {
		t.Fatalf("runbookloop: %v", p.Failure(err))
	}
}

// withoutConfigEnv runs bin under env(1) without this process's
// REMEDIATOR_* variables: remediator reads them as configuration, over its
// file (a REMEDIATOR_MODE=enforce left in the shell would turn the demo's
// dry-run into enforce) and refuses unknown ones. env execs bin, so the
// process, its pid and its death with this one stay as they are.
func withoutConfigEnv(bin string, args []string) (string, []string, error) {
	var unset []string
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "REMEDIATOR_") {
			unset = append(unset, "-u", k)
		}
	}
	if len(unset) == 0 {
		return bin, args, nil
	}
	env, err := exec.LookPath("env")
	if err != nil {
		return "", nil, err
	}
	return env, append(append(unset, "--", bin), args...), nil
}

// CopyPolicies copies the shipped policies (policies/*.yaml) into dst with
// the runbook's dependency endpoints (database:5432, redis:6379) replaced
// by deps and every PromQL range [5m] by [window] (as WriteRules does in
// the rules: on a Prometheus that has scraped for seconds, a rate over 5
// minutes, such as the cpuSaturation probe's, never reaches the load's),
// then edited by edit (if not nil).
func CopyPolicies(dst, deps string, window time.Duration, edit func(file, content string) string) error {
	root, err := testbed.RepoRoot()
	if err != nil {
		return err
	}
	files, err := filepath.Glob(filepath.Join(root, "policies", "*.yaml"))
	if err != nil || len(files) == 0 {
		return fmt.Errorf("shipped policies: %v (%d files)", err, len(files))
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	if window <= 0 {
		return fmt.Errorf("query window %s: want a positive duration", window)
	}
	r := strings.NewReplacer("database:5432", deps, "redis:6379", deps, "[5m]", "["+promDuration(window)+"]")
	ranges := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		ranges += strings.Count(string(b), "[5m]")
		content := r.Replace(string(b))
		if edit != nil {
			content = edit(filepath.Base(f), content)
		}
		if err := os.WriteFile(filepath.Join(dst, filepath.Base(f)), []byte(content), 0o644); err != nil {
			return err
		}
	}
	if ranges == 0 {
		return fmt.Errorf("policies/*.yaml changed: no [5m] range left for the loop's window substitution, which needs updating")
	}
	return nil
}

// WriteRules writes deploy/monitoring/rules.yml to dst with the windows a
// loop can wait for: every range [5m] becomes [window] and every `for:`
// window. Nothing else changes: the expressions (label_replace deriving
// deployment from pod, the ratios and thresholds), labels and annotations
// are the shipped ones.
func WriteRules(dst string, window time.Duration) error {
	root, err := testbed.RepoRoot()
	if err != nil {
		return err
	}
	b, err := os.ReadFile(filepath.Join(root, "deploy", "monitoring", "rules.yml"))
	if err != nil {
		return err
	}
	s := string(b)
	if !strings.Contains(s, "rate(http_request_errors_total[5m])") || !strings.Contains(s, "for: 5m") {
		return fmt.Errorf("deploy/monitoring/rules.yml changed: the loop's window substitution needs updating")
	}
	w := promDuration(window)
	s = strings.ReplaceAll(s, "[5m]", "["+w+"]")
	s = forLine.ReplaceAllString(s, "${1}for: "+w)
	return os.WriteFile(dst, []byte(s), 0o644)
}

var forLine = regexp.MustCompile(`(?m)^(\s+)for: \S+$`)

// promDuration is d in Prometheus's duration syntax (whole milliseconds).
func promDuration(d time.Duration) string {
	if d%time.Second == 0 {
		return fmt.Sprintf("%ds", d/time.Second)
	}
	return fmt.Sprintf("%dms", d/time.Millisecond)
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func randomToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func freeAddr(t T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("runbookloop: %v", err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func since(t time.Time) time.Duration { return time.Since(t).Round(100 * time.Millisecond) }
