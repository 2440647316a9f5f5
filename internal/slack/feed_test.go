package slack

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/remediator/remediator/internal/incident"
	"github.com/remediator/remediator/internal/notify"
	"github.com/remediator/remediator/internal/notify/notifytest"
	"github.com/remediator/remediator/internal/pipeline"
	"github.com/remediator/remediator/internal/store/audit"
	"github.com/remediator/remediator/internal/store/sqlite"
	"github.com/remediator/remediator/internal/worker"
)

// The feed on the real SQLite store: the sealer's work is done by seal(),
// the feed's clock and sleeps are the test's where it matters.

type feedBed struct {
	t       *testing.T
	st      *sqlite.Store
	dlv     *standIn
	metrics *prometheus.CounterVec
	backlog prometheus.Gauge
	n       atomic.Int64 // alerts fired
}

func newFeedBed(t *testing.T) *feedBed {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "r.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &feedBed{t: t, st: st, dlv: &standIn{},
		metrics: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "n"}, []string{"channel", "outcome"}),
		backlog: NewBacklogGauge(nil)}
}

// feed is a Feed with short polls; sleeps other than polls go to wait
// when set (else they are real).
func (b *feedBed) feed(wait func(context.Context, time.Duration) error) *Feed {
	f := &Feed{Store: b.st, Deliverer: b.dlv, Options: notify.Options{ServiceURL: notifytest.ServiceURL},
		Poll: 2 * time.Millisecond, MinBackoff: 10 * time.Millisecond, MaxBackoff: 80 * time.Millisecond,
		Notifications: b.metrics, Backlog: b.backlog}
	f.Sleep = func(ctx context.Context, d time.Duration) error {
		if wait != nil && d != f.Poll {
			return wait(ctx, d)
		}
		return realSleep(ctx, d)
	}
	return f
}

func realSleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// run starts f and waits until it has a cursor; stop ends it.
func (b *feedBed) run(f *Feed) (stop func()) {
	b.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	b.eventually(5*time.Second, "the feed has a cursor", func() bool {
		_, ok, err := b.st.NotifyCursor(context.Background(), "slack")
		return err == nil && ok
	})
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				b.t.Errorf("Run: %v", err)
			}
		})
	}
	b.t.Cleanup(stop)
	return stop
}

// fire ingests a new firing alert (its incident's received event is
// notable) and returns the incident id.
func (b *feedBed) fire() string {
	b.t.Helper()
	i := b.n.Add(1)
	tpl := notifytest.Incident("", "firing")
	labels := map[string]string{}
	for k, v := range tpl.Labels {
		labels[k] = v
	}
	labels["instance"] = fmt.Sprint(i)
	res, err := b.st.Ingest(context.Background(), &incident.Notification{ID: fmt.Sprintf("n%d", i), ReceivedAt: time.Now().UTC(),
		Status: "firing", Body: []byte("{}"), Alerts: []incident.Alert{{Status: "firing", Fingerprint: fmt.Sprintf("%016x", i),
			StartsAt: time.Now().UTC().Add(-time.Minute), Labels: labels, Annotations: tpl.Annotations}}})
	if err != nil {
		b.t.Fatal(err)
	}
	return res.Alerts[0].IncidentID
}

// append records events on an incident's timeline.
func (b *feedBed) append(id string, types ...string) {
	b.t.Helper()
	for _, typ := range types {
		if err := b.st.AppendEvents(context.Background(), incident.Event{IncidentID: id, Type: typ, Reason: typ + " (test)"}); err != nil {
			b.t.Fatal(err)
		}
	}
}

// seal does the sealer's work: every event gets its audit record.
func (b *feedBed) seal() {
	b.t.Helper()
	for {
		n, err := b.st.SealAudit(context.Background(), 1000)
		if err != nil {
			b.t.Fatal(err)
		}
		if n == 0 {
			return
		}
	}
}

