package escalation_test

// The escalation tests run the real executor, worker and SQLite store on a
// fake clock (every component takes a Now func: the store, the worker, the
// executor, the escalator, the delivery loop), with a fake restart action
// and fake targets instead of a cluster: they are about what happens
// around a remediation (priorities, deadlines, outcomes, notifications),
// not about the change itself, which internal/executor tests on the bed.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/remediator/remediator/internal/action"
	"github.com/remediator/remediator/internal/escalation"
	"github.com/remediator/remediator/internal/executor"
	"github.com/remediator/remediator/internal/guard"
	"github.com/remediator/remediator/internal/incident"
	"github.com/remediator/remediator/internal/pipeline"
	"github.com/remediator/remediator/internal/planner"
	"github.com/remediator/remediator/internal/policy"
	"github.com/remediator/remediator/internal/probe"
	"github.com/remediator/remediator/internal/store"
	"github.com/remediator/remediator/internal/store/sqlite"
	"github.com/remediator/remediator/internal/store/storetest"
	"github.com/remediator/remediator/internal/worker"
)

const ns = "shop"

// The test policy: one rung (restart) for alerts Broken; the priority is
// the alert's "priority" label (default P1); the proposal of a dry-run
// lives 3 hours (longer than the deadlines under test).
const testPolicy = `apiVersion: remediator/v1
kind: Policy
name: broken
match:
  - alertname="Broken"
target:
  kind: Deployment
  namespaceLabel: namespace
  nameLabel: deployment
remedies:
  - name: restart
    when: "true"
    action: restart
priority:
  default: P1
  rules:
    - when: "'priority' in labels && labels.priority == 'P0'"
      priority: P0
    - when: "'priority' in labels && labels.priority == 'P2'"
      priority: P2
    - when: "'priority' in labels && labels.priority == 'P3'"
      priority: P3
guards:
  cooldown: 1m
  approvalExpiry: 3h
verify:
  rolloutDeadline: 1m
  resolveWithin: 5m
`

// fakeRestart is the restart action without a cluster: Apply succeeds or
// fails as told, and counts its calls.
type fakeRestart struct {
	fail    atomic.Bool
	applied atomic.Int32
}

func (*fakeRestart) Name() string              { return "restart" }
func (*fakeRestart) Needs() []probe.Permission { return nil }
func (*fakeRestart) Plan(_ context.Context, t probe.Target, _ action.Params) (action.Change, error) {
	return action.Change{Action: "restart", Target: t, Summary: "restart deployment " + t.Namespace + "/" + t.Name,
		Restart: &action.RestartChange{Annotation: "kubectl.kubernetes.io/restartedAt", To: "2026-01-01T00:00:00Z"}}, nil
}
func (*fakeRestart) Check(context.Context, probe.Target, action.Change) []action.Block { return nil }
func (f *fakeRestart) Apply(context.Context, action.Change) (action.Applied, error) {
	if f.fail.Load() {
		return action.Applied{Attempts: 1}, errors.New("the API server said no")
	}
	f.applied.Add(1)
	return action.Applied{Detail: "restarted", Attempts: 1}, nil
}
func (f *fakeRestart) Observe(context.Context, action.Change) (action.Observation, error) {
	return action.Observation{Applied: f.applied.Load() > 0, Detail: "observed"}, nil
}
func (*fakeRestart) Verify(context.Context, action.Change) (action.Verification, error) {
	return action.Verification{OK: true, Detail: "rolled out"}, nil
}

type fakeTargets struct{}

func (fakeTargets) Read(context.Context, probe.Target) (executor.TargetInfo, error) {
	return executor.TargetInfo{Replicas: 3, ReadyReplicas: 3, MaxUnavailable: 1}, nil
}

// env is one remediator (store, executor with escalation, worker,
// delivery loop) on a fake clock.
type env struct {
	t       *testing.T
	clock   *storetest.Clock // nil: real time
	now     func() time.Time
	dbPath  string
	mode    string
	targets escalation.Targets
	act     *fakeRestart
	allowed []string // guard namespaces; nil: ns

	st        store.Store
	queue     *queue
	exec      *executor.Executor
	worker    *worker.Worker
	deliverer *escalation.Deliverer
	metrics   *escalation.Metrics
	reg       *prometheus.Registry
}

type envOption func(*env)

