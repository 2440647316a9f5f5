package audit

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Store is what the Service needs from the store (store.Store has it).
type Store interface {
	SealAudit(ctx context.Context, max int) (int, error)
	CleanupAudit(ctx context.Context, before time.Time, actor, correlationID string) (CleanupResult, error)
	ScanAudit(ctx context.Context, f Filter, fn func(*Record) error) error
	AuditState(ctx context.Context) (State, error)
	AuditStats(ctx context.Context) (Stats, error)
}

// Options tune a Service. Zero values mean the defaults.
type Options struct {
	// RetentionDays: records older than this many days are deleted by
	// the cleanup. 0 keeps records forever (no cleanup).
	RetentionDays int
	// SealEvery is the sealer's period (default 1s): the longest an
	// event stays out of the chain, plus one pass.
	SealEvery time.Duration
	// SealBatch caps the records one seal transaction appends (default
	// 250), so the sealer never holds SQLite's one writer for long.
	SealBatch int
	// SealDuty caps the share of wall time the background sealer spends
	// sealing (default 0.2): after a full batch that took d it waits
	// d×(1/SealDuty−1) before the next. Intake keeps the store first; under
	// a sustained load beyond that budget the unsealed window grows and
	// is caught up when the load drops. SealAll (the CLI) is not limited.
	SealDuty float64
	// FirstCleanup is how long after start the first scheduled cleanup
	// runs (default 1 minute); then every CleanupEvery (default 24h).
	FirstCleanup, CleanupEvery time.Duration
	Now                        func() time.Time
	Log                        *zap.Logger
}

// Service keeps the trail: it seals every SealEvery and cleans up daily.
// It also serves the audit endpoints (server.Audit).
type Service struct {
	st  Store
	opt Options

	mu         sync.Mutex
	next       time.Time // next scheduled cleanup
	lastSeal   time.Time // last successful seal pass
	lastSealOK bool
}

// NewService returns a service over st; Run starts its background work.
func NewService(st Store, opt Options) *Service {
	if opt.SealEvery <= 0 {
		opt.SealEvery = time.Second
	}
	if opt.SealBatch <= 0 {
		opt.SealBatch = 250
	}
	if opt.SealDuty <= 0 || opt.SealDuty > 1 {
		opt.SealDuty = 0.2
	}
	if opt.FirstCleanup <= 0 {
		opt.FirstCleanup = time.Minute
	}
	if opt.CleanupEvery <= 0 {
		opt.CleanupEvery = 24 * time.Hour
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Log == nil {
		opt.Log = zap.NewNop()
	}
	s := &Service{st: st, opt: opt}
	if opt.RetentionDays > 0 {
		s.next = opt.Now().Add(opt.FirstCleanup)
	}
	return s
}

// Run seals every SealEvery and runs the scheduled cleanup, until ctx
// ends; then it seals once more (5 s at most) so that a clean shutdown
// leaves nothing unsealed.
func (s *Service) Run(ctx context.Context) {
	tick := time.NewTicker(s.opt.SealEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			if !SealingEnabled {
				return
			}
			final, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			_, err := s.SealAll(final)
			cancel()
			if err != nil {
				s.opt.Log.Warn("final audit seal failed; the next start seals what is left", zap.Error(err))
			}
			return
		case <-tick.C:
		}
		if !SealingEnabled {
			// the benchmark build (seal_noseal.go)
		} else if n, err := s.sealPaced(ctx); err != nil && ctx.Err() == nil {
			s.opt.Log.Error("audit seal failed; retrying next second", zap.Error(err), zap.Int("sealed", n))
		}
		if next := s.nextCleanup(); !next.IsZero() && !s.opt.Now().Before(next) {
			s.mu.Lock()
			s.next = next.Add(s.opt.CleanupEvery)
			s.mu.Unlock()
			res, err := s.Cleanup(ctx, "remediator", "")
			if err != nil {
				if ctx.Err() == nil {
					s.opt.Log.Error("scheduled audit cleanup failed", zap.Error(err), zap.Int64("deleted", res.Deleted))
				}
				continue
			}
			s.opt.Log.Info("scheduled audit cleanup", zap.Int64("deleted", res.Deleted),
				zap.Time("before", res.Before), zap.Int("retentionDays", s.opt.RetentionDays))
		}
	}
}