func (b *feedBed) head() int64 {
	b.t.Helper()
	st, err := b.st.AuditState(context.Background())
	if err != nil {
		b.t.Fatal(err)
	}
	return st.HeadSeq
}

// notable lists the notable incident events sealed after seq, in seq
// order: what the feed must deliver.
func (b *feedBed) notable(after int64) []delivered {
	b.t.Helper()
	var out []delivered
	err := b.st.ScanAudit(context.Background(), audit.Filter{AfterSeq: after}, func(r *audit.Record) error {
		if r.IncidentID != "" && notify.Notable(r.Type) {
			out = append(out, delivered{r.IncidentID, r.EventID})
		}
		return nil
	})
	if err != nil {
		b.t.Fatal(err)
	}
	return out
}

func (b *feedBed) cursor() int64 {
	b.t.Helper()
	seq, _, err := b.st.NotifyCursor(context.Background(), "slack")
	if err != nil {
		b.t.Fatal(err)
	}
	return seq
}

func (b *feedBed) count(outcome string) int {
	return int(value(b.t, b.metrics.WithLabelValues("slack", outcome)))
}

// value reads a counter or gauge as a scrape would (prometheus/testutil
// would need one more module).
func value(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		t.Fatal(err)
	}
	if d.Counter != nil {
		return d.Counter.GetValue()
	}
	return d.Gauge.GetValue()
}

func (b *feedBed) eventually(d time.Duration, what string, ok func() bool) {
	b.t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			b.t.Fatalf("timed out waiting until %s; delivered %v, attempted %v", what, b.dlv.delivered(), b.dlv.attempted())
		}
		time.Sleep(2 * time.Millisecond)
	}
}

type delivered struct {
	incident string
	event    int64
}

// standIn is the Deliverer: it records every attempt and what got
// through; fail decides an attempt's error (attempt counts this
// notification's attempts from 1).
type standIn struct {
	mu       sync.Mutex
	tries    []delivered
	ok       []delivered
	attempts map[delivered]int
	fail     func(ctx context.Context, n notify.Notification, attempt int) error
}

func (s *standIn) Deliver(ctx context.Context, n notify.Notification) error {
	d := delivered{n.IncidentID, n.EventID}
	s.mu.Lock()
	if s.attempts == nil {
		s.attempts = map[delivered]int{}
	}
	s.attempts[d]++
	attempt := s.attempts[d]
	s.tries = append(s.tries, d)
	fail := s.fail
	s.mu.Unlock()
	if fail != nil {
		if err := fail(ctx, n, attempt); err != nil {
			return err
		}
	}
	s.mu.Lock()
	s.ok = append(s.ok, d)
	s.mu.Unlock()
	return nil
}

func (s *standIn) setFail(f func(ctx context.Context, n notify.Notification, attempt int) error) {
	s.mu.Lock()
	s.fail = f
	s.mu.Unlock()
}

func (s *standIn) delivered() []delivered {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.ok)
}

func (s *standIn) attempted() []delivered {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.tries)
}