func enforce(e *env)                             { e.mode = "enforce" }
func realTime(e *env)                            { e.clock = nil }
func withTargets(t escalation.Targets) envOption { return func(e *env) { e.targets = t } }
func allowedNamespaces(n ...string) envOption    { return func(e *env) { e.allowed = n } }

func newEnv(t *testing.T, start time.Time, opts ...envOption) *env {
	t.Helper()
	e := &env{t: t, clock: storetest.NewClock(start), dbPath: filepath.Join(t.TempDir(), "r.db"), mode: "dry-run",
		act: &fakeRestart{}}
	for _, o := range opts {
		o(e)
	}
	e.now = time.Now
	if e.clock != nil {
		e.now = e.clock.Now
	}
	if e.allowed == nil {
		e.allowed = []string{ns}
	}
	e.open()
	return e
}

// open opens the store and builds the components, as a (re)started
// process does.
func (e *env) open() {
	t := e.t
	t.Helper()
	st, err := sqlite.Open(context.Background(), e.dbPath, store.WithClock(e.now))
	if err != nil {
		t.Fatal(err)
	}
	e.st = st
	t.Cleanup(func() { _ = st.Close() })
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "broken.yaml"), []byte(testPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	set, err := policy.Load(dir, policy.DefaultCatalog())
	if err != nil {
		t.Fatal(err)
	}
	acts := map[string]action.Action{"restart": e.act}
	pl := &planner.Planner{Policies: func() *policy.Set { return set }, Probes: map[string]probe.Probe{}, Actions: acts, Now: e.now}
	e.reg = prometheus.NewRegistry()
	e.metrics = escalation.NewMetrics(e.reg)
	e.reg.MustRegister(&escalation.StateCollector{Store: st})
	log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	sender := escalation.NewWebhookSender(e.targets, "test")
	sender.Now = e.now
	e.deliverer = &escalation.Deliverer{Store: st, Owner: "outbox-" + incident.NewID()[:8], Now: e.now,
		Senders: map[string]escalation.Sender{escalation.ChannelWebhook: sender},
		Metrics: e.metrics, Log: log.Named("outbox")}
	e.exec = &executor.Executor{
		Config:   executor.Config{Mode: e.mode, Guards: guard.Settings{Namespaces: e.allowed}, Owner: "test", VerifyPoll: time.Second},
		Store:    st,
		Planner:  pl,
		Actions:  acts,
		Targets:  fakeTargets{},
		Policies: func() *policy.Set { return set },
		Metrics:  executor.NewMetrics(nil, guard.Names()),
		Log:      log.Named("executor"),
		Now:      e.now,
		Escalation: &escalation.Escalator{Store: st, Targets: e.targets, ExternalURL: "https://remediator.example",
			Metrics: e.metrics, Log: log.Named("escalation"), Now: e.now, Kick: e.deliverer.Kick},
	}
	e.queue = &queue{Queue: st}
	e.worker = worker.New(worker.Options{Name: "worker-" + incident.NewID()[:8], Queue: e.queue,
		Pipeline: pipeline.Seq{pipeline.Load(st), e.exec.Stages()}, Mode: e.mode, Concurrency: 4,
		Lease: time.Minute, Poll: 10 * time.Millisecond, Log: log.Named("worker"), Now: e.now})
}

// restart closes the store and opens everything anew on the same file.
func (e *env) restart() {
	e.t.Helper()
	if err := e.st.Close(); err != nil {
		e.t.Fatal(err)
	}
	e.open()
}

// drain runs the jobs due now until none is left.
func (e *env) drain() {
	e.t.Helper()
	for range 100 {
		n, err := e.worker.RunOnce(context.Background())
		if err != nil {
			e.t.Fatal(err)
		}
		if n == 0 {
			return
		}
	}
	e.t.Fatal("jobs keep coming")
}

// at advances the clock to start+d and runs what is due.
func (e *env) advance(d time.Duration) {
	e.t.Helper()
	e.clock.Advance(d)
	e.drain()
}

func (e *env) alert(prio string) incident.Alert { return e.alertOn(prio, "web") }

func (e *env) alertOn(prio, deployment string) incident.Alert {
	labels := map[string]string{"alertname": "Broken", "namespace": ns, "deployment": deployment, "priority": prio}
	return incident.Alert{Status: incident.StatusFiring, Fingerprint: fmt.Sprintf("%016x", time.Now().UnixNano()),
		StartsAt: e.now().Add(-time.Minute).Truncate(time.Second), Labels: labels,
		Annotations: map[string]string{"summary": "web is broken"}, GeneratorURL: "http://prometheus/graph?g0.expr=broken"}
}