// SealAll seals until no unsealed event is left (each pass its own
// transaction of at most SealBatch records) and returns how many it sealed.
func (s *Service) SealAll(ctx context.Context) (int, error) {
	total := 0
	for {
		n, err := s.st.SealAudit(ctx, s.opt.SealBatch)
		total += n
		if err != nil {
			s.mu.Lock()
			s.lastSealOK = false
			s.mu.Unlock()
			return total, err
		}
		if n < s.opt.SealBatch {
			s.mu.Lock()
			s.lastSeal, s.lastSealOK = s.opt.Now(), true
			s.mu.Unlock()
			return total, nil
		}
	}
}

// sealPaced seals what is pending like SealAll, but spends at most
// SealDuty of the wall time doing it.
func (s *Service) sealPaced(ctx context.Context) (int, error) {
	total := 0
	for {
		began := time.Now()
		n, err := s.st.SealAudit(ctx, s.opt.SealBatch)
		total += n
		s.mu.Lock()
		s.lastSealOK = err == nil
		if err == nil {
			s.lastSeal = s.opt.Now()
		}
		s.mu.Unlock()
		if err != nil || n < s.opt.SealBatch {
			return total, err
		}
		pause := time.Duration(float64(time.Since(began)) * (1/s.opt.SealDuty - 1))
		select {
		case <-ctx.Done():
			return total, nil
		case <-time.After(pause):
		}
	}
}

// Check is a health check: the last seal pass succeeded recently.
func (s *Service) Check(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case !SealingEnabled:
		// A benchmark build (-tags remediator_noseal) must never pass for
		// a service: /health says so.
		return errors.New("built with -tags remediator_noseal: the audit trail is not sealed")
	case s.lastSeal.IsZero() && !s.lastSealOK:
		return nil // not run yet
	case !s.lastSealOK:
		return errors.New("audit sealer failing")
	case s.opt.Now().Sub(s.lastSeal) > 10*s.opt.SealEvery+10*time.Second:
		return fmt.Errorf("audit sealer last succeeded %s ago", s.opt.Now().Sub(s.lastSeal).Round(time.Second))
	}
	return nil
}

func (s *Service) nextCleanup() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.next
}

// Retention is GET /audit/retention.
type Retention struct {
	Days int `json:"days"` // 0: kept forever
	// NextCleanup is when this replica's scheduled cleanup runs next
	// (null when Days is 0).
	NextCleanup *time.Time `json:"nextCleanup"`
}

// Retention returns the retention and the next scheduled cleanup.
func (s *Service) Retention() Retention {
	r := Retention{Days: s.opt.RetentionDays}
	if n := s.nextCleanup(); !n.IsZero() {
		n = n.UTC()
		r.NextCleanup = &n
	}
	return r
}

// ErrKeepForever is returned by Cleanup when the retention is 0.
var ErrKeepForever = errors.New("audit.retention_days is 0: records are kept forever, nothing to clean up")

// Cutoff is the cleanup cutoff for a retention of days at now.
func Cutoff(now time.Time, days int) time.Time {
	return now.UTC().Truncate(time.Microsecond).AddDate(0, 0, -days)
}

// Cleanup seals what is pending, then deletes the records older than the
// retention behind a checkpoint (store CleanupAudit).
func (s *Service) Cleanup(ctx context.Context, actor, correlationID string) (CleanupResult, error) {
	if s.opt.RetentionDays <= 0 {
		return CleanupResult{}, ErrKeepForever
	}
	if _, err := s.SealAll(ctx); err != nil {
		return CleanupResult{}, err
	}
	return s.st.CleanupAudit(ctx, Cutoff(s.opt.Now(), s.opt.RetentionDays), actor, correlationID)
}

// Stats returns the store's audit stats.
func (s *Service) Stats(ctx context.Context) (Stats, error) { return s.st.AuditStats(ctx) }

// Export streams the records f selects to fn.
func (s *Service) Export(ctx context.Context, f Filter, fn func(*Record) error) error {
	return s.st.ScanAudit(ctx, f, fn)
}

// Verify seals what is pending and verifies the chain.
func (s *Service) Verify(ctx context.Context) (Report, error) {
	if _, err := s.SealAll(ctx); err != nil {
		return Report{}, err
	}
	return Verify(ctx, s.st)
}