// Notable events are delivered in seq order, each exactly once, across a
// restart of the feed (its cursor is in the store); what happened before
// its first start is not replayed; other events are not delivered.
func TestFeedDeliversInOrderOnceAcrossRestart(t *testing.T) {
	b := newFeedBed(t)
	b.fire() // before the first start: history
	b.seal()
	start := b.head()
	if start == 0 {
		t.Fatal("no audit records")
	}

	stop := b.run(b.feed(nil))
	if c := b.cursor(); c != start {
		t.Fatalf("first start: cursor %d, want the head %d", c, start)
	}
	x, y := b.fire(), b.fire()
	b.append(x, "matched", "diagnosed") // matched is not news
	b.append(y, "unmatched")
	b.seal()
	want := b.notable(start)
	if len(want) != 4 {
		t.Fatalf("notable events: %v", want)
	}
	b.eventually(5*time.Second, "4 delivered", func() bool { return len(b.dlv.delivered()) == 4 })
	stop()

	// Stopped: events wait in the trail.
	z := b.fire()
	b.append(z, "planned")
	b.seal()
	stop = b.run(b.feed(nil))
	want = b.notable(start)
	b.eventually(5*time.Second, "6 delivered", func() bool { return len(b.dlv.delivered()) >= 6 })
	b.eventually(5*time.Second, "the cursor at the head", func() bool { return b.cursor() == b.head() })
	time.Sleep(20 * time.Millisecond) // nothing more comes
	stop()

	if got := b.dlv.delivered(); !slices.Equal(got, want) {
		t.Fatalf("delivered\n%v\nwant (seq order, each once)\n%v", got, want)
	}
	if got := b.dlv.attempted(); len(got) != len(want) {
		t.Errorf("attempts %v", got)
	}
	if b.count(OutcomeSent) != 6 || b.count(OutcomeRetry)+b.count(OutcomeFailed)+b.count(OutcomeGaveUp) != 0 {
		t.Errorf("metrics: sent %d retry %d failed %d gave_up %d", b.count(OutcomeSent), b.count(OutcomeRetry),
			b.count(OutcomeFailed), b.count(OutcomeGaveUp))
	}
	if g := value(t, b.backlog); g != 0 {
		t.Errorf("backlog %v, want 0", g)
	}
}

