package executor_test

// The executor's tests run on the real test bed (kube-apiserver, etcd,
// controller-manager, scheduler, kwok) through the remediator's own
// least-privilege identity, with a real SQLite store in a temp dir and the
// real worker draining the real job queue: notifications are stored with
// Ingest exactly as intake stores them, and the tests wait for the
// incident's timeline and read the cluster.

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/remediator/remediator/internal/action"
	"github.com/remediator/remediator/internal/executor"
	"github.com/remediator/remediator/internal/guard"
	"github.com/remediator/remediator/internal/incident"
	"github.com/remediator/remediator/internal/intake"
	"github.com/remediator/remediator/internal/pipeline"
	"github.com/remediator/remediator/internal/planner"
	"github.com/remediator/remediator/internal/policy"
	"github.com/remediator/remediator/internal/probe"
	"github.com/remediator/remediator/internal/store"
	"github.com/remediator/remediator/internal/store/sqlite"
	"github.com/remediator/remediator/internal/testbed"
	"github.com/remediator/remediator/internal/worker"
)

func TestMain(m *testing.M) { testbed.Main(m) }

const deployment = testbed.DemoDeployment

// waitLimit bounds every wait for the timeline or the cluster.
const waitLimit = 90 * time.Second

// demo is a fresh namespace running platform-service (a Deployment of 3
// with an HPA), the remediator granted exactly what the probes and actions
// declare they need, or rules when given.
func demo(t *testing.T, rules ...rbacv1.PolicyRule) (*testbed.Env, string) {
	t.Helper()
	env := testbed.Get(t)
	ns := env.NewNamespace()
	env.ApplyDemo(ns)
	if rules == nil {
		rules = allRules(env.RemediatorClient())
	}
	env.GrantRemediator(ns, rules...)
	return env, ns
}

func allRules(kube kubernetes.Interface) []rbacv1.PolicyRule {
	var acts []action.Action
	for _, a := range action.New(kube) {
		acts = append(acts, a)
	}
	return append(probe.AllRules(), action.Rules(acts...)...)
}

// upAddr is a loopback listener that accepts connections: the policies'
// dependencies probe checks it instead of the runbook's database:5432.
func upAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return ln.Addr().String()
}

// deadAddr is a loopback address where nothing listens.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// loadPolicies loads testdata policies with their placeholders replaced:
// $DEPENDENCY (a loopback listener), $RESOLVE_WITHIN (3s),
// $ROLLOUT_DEADLINE (60s), $APPROVAL_EXPIRY (1h), unless vars say
// otherwise.
func loadPolicies(t *testing.T, vars map[string]string, files ...string) *policy.Set {
	t.Helper()
	v := map[string]string{"$RESOLVE_WITHIN": "3s", "$ROLLOUT_DEADLINE": "60s", "$APPROVAL_EXPIRY": "1h"}
	for k, x := range vars {
		v[k] = x
	}
	if _, ok := v["$DEPENDENCY"]; !ok {
		v["$DEPENDENCY"] = upAddr(t)
	}
	var pairs []string
	for k, x := range v {
		pairs = append(pairs, k, x)
	}
	repl := strings.NewReplacer(pairs...)
	dir := t.TempDir()
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join("testdata", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), []byte(repl.Replace(string(b))), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	set, err := policy.Load(dir, policy.DefaultCatalog())
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// fixed is a probe that returns fixed evidence. The tests use it only for
// what the bed cannot produce: it serves no metrics.k8s.io, so the
// resources probe never has usage there.
type fixed struct {
	name string
	ev   probe.Evidence
}

func (f fixed) Name() string { return f.name }
func (f fixed) Run(context.Context, probe.Target, probe.Params) (probe.Evidence, error) {
	return f.ev, nil
}

// saturated is the resources evidence of pods near their CPU limit, which
// the bed cannot produce (no metrics.k8s.io).
var saturated = probe.ResourcesEvidence{Available: true, CPUNearLimitPercent: 80, MemoryNearLimitPercent: 40,
	Containers: []probe.ContainerResources{}, Pods: []probe.PodUsage{}}

// setup configures a rig.
type setup struct {
	mode  string   // "enforce" (default) or "dry-run"
	files []string // testdata policies
	vars  map[string]string
	// fixed replaces these probes with fixed evidence (see fixed).
	fixed map[string]probe.Evidence
	// namespaces is the guards' allow-list; nil: the test namespace.
	namespaces []string
	// actions are the executor's actions; nil: the planner's.
	actions      map[string]action.Action
	applyTimeout time.Duration
	// store is shared with another rig (an HA peer); nil: a new SQLite
	// store in a temp dir.
	store store.Store
	owner string
	// afterApply is the executor's crash-test hook (Config.AfterApply).
	afterApply func(executionID string)
}

// rig is one remediator (planner, executor, worker) on one store, for one
// test namespace.
type rig struct {
	t     *testing.T
	env   *testbed.Env
	ns    string
	admin kubernetes.Interface
	st    store.Store
	exec  *executor.Executor
	reg   *prometheus.Registry
	set   *policy.Set

	mu      sync.Mutex
	workers []*worker.Worker
}

func openStore(t *testing.T) store.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "remediator.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("closing store: %v", err)
		}
	})
	return st
}

