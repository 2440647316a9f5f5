package worker

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/remediator/remediator/internal/incident"
	"github.com/remediator/remediator/internal/intake"
	"github.com/remediator/remediator/internal/pipeline"
	"github.com/remediator/remediator/internal/planner"
	"github.com/remediator/remediator/internal/policy"
	"github.com/remediator/remediator/internal/store"
	"github.com/remediator/remediator/internal/store/open"
)

func openStore(t *testing.T, dsn string) store.Store {
	t.Helper()
	st, err := open.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func ingestFile(t *testing.T, st store.Store, name string) incident.IngestResult {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "intake", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	n, err := intake.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	n.ID, n.ReceivedAt, n.CorrelationID = incident.NewID(), time.Now().UTC(), "corr-"+name
	res, err := st.Ingest(context.Background(), n)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// standardPipeline is the service's pipeline with no policy loaded: every
// firing incident ends as unmatched.
func standardPipeline(st store.Store) pipeline.Stage {
	return pipeline.Seq{pipeline.Load(st), pipeline.Triage(), planner.Stage(&planner.Planner{Policies: func() *policy.Set { return nil }})}
}

func eventTypes(t *testing.T, st store.Store, id string) []string {
	t.Helper()
	_, events, err := st.Incident(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, e := range events {
		types = append(types, e.Type)
	}
	return types
}

// A notification stored while no worker runs (the process died after the
// 202) is processed by the worker of the next process on the same store.
func TestCrashRecoveryProcessesStoredNotification(t *testing.T) {
	dsn := "sqlite://" + filepath.Join(t.TempDir(), "r.db")
	st := openStore(t, dsn)
	res := ingestFile(t, st, "firing.json")
	id := res.Alerts[0].IncidentID
	if err := st.Close(); err != nil { // the "crash": no worker ever ran
		t.Fatal(err)
	}

	st = openStore(t, dsn)
	defer st.Close()
	w := New(Options{Name: "w2", Queue: st, Pipeline: standardPipeline(st), Mode: "dry-run", Lease: 10 * time.Second, Poll: time.Second})
	n, err := w.RunOnce(context.Background())
	if err != nil || n != 1 {
		t.Fatalf("RunOnce: %d jobs, %v", n, err)
	}
	got := eventTypes(t, st, id)
	want := []string{incident.EventReceived, incident.EventUnmatched}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("timeline %v, want %v", got, want)
	}
	// Nothing left: a second pass claims nothing and records nothing.
	if n, _ := w.RunOnce(context.Background()); n != 0 {
		t.Fatalf("job ran twice (%d claimed)", n)
	}
	if got := eventTypes(t, st, id); len(got) != 2 {
		t.Fatalf("timeline grew: %v", got)
	}
}

// A worker that dies mid-job (lease held, nothing completed) leaves no
// trace; after the lease the next worker runs the job once.
func TestLeaseExpiryRerunsAbandonedJob(t *testing.T) {
	dsn := "sqlite://" + filepath.Join(t.TempDir(), "r.db")
	st := openStore(t, dsn)
	defer st.Close()
	res := ingestFile(t, st, "firing.json")
	jobs, err := st.ClaimJobs(context.Background(), "dead-worker", 10, time.Second)
	if err != nil || len(jobs) != 1 {
		t.Fatalf("claim: %v %v", jobs, err)
	}
	w := New(Options{Name: "w2", Queue: st, Pipeline: standardPipeline(st), Mode: "dry-run", Lease: 10 * time.Second, Poll: time.Second})
	if n, _ := w.RunOnce(context.Background()); n != 0 {
		t.Fatal("job handed out while leased")
	}
	time.Sleep(1100 * time.Millisecond)
	if n, err := w.RunOnce(context.Background()); n != 1 || err != nil {
		t.Fatalf("after lease expiry: %d %v", n, err)
	}
	if got := eventTypes(t, st, res.Alerts[0].IncidentID); len(got) != 2 {
		t.Fatalf("timeline %v", got)
	}
	if err := st.CompleteJob(context.Background(), "dead-worker", jobs[0].ID); err == nil {
		t.Fatal("a worker whose lease expired completed the job")
	}
}

// A job for an episode that resolved before the worker got to it is
// cancelled, recorded, and never reaches policy matching.
func TestResolvedBeforeProcessingIsCancelled(t *testing.T) {
	st := openStore(t, "sqlite://"+filepath.Join(t.TempDir(), "r.db"))
	defer st.Close()
	res := ingestFile(t, st, "firing.json")
	ingestFile(t, st, "resolved.json")
	var matched atomic.Int32
	m := pipeline.StageFunc(func(context.Context, *pipeline.Work) error { matched.Add(1); return nil })
	w := New(Options{Name: "w", Queue: st, Pipeline: pipeline.Seq{pipeline.Load(st), pipeline.Triage(), m},
		Mode: "dry-run", Lease: 10 * time.Second, Poll: time.Second})
	for {
		n, err := w.RunOnce(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
	}
	if matched.Load() != 0 {
		t.Fatal("a resolved incident reached policy matching")
	}
	got := eventTypes(t, st, res.Alerts[0].IncidentID)
	want := []string{incident.EventReceived, incident.EventResolved, incident.EventCancelled}
	if len(got) != len(want) {
		t.Fatalf("timeline %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("timeline %v, want %v", got, want)
		}
	}
}

// A failing stage releases the job for a retry with backoff and records
// nothing; a panicking stage is contained the same way.
func TestFailingStageRetriesLater(t *testing.T) {
	st := openStore(t, "sqlite://"+filepath.Join(t.TempDir(), "r.db"))
	defer st.Close()
	res := ingestFile(t, st, "firing.json")
	for _, stage := range []pipeline.Stage{
		pipeline.StageFunc(func(_ context.Context, w *pipeline.Work) error {
			w.Record("should-not-appear", "", nil)
			return errors.New("kube API down")
		}),
		pipeline.StageFunc(func(context.Context, *pipeline.Work) error { panic("boom") }),
	} {
		w := New(Options{Name: "w", Queue: st, Pipeline: stage, Mode: "dry-run", Lease: 10 * time.Second, Poll: time.Second})
		if _, err := w.RunOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
		if got := eventTypes(t, st, res.Alerts[0].IncidentID); len(got) != 1 {
			t.Fatalf("failed job recorded events: %v", got)
		}
		if n, _ := w.RunOnce(context.Background()); n != 0 {
			t.Fatal("failed job retried without backoff")
		}
	}
}

func TestRunStopsOnCancelAndKickWakes(t *testing.T) {
	st := openStore(t, "sqlite://"+filepath.Join(t.TempDir(), "r.db"))
	defer st.Close()
	w := New(Options{Name: "w", Queue: st, Pipeline: standardPipeline(st), Mode: "dry-run", Lease: 10 * time.Second, Poll: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = w.Run(ctx); close(done) }()
	time.Sleep(50 * time.Millisecond) // first poll happens at once
	if err := w.Check(context.Background()); err != nil {
		t.Fatalf("health after start: %v", err)
	}
	res := ingestFile(t, st, "firing.json")
	w.Kick() // poll is an hour: only the kick can make this run
	deadline := time.Now().Add(5 * time.Second)
	for len(eventTypes(t, st, res.Alerts[0].IncidentID)) < 2 {
		if time.Now().After(deadline) {
			t.Fatal("kick did not wake the worker")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

func TestBackoff(t *testing.T) {
	for _, tt := range []struct {
		attempts int
		want     time.Duration
	}{{-1, time.Second}, {0, time.Second}, {1, 2 * time.Second}, {5, 32 * time.Second}, {8, 256 * time.Second}, {9, 5 * time.Minute}, {100, 5 * time.Minute}} {
		if got := Backoff(tt.attempts); got != tt.want {
			t.Errorf("Backoff(%d) = %s, want %s", tt.attempts, got, tt.want)
		}
	}
}