func (e *env) send(a incident.Alert) string {
	e.t.Helper()
	n := &incident.Notification{ID: incident.NewID(), ReceivedAt: e.now(), CorrelationID: "c-" + incident.NewID()[:8],
		Status: a.Status, Alerts: []incident.Alert{a}, Body: []byte(`{}`)}
	res, err := e.st.Ingest(context.Background(), n)
	if err != nil {
		e.t.Fatal(err)
	}
	return res.Alerts[0].IncidentID
}

func (e *env) fire(prio string) (string, incident.Alert) {
	a := e.alert(prio)
	return e.send(a), a
}

func (e *env) resolve(a incident.Alert) {
	a.Status = incident.StatusResolved
	a.EndsAt = e.now()
	e.send(a)
}

func (e *env) timeline(id string) []incident.Event {
	e.t.Helper()
	_, evs, err := e.st.Incident(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return evs
}

func (e *env) state(id string) store.EscalationState {
	e.t.Helper()
	st, err := e.st.EscalationState(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return st
}

func (e *env) outbox(id string) []store.OutboxMessage {
	e.t.Helper()
	msgs, err := e.st.Outbox(context.Background(), store.OutboxFilter{IncidentID: id})
	if err != nil {
		e.t.Fatal(err)
	}
	return msgs
}

func (e *env) escalations(priority, reason string) float64 {
	e.t.Helper()
	return gauge(e.t, e.reg, "remediator_escalations_total", map[string]string{"priority": priority, "reason": reason})
}

// gauge reads one sample (counter or gauge) from reg as Prometheus would
// scrape it; 0 when absent.
func gauge(t *testing.T, reg prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, p := range m.GetLabel() {
				got[p.GetName()] = p.GetValue()
			}
			for k, v := range labels {
				if got[k] != v {
					continue metrics
				}
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

func typesOf(evs []incident.Event) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.Type
	}
	return out
}

func ofType(evs []incident.Event, typ string) []incident.Event {
	var out []incident.Event
	for _, ev := range evs {
		if ev.Type == typ {
			out = append(out, ev)
		}
	}
	return out
}

func dump(evs []incident.Event) string {
	var sb strings.Builder
	for _, ev := range evs {
		fmt.Fprintf(&sb, "\n  %s %-16s %s", ev.Time.Format("15:04:05.000"), ev.Type, ev.Reason)
	}
	return sb.String()
}

func detail(t *testing.T, ev incident.Event, key string) any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(ev.Details, &m); err != nil {
		t.Fatalf("%s details: %v", ev.Type, err)
	}
	return m[key]
}

// queue is the store's job queue as the worker sees it, with a hook to
// make one completion fail (the process "dies" after its stage ran, before
// the job is marked done) and the time each job completed.
type queue struct {
	worker.Queue
	mu       sync.Mutex
	failNext func(incident.Job) bool
	done     map[int64]time.Time
	jobs     map[int64]incident.Job
}

func (q *queue) ClaimJobs(ctx context.Context, w string, limit int, lease time.Duration) ([]incident.Job, error) {
	jobs, err := q.Queue.ClaimJobs(ctx, w, limit, lease)
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.jobs == nil {
		q.jobs = map[int64]incident.Job{}
	}
	for _, j := range jobs {
		q.jobs[j.ID] = j
	}
	return jobs, err
}

func (q *queue) CompleteJobWith(ctx context.Context, w string, id int64, next []store.NewJob, events ...incident.Event) error {
	q.mu.Lock()
	fail := q.failNext
	job := q.jobs[id]
	if fail != nil && fail(job) {
		q.failNext = nil
		q.mu.Unlock()
		return errors.New("test: the process died before completing the job")
	}
	q.mu.Unlock()
	if err := q.Queue.CompleteJobWith(ctx, w, id, next, events...); err != nil {
		return err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.done == nil {
		q.done = map[int64]time.Time{}
	}
	q.done[id] = time.Now()
	return nil
}

// completed returns when the first job of kind for incident completed.
func (q *queue) completed(incidentID, kind string) (time.Time, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var ids []int64
	for id, j := range q.jobs {
		if j.IncidentID == incidentID && j.Kind == kind {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	for _, id := range ids {
		if at, ok := q.done[id]; ok {
			return at, true
		}
	}
	return time.Time{}, false
}