// newRig builds a remediator for namespace ns. No worker runs until start.
func newRig(t *testing.T, env *testbed.Env, ns string, s setup) *rig {
	t.Helper()
	if s.mode == "" {
		s.mode = "enforce"
	}
	if s.namespaces == nil {
		s.namespaces = []string{ns}
	}
	if s.owner == "" {
		s.owner = "replica-a"
	}
	st := s.store
	if st == nil {
		st = openStore(t)
	}
	kube := env.RemediatorClient()
	set := loadPolicies(t, s.vars, s.files...)
	probes := probe.New(probe.Config{Kube: kube})
	for name, ev := range s.fixed {
		probes[name] = fixed{name, ev}
	}
	acts := newActions(env, kube)
	pl := &planner.Planner{Policies: func() *policy.Set { return set }, Probes: probes, Kube: kube, Actions: acts}
	execActs := s.actions
	if execActs == nil {
		execActs = acts
	}
	reg := prometheus.NewRegistry()
	ex := &executor.Executor{
		Config: executor.Config{
			Mode:         s.mode,
			Guards:       guard.Settings{Namespaces: s.namespaces},
			Owner:        s.owner,
			ApplyTimeout: s.applyTimeout,
			VerifyPoll:   200 * time.Millisecond,
			AfterApply:   s.afterApply,
		},
		Store:    st,
		Planner:  pl,
		Actions:  execActs,
		Targets:  executor.KubeTargets{Kube: kube},
		Policies: func() *policy.Set { return set },
		Metrics:  executor.NewMetrics(reg, guard.Names()),
		Log:      zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)).Named(s.owner),
	}
	return &rig{t: t, env: env, ns: ns, admin: env.AdminClient(), st: st, exec: ex, reg: reg, set: set}
}

// newActions are the actions as the service builds them (cmd/remediator).
func newActions(env *testbed.Env, kube kubernetes.Interface) map[string]action.Action {
	return action.NewWithConfig(kube, env.RemediatorConfig())
}

// start runs a worker (named name) with the rig's pipeline until the test
// ends or stop is called.
func (r *rig) start(name string) (stop func()) {
	r.t.Helper()
	w := worker.New(worker.Options{
		Name:        name,
		Queue:       r.st,
		Pipeline:    pipeline.Seq{pipeline.Load(r.st), r.exec.Stages()},
		Mode:        r.exec.Config.Mode,
		Concurrency: 4,
		Lease:       time.Minute,
		Poll:        50 * time.Millisecond,
		Log:         zaptest.NewLogger(r.t, zaptest.Level(zap.WarnLevel)).Named(name),
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = w.Run(ctx)
	}()
	r.mu.Lock()
	r.workers = append(r.workers, w)
	r.mu.Unlock()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			<-done
			r.mu.Lock()
			r.workers = slices.DeleteFunc(r.workers, func(x *worker.Worker) bool { return x == w })
			r.mu.Unlock()
		})
	}
	r.t.Cleanup(stop)
	return stop
}

func (r *rig) kick() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, w := range r.workers {
		w.Kick()
	}
}

// alert is one alert of the test namespace's Deployment.
type alert struct {
	Labels   map[string]string
	StartsAt time.Time
}

func (r *rig) alert(name string) alert {
	return alert{
		Labels: map[string]string{"alertname": name, "namespace": r.ns, "deployment": deployment, "severity": "critical"},
		// Whole seconds: every re-send carries the same startsAt.
		StartsAt: time.Now().Add(-time.Minute).UTC().Truncate(time.Second),
	}
}

