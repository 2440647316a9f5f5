package audit

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

type fakeStore struct {
	mu       sync.Mutex
	pending  int
	sealed   int
	cleanups []time.Time
	sealErr  error
}

func (f *fakeStore) SealAudit(_ context.Context, max int) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.sealErr != nil {
		return 0, f.sealErr
	}
	n := min(max, f.pending)
	f.pending -= n
	f.sealed += n
	return n, nil
}

func (f *fakeStore) CleanupAudit(_ context.Context, before time.Time, actor, _ string) (CleanupResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cleanups = append(f.cleanups, before)
	return CleanupResult{Before: before, Deleted: 1}, nil
}

func (f *fakeStore) ScanAudit(context.Context, Filter, func(*Record) error) error { return nil }
func (f *fakeStore) AuditState(context.Context) (State, error) {
	return State{HeadHash: GenesisHash}, nil
}
func (f *fakeStore) AuditStats(context.Context) (Stats, error) { return NewStats(), nil }

func (f *fakeStore) counts() (int, int, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pending, f.sealed, len(f.cleanups)
}

func TestServiceSealAll(t *testing.T) {
	if !SealingEnabled {
		if err := NewService(&fakeStore{}, Options{}).Check(context.Background()); err == nil {
			t.Error("Check passes in a build that never seals")
		}
		t.Skip("built with remediator_noseal: the service does not seal")
	}
	st := &fakeStore{pending: 1234}
	s := NewService(st, Options{SealBatch: 100})
	if n, err := s.SealAll(context.Background()); n != 1234 || err != nil {
		t.Fatalf("SealAll = %d, %v", n, err)
	}
	if err := s.Check(context.Background()); err != nil {
		t.Error(err)
	}
	st.sealErr = errors.New("disk full")
	if _, err := s.SealAll(context.Background()); err == nil {
		t.Fatal("no error")
	}
	if err := s.Check(context.Background()); err == nil {
		t.Error("Check passes while sealing fails")
	}
}

func TestServiceRun(t *testing.T) {
	if !SealingEnabled {
		t.Skip("built with remediator_noseal: the service does not seal")
	}
	st := &fakeStore{pending: 50}
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	s := NewService(st, Options{RetentionDays: 90, SealEvery: 10 * time.Millisecond, SealBatch: 7,
		FirstCleanup: 30 * time.Millisecond, CleanupEvery: time.Hour})
	r := s.Retention()
	if r.Days != 90 || r.NextCleanup == nil || r.NextCleanup.Before(now) {
		t.Fatalf("retention %+v", r)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		p, _, c := st.counts()
		if p == 0 && c == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pending %d cleanups %d", p, c)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if next := s.Retention().NextCleanup; next == nil || time.Until(*next) < 50*time.Minute {
		t.Errorf("next cleanup %v, want in about an hour", next)
	}
	// Events stored while stopping are sealed by the final pass.
	st.mu.Lock()
	st.pending = 3
	st.mu.Unlock()
	cancel()
	<-done
	if p, sealed, _ := st.counts(); p != 0 || sealed != 53 {
		t.Errorf("after stop: %d pending, %d sealed", p, sealed)
	}
	cut := st.cleanups[0]
	if d := time.Since(cut); d < 90*24*time.Hour-time.Minute || d > 90*24*time.Hour+time.Minute {
		t.Errorf("cutoff %v is not 90 days ago", cut)
	}
}

func TestServiceKeepForever(t *testing.T) {
	s := NewService(&fakeStore{}, Options{})
	if r := s.Retention(); r.Days != 0 || r.NextCleanup != nil {
		t.Errorf("%+v", r)
	}
	if _, err := s.Cleanup(context.Background(), "x", ""); !errors.Is(err, ErrKeepForever) {
		t.Errorf("Cleanup: %v", err)
	}
}

func TestCutoff(t *testing.T) {
	now := time.Date(2026, 3, 31, 10, 0, 0, 1500, time.FixedZone("x", 7200))
	if got, want := Cutoff(now, 30), time.Date(2026, 3, 1, 8, 0, 0, 1000, time.UTC); !got.Equal(want) {
		t.Errorf("Cutoff = %v, want %v", got, want)
	}
}
