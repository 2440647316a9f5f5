package main

// Helpers for the tests that drive the real `remediator serve` binary
// against the real test bed (kube-apiserver, controllers, kwok, PostgreSQL):
// crash_test.go, ha_test.go, control_test.go.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"

	"github.com/remediator/remediator/internal/action"
	"github.com/remediator/remediator/internal/probe"
	"github.com/remediator/remediator/internal/testbed"
)

// bed is the test process's bed: $REMEDIATOR_TESTBED when set, else one
// started lazily by the first test that asks for it.
var bed testbed.Shared

var (
	binOnce sync.Once
	binDir  string
	binPath string
	binErr  error
)

func TestMain(m *testing.M) {
	code := bed.Run(m)
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// serveBinary builds the real binary once for the whole test process.
func serveBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the binary against the test bed")
	}
	binOnce.Do(func() {
		if binDir, binErr = os.MkdirTemp("", "remediator-bin-"); binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "remediator")
		if out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput(); err != nil {
			binErr = fmt.Errorf("build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

const (
	bedToken   = "bed-token"
	demoV1     = "registry.example/platform-service:v1.0.0"
	demoV2     = "registry.example/platform-service:v1.1.0-bad"
	revisionAn = "deployment.kubernetes.io/revision"
)

// leaseRules let the remediator run leader election in a namespace.
var leaseRules = []rbacv1.PolicyRule{{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"},
	Verbs: []string{"get", "create", "update"}}}

// demoTarget is a fresh namespace running platform-service at revision 2
// (a new image rolled out seconds ago over revision 1), with the
// remediator's identity granted exactly what the actions and probes
// declare, plus extra.
type demoTarget struct {
	env        *testbed.Env
	ns         string
	admin      kubernetes.Interface
	kubeconfig string // the remediator identity's kubeconfig
}

func newDemoTarget(t *testing.T, extra ...rbacv1.PolicyRule) *demoTarget {
	t.Helper()
	env := bed.Get(t)
	ns := env.NewNamespace()
	env.ApplyDemo(ns)
	admin := env.AdminClient()
	ctx := t.Context()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		d, err := admin.AppsV1().Deployments(ns).Get(ctx, testbed.DemoDeployment, metav1.GetOptions{})
		if err != nil {
			return err
		}
		d.Spec.Template.Spec.Containers[0].Image = demoV2
		_, err = admin.AppsV1().Deployments(ns).Update(ctx, d, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := testbed.WaitForRollout(ctx, admin, ns, testbed.DemoDeployment, time.Minute); err != nil {
		t.Fatal(err)
	}
	var acts []action.Action
	for _, a := range action.New(nil) {
		acts = append(acts, a)
	}
	rules := append(probe.AllRules(), action.Rules(acts...)...)
	env.GrantRemediator(ns, append(rules, extra...)...)
	kc := env.Bed().State().RemediatorKubeconfig
	if _, err := os.Stat(kc); err != nil {
		t.Fatalf("remediator kubeconfig: %v", err)
	}
	return &demoTarget{env: env, ns: ns, admin: admin, kubeconfig: kc}
}

// deployState is what the tests count changes by.
type deployState struct {
	Revision string            // the Deployment's revision annotation
	Image    string            // its template's image
	RS       map[string]string // ReplicaSet name → revision
}

func (d deployState) String() string {
	var rs []string
	for n, r := range d.RS {
		rs = append(rs, n+"@"+r)
	}
	sort.Strings(rs)
	return fmt.Sprintf("revision %s image %s replicasets %v", d.Revision, d.Image, rs)
}

func (d *demoTarget) state(t *testing.T) deployState {
	t.Helper()
	ctx := context.Background()
	dep, err := d.admin.AppsV1().Deployments(d.ns).Get(ctx, testbed.DemoDeployment, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	l, err := d.admin.AppsV1().ReplicaSets(d.ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + testbed.DemoDeployment})
	if err != nil {
		t.Fatal(err)
	}
	s := deployState{Revision: dep.Annotations[revisionAn], Image: dep.Spec.Template.Spec.Containers[0].Image, RS: map[string]string{}}
	for _, rs := range l.Items {
		s.RS[rs.Name] = rs.Annotations[revisionAn]
	}
	return s
}

// requireRolledBackOnce: exactly one rollback happened: revision 2 → 3
// (revision 1's ReplicaSet re-numbered 3), the image back to v1.0.0, and
// still exactly the two ReplicaSets of the two rollouts.
// The deployment controller numbers the revision an instant after the
// template change, so this waits (briefly) for the numbering to settle.
func (d *demoTarget) requireRolledBackOnce(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s := d.state(t)
		revs := make([]string, 0, len(s.RS))
		for _, r := range s.RS {
			revs = append(revs, r)
		}
		sort.Strings(revs)
		if s.Revision == "3" && s.Image == demoV1 && len(s.RS) == 2 && strings.Join(revs, ",") == "2,3" {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("want exactly one rollback (revision 3, image %s, replicasets at revisions 2,3); cluster has %s", demoV1, s)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// requireUnchanged: still revision 2 with the v1.1.0 image.
func (d *demoTarget) requireUnchanged(t *testing.T) {
	t.Helper()
	s := d.state(t)
	if s.Revision != "2" || s.Image != demoV2 || len(s.RS) != 2 {
		t.Errorf("want no change (revision 2, image %s); cluster has %s", demoV2, s)
	}
}

// serveConfig is one replica's configuration file.
type serveConfig struct {
	Store      string
	Mode       string // default enforce
	Kubeconfig string
	Namespaces []string // guards.namespaces
	Lease      string   // worker.lease, default 3s
	// HA: with Identity set, leader election on a Lease in LeaseNamespace.
	Identity       string
	LeaseNamespace string
}

// policyDir is the test policies: HighErrorRate → rollback when the newest
// rollout is recent and there is an earlier revision (no log or dependency
// evidence needed on the bed).
func policyDir() string { return filepath.Join("testdata", "bed-policies") }

// replica is one `remediator serve` process (restartable on the same
// config, address and store).
type replica struct {
	t    *testing.T
	name string
	bin  string
	cfg  string
	base string
	p    *proc
}

func newReplica(t *testing.T, name string, c serveConfig) *replica {
	t.Helper()
	bin := serveBinary(t)
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(bedToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if c.Mode == "" {
		c.Mode = "enforce"
	}
	if c.Lease == "" {
		c.Lease = "3s"
	}
	pol, err := filepath.Abs(policyDir())
	if err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	var b strings.Builder
	fmt.Fprintf(&b, "listen: %s\nstore: %s\npolicies: %s\nmode: %s\nkubeconfig: %s\n", q(addr), q(c.Store), q(pol), q(c.Mode), q(c.Kubeconfig))
	fmt.Fprintf(&b, "auth:\n  bearer_token_file: %s\n", q(tokenFile))
	fmt.Fprintf(&b, "worker:\n  lease: %s\n  poll: 100ms\n", c.Lease)
	fmt.Fprintf(&b, "guards:\n  namespaces: [%s]\n", strings.Join(c.Namespaces, ", "))
	if c.Identity != "" {
		fmt.Fprintf(&b, "ha:\n  leader_election: true\n  lease_namespace: %s\n  lease_name: remediator-leader\n  identity: %s\n"+
			"  lease_duration: 4s\n  renew_deadline: 3s\n  retry_period: 1s\n", c.LeaseNamespace, c.Identity)
	}
	cfg := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfg, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return &replica{t: t, name: name, bin: bin, cfg: cfg, base: "http://" + addr}
}

// start runs the binary with extra environment variables (e.g. the crash
// hook) and waits until /readyz answers.
func (r *replica) start(env ...string) {
	r.t.Helper()
	out := &syncBuffer{}
	cmd := exec.Command(r.bin, "serve", "--config", r.cfg)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = append(os.Environ(), env...)
	if err := cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	p := &proc{cmd: cmd, out: out}
	r.p = p
	n := r.name
	r.t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if r.t.Failed() {
			r.t.Logf("--- output of %s (pid %d) ---\n%s", n, cmd.Process.Pid, tail(p.out.String(), 60))
		}
	})
	waitReady(r.t, r.base)
}

// kill9 kills the process with SIGKILL: no shutdown path runs.
func (r *replica) kill9() {
	r.t.Helper()
	if err := syscall.Kill(r.p.cmd.Process.Pid, syscall.SIGKILL); err != nil {
		r.t.Fatal(err)
	}
	_ = r.p.cmd.Wait()
}

// stop ends the process with SIGTERM and waits for it.
func (r *replica) stop() {
	r.t.Helper()
	if err := r.p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		r.t.Fatal(err)
	}
	if err := waitExit(r.p.cmd, 20*time.Second); err != nil {
		r.t.Fatalf("%s: exit after SIGTERM: %v", r.name, err)
	}
}

// waitLog waits until the process's output contains s.
func (r *replica) waitLog(s string, d time.Duration) {
	r.t.Helper()
	deadline := time.Now().Add(d)
	for !strings.Contains(r.p.out.String(), s) {
		if time.Now().After(deadline) {
			r.t.Fatalf("%s: no %q in the log within %s", r.name, s, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// do sends a request with the bearer token; body may be nil.
func (r *replica) do(method, path string, body any) (int, map[string]any) {
	r.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			r.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, r.base+path, rd)
	if err != nil {
		r.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+bedToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatalf("%s %s %s: %v", r.name, method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if len(bytes.TrimSpace(raw)) > 0 && json.Unmarshal(raw, &m) != nil {
		m = map[string]any{"raw": string(raw)}
	}
	return resp.StatusCode, m
}

// firingBody is an Alertmanager notification: HighErrorRate firing on the
// demo Deployment in ns.
func firingBody(ns, alertname string, startsAt time.Time) string {
	return fmt.Sprintf(`{"version":"4","status":"firing","receiver":"remediator","groupKey":"{}:{alertname=\"%[1]s\"}",`+
		`"alerts":[{"status":"firing","labels":{"alertname":"%[1]s","namespace":"%[2]s","deployment":"platform-service","severity":"warning"},`+
		`"annotations":{"summary":"Error rate above 5%%"},"startsAt":"%[3]s","endsAt":"0001-01-01T00:00:00Z"}]}`,
		alertname, ns, startsAt.UTC().Format(time.RFC3339Nano))
}

// fire posts a firing notification and requires 202.
func (r *replica) fire(body string) map[string]any {
	r.t.Helper()
	code, m := r.do(http.MethodPost, "/webhook/alertmanager", body)
	if code != http.StatusAccepted {
		r.t.Fatalf("%s: webhook answered %d %v", r.name, code, m)
	}
	return m
}

type event struct {
	Type    string          `json:"type"`
	Actor   string          `json:"actor"`
	Reason  string          `json:"reason"`
	Details json.RawMessage `json:"details"`
}

func (e event) String() string { return fmt.Sprintf("%s[%s] %s", e.Type, e.Actor, e.Reason) }

type timeline []event

func (tl timeline) count(typ string) int {
	n := 0
	for _, e := range tl {
		if e.Type == typ {
			n++
		}
	}
	return n
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
		b.WriteString("\n  " + e.String())
	}
	return b.String()
}

func (r *replica) incidents() []string {
	r.t.Helper()
	var l struct {
		Incidents []struct {
			ID string `json:"id"`
		} `json:"incidents"`
	}
	c := apiClient{base: r.base, token: bedToken, http: http.DefaultClient}
	if err := c.get(context.Background(), "/api/v1/incidents?limit=100", &l); err != nil {
		r.t.Fatalf("%s: incidents: %v", r.name, err)
	}
	ids := make([]string, 0, len(l.Incidents))
	for _, i := range l.Incidents {
		ids = append(ids, i.ID)
	}
	return ids
}

// onlyIncident waits for the store to hold exactly one incident and
// returns its ID.
func (r *replica) onlyIncident() string {
	r.t.Helper()
	ids := r.incidents()
	if len(ids) != 1 {
		r.t.Fatalf("%s: %d incidents, want 1: %v", r.name, len(ids), ids)
	}
	return ids[0]
}

func (r *replica) timeline(id string) timeline {
	r.t.Helper()
	var one struct {
		Timeline timeline `json:"timeline"`
	}
	c := apiClient{base: r.base, token: bedToken, http: http.DefaultClient}
	if err := c.get(context.Background(), "/api/v1/incidents/"+id, &one); err != nil {
		r.t.Fatalf("%s: incident %s: %v", r.name, id, err)
	}
	return one.Timeline
}

// waitTimeline polls the incident until ok says its timeline is complete.
func (r *replica) waitTimeline(id string, d time.Duration, what string, ok func(timeline) bool) timeline {
	r.t.Helper()
	deadline := time.Now().Add(d)
	for {
		tl := r.timeline(id)
		if ok(tl) {
			return tl
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("%s: incident %s: no %s within %s; timeline:%s", r.name, id, what, d, tl)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func has(typ string) func(timeline) bool {
	return func(tl timeline) bool { return tl.count(typ) > 0 }
}

// readyLeader reads /readyz's leader flag.
func (r *replica) readyLeader() (bool, bool) {
	resp, err := http.Get(r.base + "/readyz")
	if err != nil {
		return false, false
	}
	defer resp.Body.Close()
	var m struct {
		Leader bool `json:"leader"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&m) != nil {
		return false, false
	}
	return m.Leader, true
}

// leaderGauge reads remediator_leader from /metrics.
func (r *replica) leaderGauge() string {
	r.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, r.base+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+bedToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "remediator_leader "); ok {
			return strings.TrimSpace(v)
		}
	}
	return "(absent)"
}

// tail is the last n lines of a process's output, without the access log
// of the tests' polling GETs.
func tail(s string, n int) string {
	var lines []string
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		if !strings.Contains(l, `"msg":"request"`) || !strings.Contains(l, `"method":"GET"`) {
			lines = append(lines, l)
		}
	}
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("... (%d lines before)", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}