// body is the webhook body Alertmanager would send for a (version 4).
func (a alert) body(status string) []byte {
	endsAt := "0001-01-01T00:00:00Z"
	if status == incident.StatusResolved {
		endsAt = time.Now().UTC().Format(time.RFC3339Nano)
	}
	b, err := json.Marshal(map[string]any{
		"version": "4", "receiver": "remediator", "status": status,
		"groupKey": fmt.Sprintf("{}:{alertname=%q}", a.Labels["alertname"]),
		"alerts": []map[string]any{{
			"status": status, "labels": a.Labels, "annotations": map[string]string{"summary": "test"},
			"startsAt": a.StartsAt.Format(time.RFC3339Nano), "endsAt": endsAt,
		}},
	})
	if err != nil {
		panic(err)
	}
	return b
}

// ingest stores a notification as intake does (decode, then Ingest) and
// wakes the workers. It returns the incident and what intake made of it.
func ingest(ctx context.Context, st store.Store, a alert, status string) (string, string, error) {
	n, err := intake.Decode(a.body(status))
	if err != nil {
		return "", "", err
	}
	n.ID = incident.NewID()
	n.ReceivedAt = time.Now().UTC()
	n.CorrelationID = "test-" + n.ID[:8]
	res, err := st.Ingest(ctx, n)
	if err != nil {
		return "", "", err
	}
	if len(res.Alerts) != 1 {
		return "", "", fmt.Errorf("ingest: %d alert outcomes", len(res.Alerts))
	}
	return res.Alerts[0].IncidentID, res.Alerts[0].Outcome, nil
}

func (r *rig) send(a alert, status string) string {
	r.t.Helper()
	id, _, err := ingest(context.Background(), r.st, a, status)
	if err != nil {
		r.t.Fatal(err)
	}
	r.kick()
	return id
}

func (r *rig) fire(a alert) string { return r.send(a, incident.StatusFiring) }

func (r *rig) resolve(a alert) string { return r.send(a, incident.StatusResolved) }

// timeline is the incident's events.
func (r *rig) timeline(id string) []incident.Event {
	r.t.Helper()
	_, evs, err := r.st.Incident(context.Background(), id)
	if err != nil {
		r.t.Fatal(err)
	}
	return evs
}

func typesOf(evs []incident.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.Type
	}
	return out
}

func dump(evs []incident.Event) string {
	var sb strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&sb, "\n  %s %-30s %-10s %s", e.Time.Format("15:04:05.000"), e.Type, e.Actor, e.Reason)
	}
	return sb.String()
}

// waitFor waits until the timeline has an event of type typ and returns
// the timeline then.
func (r *rig) waitFor(id, typ string) []incident.Event {
	r.t.Helper()
	return r.waitUntil(id, "an event "+typ, func(evs []incident.Event) bool { return slices.Contains(typesOf(evs), typ) })
}