// A retryable failure retries the same record (after the backoff or the
// channel's Retry-After) while the later ones wait.
func TestFeedRetriesTheSameRecordFirst(t *testing.T) {
	b := newFeedBed(t)
	var mu sync.Mutex
	var waits []time.Duration
	f := b.feed(func(ctx context.Context, d time.Duration) error {
		mu.Lock()
		waits = append(waits, d)
		mu.Unlock()
		return realSleep(ctx, d)
	})
	var first atomic.Value
	b.dlv.setFail(func(_ context.Context, n notify.Notification, attempt int) error {
		first.CompareAndSwap(nil, n.IncidentID)
		if n.IncidentID != first.Load() {
			return nil
		}
		switch attempt {
		case 1, 2:
			return &notify.Retryable{Err: errors.New("slack: 503")}
		case 3:
			return &notify.RetryAfter{After: 7 * time.Millisecond, Err: errors.New("slack: 429")}
		case 4:
			return context.DeadlineExceeded // a Deliver that timed out: retried too
		}
		return nil
	})
	stop := b.run(f)
	start := b.cursor()
	b.fire()
	b.fire()
	b.seal()
	want := b.notable(start)
	b.eventually(5*time.Second, "both delivered", func() bool { return len(b.dlv.delivered()) == 2 })
	stop()

	x, y := want[0], want[1]
	if got := b.dlv.attempted(); !slices.Equal(got, []delivered{x, x, x, x, x, y}) {
		t.Errorf("attempts %v, want the first 5 times, then the second", got)
	}
	if got := b.dlv.delivered(); !slices.Equal(got, want) {
		t.Errorf("delivered %v, want %v", got, want)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(waits, []time.Duration{10 * time.Millisecond, 20 * time.Millisecond, 7 * time.Millisecond, 80 * time.Millisecond}) {
		t.Errorf("waits %v, want backoff 10ms, 20ms, Retry-After 7ms, backoff 80ms (at most MaxBackoff)", waits)
	}
	if b.count(OutcomeRetry) != 4 || b.count(OutcomeSent) != 2 {
		t.Errorf("retry %d sent %d", b.count(OutcomeRetry), b.count(OutcomeSent))
	}
}

// A permanent failure is counted and skipped; the feed moves on.
func TestFeedSkipsPermanentFailures(t *testing.T) {
	b := newFeedBed(t)
	var first atomic.Value
	b.dlv.setFail(func(_ context.Context, n notify.Notification, _ int) error {
		first.CompareAndSwap(nil, n.IncidentID)
		if n.IncidentID == first.Load() {
			return &notify.Permanent{Err: errors.New("slack: channel_not_found")}
		}
		return nil
	})
	stop := b.run(b.feed(nil))
	start := b.cursor()
	b.fire()
	b.fire()
	b.seal()
	want := b.notable(start)
	b.eventually(5*time.Second, "the second delivered", func() bool { return len(b.dlv.delivered()) == 1 })
	b.eventually(5*time.Second, "the cursor at the head", func() bool { return b.cursor() == b.head() })
	stop()
	if got := b.dlv.attempted(); !slices.Equal(got, want) {
		t.Errorf("attempts %v, want each once: %v", got, want)
	}
	if got := b.dlv.delivered(); !slices.Equal(got, want[1:]) {
		t.Errorf("delivered %v", got)
	}
	if b.count(OutcomeFailed) != 1 || b.count(OutcomeSent) != 1 || b.count(OutcomeRetry) != 0 {
		t.Errorf("failed %d sent %d retry %d", b.count(OutcomeFailed), b.count(OutcomeSent), b.count(OutcomeRetry))
	}
}

// fakeClock is the feed's clock: its retry waits pass at once.
type fakeClock struct {
	mu    sync.Mutex
	now   time.Time
	waits []time.Duration
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) wait(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.waits = append(c.waits, d)
	c.mu.Unlock()
	return realSleep(ctx, time.Millisecond) // let the test interleave
}

// A 5-minute Slack outage (on the feed's clock, with the real backoff:
// 1s doubling up to 5m) loses nothing: what happened before and during it
// is delivered afterwards, in order, each once.
func TestFeedOutageLosesNothing(t *testing.T) {
	b := newFeedBed(t)
	clock := &fakeClock{now: time.Now()}
	f := b.feed(clock.wait)
	f.Now, f.MinBackoff, f.MaxBackoff = clock.Now, 0, 0 // the defaults: 1s … 5m
	var outageEnd atomic.Value
	var during atomic.Int32
	midOutage, firedDuring := make(chan struct{}), make(chan struct{})
	b.dlv.setFail(func(_ context.Context, n notify.Notification, attempt int) error {
		now := clock.Now()
		outageEnd.CompareAndSwap(nil, now.Add(5*time.Minute))
		if !now.Before(outageEnd.Load().(time.Time)) {
			return nil
		}
		if during.Add(1) == 3 {
			close(midOutage)
			<-firedDuring
		}
		return &notify.Retryable{Err: errors.New("dial tcp: slack.com: connection refused")}
	})
	stop := b.run(f)
	start := b.cursor()
	for range 3 {
		b.fire()
	}
	b.seal()
	// More incidents while Slack is down.
	<-midOutage
	b.fire()
	id := b.fire()
	b.append(id, "diagnosed", "planned")
	b.seal()
	close(firedDuring)
	want := b.notable(start)
	b.eventually(10*time.Second, "all delivered", func() bool { return len(b.dlv.delivered()) == len(want) })
	b.eventually(5*time.Second, "the cursor at the head", func() bool { return b.cursor() == b.head() })
	stop()

	if got := b.dlv.delivered(); !slices.Equal(got, want) {
		t.Fatalf("delivered\n%v\nwant\n%v", got, want)
	}
	clock.mu.Lock()
	waits := slices.Clone(clock.waits)
	clock.mu.Unlock()
	var total time.Duration
	for i, w := range waits {
		total += w
		if exp := min(time.Second<<i, 5*time.Minute); w != exp {
			t.Errorf("wait %d: %s, want %s (waits %v)", i+1, w, exp, waits)
		}
	}
	if total < 5*time.Minute || total > 5*time.Minute+5*time.Minute {
		t.Errorf("waited %s in all (%v)", total, waits)
	}
	if b.count(OutcomeRetry) != len(waits) || b.count(OutcomeSent) != len(want) || b.count(OutcomeGaveUp) != 0 {
		t.Errorf("retry %d (waits %d) sent %d gave_up %d", b.count(OutcomeRetry), len(waits), b.count(OutcomeSent), b.count(OutcomeGaveUp))
	}
	if g := value(t, b.backlog); g != 0 {
		t.Errorf("backlog %v after the outage", g)
	}
}

// An event still failing 24h after it happened is given up; the feed
// moves on.
func TestFeedGivesUpAfter24h(t *testing.T) {
	b := newFeedBed(t)
	clock := &fakeClock{now: time.Now().Add(24*time.Hour + time.Minute)}
	f := b.feed(clock.wait)
	f.Now = clock.Now
	var first atomic.Value
	b.dlv.setFail(func(_ context.Context, n notify.Notification, _ int) error {
		first.CompareAndSwap(nil, n.IncidentID)
		if n.IncidentID == first.Load() {
			return &notify.Retryable{Err: errors.New("slack: 500")}
		}
		return nil
	})
	stop := b.run(f)
	start := b.cursor()
	b.fire()
	b.fire()
	b.seal()
	want := b.notable(start)
	b.eventually(5*time.Second, "the second delivered", func() bool { return len(b.dlv.delivered()) == 1 })
	stop()
	if got := b.dlv.attempted(); !slices.Equal(got, want) {
		t.Errorf("attempts %v, want %v", got, want)
	}
	if b.count(OutcomeGaveUp) != 1 || b.count(OutcomeSent) != 1 {
		t.Errorf("gave_up %d sent %d", b.count(OutcomeGaveUp), b.count(OutcomeSent))
	}
}

// While Slack hangs, remediation goes on: the feed is apart from the
// worker, whose jobs complete.
func TestFeedDoesNotHoldUpRemediation(t *testing.T) {
	b := newFeedBed(t)
	release := make(chan struct{})
	var blocked atomic.Bool
	b.dlv.setFail(func(ctx context.Context, _ notify.Notification, _ int) error {
		select {
		case <-release:
			return nil
		default:
		}
		blocked.Store(true)
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	// The worker: each job records a diagnosis.
	wk := worker.New(worker.Options{Name: "w1", Queue: b.st, Poll: 5 * time.Millisecond, Lease: 10 * time.Second,
		Pipeline: pipeline.StageFunc(func(_ context.Context, w *pipeline.Work) error {
			w.Record("diagnosed", "probes ran", nil)
			return nil
		})})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = wk.Run(ctx) }()
	defer func() { cancel(); <-done }()
	// A sealer, as the service runs it.
	sealed := make(chan struct{})
	defer func() { cancel(); <-sealed }()
	go func() {
		defer close(sealed)
		for ctx.Err() == nil {
			_, _ = b.st.SealAudit(ctx, 1000)
			time.Sleep(5 * time.Millisecond)
		}
	}()

	stop := b.run(b.feed(nil))
	start := b.cursor()
	x := b.fire()
	b.eventually(5*time.Second, "the feed is stuck in Deliver", blocked.Load)
	y := b.fire()
	wk.Kick()
	for _, id := range []string{x, y} {
		b.eventually(5*time.Second, "the job of "+id+" completed", func() bool {
			_, events, err := b.st.Incident(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			return slices.ContainsFunc(events, func(e incident.Event) bool { return e.Type == "diagnosed" })
		})
	}
	if got := b.dlv.delivered(); len(got) != 0 {
		t.Fatalf("delivered while blocked: %v", got)
	}
	close(release)
	b.eventually(5*time.Second, "the 4 steps delivered", func() bool { return len(b.dlv.delivered()) == 4 })
	stop()
	if got, want := b.dlv.delivered(), b.notable(start); !slices.Equal(got, want) {
		t.Errorf("delivered %v, want %v", got, want)
	}
}
