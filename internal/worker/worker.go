// Package worker drains the job queue: it leases jobs from the store, runs
// each through the pipeline, and records the outcome. Jobs are leased, not
// taken, so a crash or a lost replica only delays a job until its lease
// expires; the store hands it out again and the timeline is written once,
// together with the job's completion.
package worker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/remediator/remediator/internal/incident"
	"github.com/remediator/remediator/internal/pipeline"
	"github.com/remediator/remediator/internal/store"
)

// Queue is what the worker needs from the store.
type Queue interface {
	ClaimJobs(ctx context.Context, worker string, limit int, lease time.Duration) ([]incident.Job, error)
	// CompleteJobWith marks the job done, enqueues its follow-up jobs and
	// appends its events in one transaction.
	CompleteJobWith(ctx context.Context, worker string, jobID int64, next []store.NewJob, events ...incident.Event) error
	FailJob(ctx context.Context, worker string, jobID int64, cause string, retryAfter time.Duration) error
}

// Options configure a Worker.
type Options struct {
	Name        string // lease owner: unique per process
	Queue       Queue
	Pipeline    pipeline.Stage
	Mode        string
	Concurrency int
	Lease       time.Duration
	Poll        time.Duration
	Log         *zap.Logger
	Now         func() time.Time
}

// Worker runs jobs. Create it with New, run it with Run.
type Worker struct {
	opt      Options
	kick     chan struct{}
	lastLoop atomic.Int64 // unix nanos of the last queue poll
}

// New makes a worker.
func New(opt Options) *Worker {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Concurrency < 1 {
		opt.Concurrency = 1
	}
	if opt.Log == nil {
		opt.Log = zap.NewNop()
	}
	return &Worker{opt: opt, kick: make(chan struct{}, 1)}
}

// Kick wakes the worker now (new work was stored). It never blocks.
func (w *Worker) Kick() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// Check is a health check: the loop has polled the queue recently.
func (w *Worker) Check(context.Context) error {
	last := w.lastLoop.Load()
	if last == 0 {
		return errors.New("worker not started")
	}
	age := w.opt.Now().Sub(time.Unix(0, last))
	if limit := 3*w.opt.Poll + w.opt.Lease; age > limit {
		return fmt.Errorf("worker has not polled the queue for %s", age.Round(time.Second))
	}
	return nil
}

// Run polls until ctx is cancelled. Jobs in flight when ctx ends are given
// up (their leases expire and another worker takes them).
func (w *Worker) Run(ctx context.Context) error {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-w.kick:
		case <-timer.C:
		}
		for {
			n, err := w.RunOnce(ctx)
			if err != nil && ctx.Err() == nil {
				w.opt.Log.Warn("job queue unavailable", zap.Error(err))
			}
			if n == 0 || err != nil || ctx.Err() != nil {
				break
			}
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(w.opt.Poll)
	}
}

// RunOnce claims one batch of jobs and runs it to the end. It returns how
// many jobs it claimed.
func (w *Worker) RunOnce(ctx context.Context) (int, error) {
	w.lastLoop.Store(w.opt.Now().UnixNano())
	jobs, err := w.opt.Queue.ClaimJobs(ctx, w.opt.Name, w.opt.Concurrency, w.opt.Lease)
	if err != nil {
		return 0, err
	}
	var wg sync.WaitGroup
	for _, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.run(ctx, j)
		}()
	}
	wg.Wait()
	return len(jobs), nil
}

func (w *Worker) run(ctx context.Context, job incident.Job) {
	log := w.opt.Log.With(zap.Int64("job", job.ID), zap.String("incident", job.IncidentID),
		zap.String("kind", job.Kind), zap.String("correlationId", job.CorrelationID))
	// Finish well inside the lease so no other worker takes the job while
	// this one still runs it.
	runCtx, cancel := context.WithTimeout(ctx, w.opt.Lease*3/4)
	defer cancel()
	work := pipeline.NewWork(job, w.opt.Mode, w.opt.Now)
	err := runStage(runCtx, w.opt.Pipeline, work)
	if ctx.Err() != nil {
		return // shutting down: the lease expires and the job runs again
	}
	if err != nil {
		delay := Backoff(job.Attempts)
		log.Warn("job failed; will retry", zap.Error(err), zap.Duration("retryAfter", delay))
		if ferr := w.opt.Queue.FailJob(ctx, w.opt.Name, job.ID, err.Error(), delay); ferr != nil {
			log.Error("could not release failed job", zap.Error(ferr))
		}
		return
	}
	var next []store.NewJob
	for _, f := range work.FollowUps() {
		next = append(next, store.NewJob{IncidentID: job.IncidentID, Kind: f.Kind, Ref: f.Ref,
			NotificationID: job.NotificationID, CorrelationID: job.CorrelationID,
			CreatedAt: w.opt.Now().UTC(), NotBefore: f.NotBefore})
	}
	if err := w.opt.Queue.CompleteJobWith(ctx, w.opt.Name, job.ID, next, work.Events()...); err != nil {
		log.Error("could not complete job; it will run again after its lease", zap.Error(err))
		return
	}
	log.Debug("job done", zap.Int("events", len(work.Events())))
}

// runStage runs the pipeline and turns a panic in a stage into an error, so
// one bad incident cannot take the service down.
func runStage(ctx context.Context, st pipeline.Stage, w *pipeline.Work) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("stage panic: %v", v)
		}
	}()
	return st.Exec(ctx, w)
}

// Backoff is the delay before retry number attempts+1: 1 s doubling, capped
// at 5 minutes.
func Backoff(attempts int) time.Duration {
	if attempts < 0 {
		attempts = 0
	}
	if attempts > 8 {
		return 5 * time.Minute
	}
	d := time.Second << attempts
	if d > 5*time.Minute {
		d = 5 * time.Minute
	}
	return d
}
