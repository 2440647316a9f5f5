// Package pipeline runs the stages an incident goes through after intake:
// (dedup at intake) → triage → policy match → diagnose → plan → guard → act →
// verify → record/notify. A stage is small and testable alone; Seq and FanOut
// compose them, in the spirit of Alertmanager's notify.Stage.
package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/remediator/remediator/internal/incident"
)

// Stage is one step of incident processing. It reads and extends the work
// item; it records its decisions with Work.Record; it ends the pipeline on
// purpose with Work.Stop (a decision, recorded) and returns an error only for
// failures that should make the job run again later.
type Stage interface {
	Exec(ctx context.Context, w *Work) error
}

// StageFunc adapts a function to a Stage.
type StageFunc func(ctx context.Context, w *Work) error

// Exec calls f.
func (f StageFunc) Exec(ctx context.Context, w *Work) error { return f(ctx, w) }

// Seq runs stages in order until one fails or stops the work.
type Seq []Stage

// Exec runs the stages in order.
func (s Seq) Exec(ctx context.Context, w *Work) error {
	for _, st := range s {
		if w.Stopped() {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := st.Exec(ctx, w); err != nil {
			return err
		}
	}
	return nil
}

// FanOut runs stages concurrently on the same work item and waits for all
// of them; their errors are joined. Stages that share a work item must only
// touch it through its methods (Record, Stop), which are safe for concurrent
// use. Diagnosis probes are the intended users.
type FanOut []Stage

// Exec runs the stages concurrently.
func (f FanOut) Exec(ctx context.Context, w *Work) error {
	errs := make([]error, len(f))
	var wg sync.WaitGroup
	for i, st := range f {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = st.Exec(ctx, w)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Work is one job's passage through the pipeline.
type Work struct {
	Job      incident.Job
	Incident incident.Incident
	Mode     string
	Now      func() time.Time

	mu      sync.Mutex
	events  []incident.Event
	next    []FollowUp
	stopped bool
}

// FollowUp is a job a stage asks for, enqueued in the same transaction that
// completes the current job (a timer: verify a change later, expire a
// proposal).
type FollowUp struct {
	Kind      string
	Ref       string
	NotBefore time.Time
}

// NewWork starts a work item for a job.
func NewWork(job incident.Job, mode string, now func() time.Time) *Work {
	if now == nil {
		now = time.Now
	}
	return &Work{Job: job, Mode: mode, Now: now}
}

// Record adds an event to the incident's timeline. Events are written
// together with the job's completion, so a job that runs again after a
// crash does not record its steps twice.
func (w *Work) Record(eventType, reason string, details any) {
	w.RecordAs(incident.ActorService, eventType, reason, details)
}

// RecordAs is Record with another actor (a person who approved).
func (w *Work) RecordAs(actor, eventType, reason string, details any) {
	ev := w.Event(eventType, actor, reason, details)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.events = append(w.events, ev)
}

// Then asks for a follow-up job, enqueued when this job completes.
func (w *Work) Then(kind, ref string, notBefore time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.next = append(w.next, FollowUp{Kind: kind, Ref: ref, NotBefore: notBefore})
}

// FollowUps returns the jobs asked for with Then, in order.
func (w *Work) FollowUps() []FollowUp {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]FollowUp(nil), w.next...)
}

// Take removes and returns the events recorded so far, for a stage that
// must write them itself before acting (the intent record); Restore puts
// them back in front when that write did not happen.
func (w *Work) Take() []incident.Event {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.events
	w.events = nil
	return out
}

// Restore puts events taken with Take back before any recorded since.
func (w *Work) Restore(events []incident.Event) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.events = append(append([]incident.Event(nil), events...), w.events...)
}

// Event builds an event of this work's incident without recording it.
func (w *Work) Event(eventType, actor, reason string, details any) incident.Event {
	var raw json.RawMessage
	if details != nil {
		b, err := json.Marshal(details)
		if err != nil {
			b, _ = json.Marshal(map[string]string{"marshalError": err.Error()})
		}
		raw = b
	}
	if actor == "" {
		actor = incident.ActorService
	}
	return incident.Event{
		IncidentID:     w.Job.IncidentID,
		Time:           w.Now().UTC(),
		Type:           eventType,
		NotificationID: w.Job.NotificationID,
		CorrelationID:  w.Job.CorrelationID,
		Actor:          actor,
		Reason:         reason,
		Details:        raw,
	}
}

// Stop ends the pipeline after the current stage: a decision, not a failure.
func (w *Work) Stop() {
	w.mu.Lock()
	w.stopped = true
	w.mu.Unlock()
}

// Stopped reports whether a stage stopped the work.
func (w *Work) Stopped() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stopped
}

// Events returns what the stages recorded, in order.
func (w *Work) Events() []incident.Event {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]incident.Event(nil), w.events...)
}