func (r *rig) waitUntil(id, what string, ok func([]incident.Event) bool) []incident.Event {
	r.t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		evs := r.timeline(id)
		if ok(evs) {
			return evs
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("incident %s: no %s within %s; timeline:%s", id, what, waitLimit, dump(evs))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// quiet waits until the timeline has not changed for d and returns it.
func (r *rig) quiet(id string, d time.Duration) []incident.Event {
	r.t.Helper()
	last, since := -1, time.Now()
	deadline := time.Now().Add(waitLimit)
	for {
		evs := r.timeline(id)
		if len(evs) != last {
			last, since = len(evs), time.Now()
		} else if time.Since(since) >= d {
			return evs
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("incident %s: timeline never quiet for %s:%s", id, d, dump(evs))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// wantTypes fails unless the timeline's event types are exactly want.
func wantTypes(t *testing.T, evs []incident.Event, want ...string) {
	t.Helper()
	if got := typesOf(evs); !slices.Equal(got, want) {
		t.Fatalf("timeline types\n got %v\nwant %v\ntimeline:%s", got, want, dump(evs))
	}
}

// events returns the timeline's events of type typ.
func events(evs []incident.Event, typ string) []incident.Event {
	var out []incident.Event
	for _, e := range evs {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

// one returns the only event of type typ.
func one(t *testing.T, evs []incident.Event, typ string) incident.Event {
	t.Helper()
	got := events(evs, typ)
	if len(got) != 1 {
		t.Fatalf("%d %s events, want 1; timeline:%s", len(got), typ, dump(evs))
	}
	return got[0]
}

// detail decodes the field key of an event's details.
func detail[T any](t *testing.T, e incident.Event, key string) T {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(e.Details, &m); err != nil {
		t.Fatalf("%s event details: %v", e.Type, err)
	}
	var v T
	raw, ok := m[key]
	if !ok {
		t.Fatalf("%s event has no %q in its details: %s", e.Type, key, e.Details)
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("%s event details %q: %v", e.Type, key, err)
	}
	return v
}

// comparable is a change as JSON without what is planned from the clock
// (restart's restartedAt timestamp, also in its summary).
func comparable(t *testing.T, c action.Change) string {
	t.Helper()
	if c.Restart != nil {
		r := *c.Restart
		r.To = "(timestamp)"
		c.Restart = &r
		c.Summary = "(restart)"
	}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func (r *rig) deployment() *appsv1.Deployment {
	r.t.Helper()
	d, err := r.admin.AppsV1().Deployments(r.ns).Get(context.Background(), deployment, metav1.GetOptions{})
	if err != nil {
		r.t.Fatal(err)
	}
	return d
}

func (r *rig) hpa() *autoscalingv2.HorizontalPodAutoscaler {
	r.t.Helper()
	h, err := r.admin.AutoscalingV2().HorizontalPodAutoscalers(r.ns).Get(context.Background(), deployment, metav1.GetOptions{})
	if err != nil {
		r.t.Fatal(err)
	}
	return h
}

// versions are the resourceVersions of the Deployment and its HPA.
type versions struct{ Deployment, HPA string }

func (r *rig) versions() versions {
	r.t.Helper()
	return versions{r.deployment().ResourceVersion, r.hpa().ResourceVersion}
}

// settle waits until the Deployment's rollout is complete, the HPA
// controller has synced the HPA, and neither object changed for 2s, and
// returns their resourceVersions.
func settle(t *testing.T, r *rig) versions {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	var last versions
	since := time.Now()
	for {
		d, h := r.deployment(), r.hpa()
		done, _, _ := testbed.RolloutStatus(d)
		v := versions{d.ResourceVersion, h.ResourceVersion}
		switch {
		case !done || len(h.Status.Conditions) == 0 || v != last:
			last, since = v, time.Now()
		case time.Since(since) >= 2*time.Second:
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("deployment and HPA of %s never settled", r.ns)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// executions lists the incident's executions.
func (r *rig) executions(id string) []store.Execution {
	r.t.Helper()
	xs, err := r.st.Executions(context.Background(), store.ExecutionFilter{IncidentID: id})
	if err != nil {
		r.t.Fatal(err)
	}
	return xs
}

// newRollout changes the demo Deployment's image (a new revision) and waits
// for the rollout.
func newRollout(t *testing.T, r *rig, image string) {
	t.Helper()
	ctx := context.Background()
	d := r.deployment()
	d.Spec.Template.Spec.Containers[0].Image = image
	if _, err := r.admin.AppsV1().Deployments(r.ns).Update(ctx, d, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := testbed.WaitForRollout(ctx, r.admin, r.ns, deployment, time.Minute); err != nil {
		t.Fatal(err)
	}
}

// errorLogs makes every ready pod's log show server errors (the
// errorDistribution probe reads them through the pods/log API).
func errorLogs(t *testing.T, r *rig) {
	t.Helper()
	pods, err := testbed.ReadyPods(context.Background(), r.admin, r.ns, "app="+deployment)
	if err != nil || len(pods) == 0 {
		t.Fatalf("ready pods: %v (%d)", err, len(pods))
	}
	for _, p := range pods {
		r.env.SetPodLogs(r.ns, p.Name,
			testbed.LogRecord{Line: `{"level":"ERROR","msg":"upstream returned 502 for order 1234"}`},
			testbed.LogRecord{Line: `{"level":"ERROR","msg":"upstream returned 502 for order 99"}`},
			testbed.LogRecord{Line: `{"level":"info","msg":"ok","path":"/orders","responseTimeMs":12}`})
	}
}

// badRollout makes revision 2 of the demo Deployment (a new image) whose
// pods log errors: what HighErrorRate's rollback rung is for.
func badRollout(t *testing.T, r *rig) {
	t.Helper()
	newRollout(t, r, "registry.example/platform-service:v1.1.0-bad")
	errorLogs(t, r)
}
