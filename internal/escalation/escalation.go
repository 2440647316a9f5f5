// Package escalation hands incidents to people: by priority, when
// automation cannot or did not fix them, and when a response deadline
// passes without acknowledgement.
//
//   - Priority: every incident a policy governs gets the priority of its
//     plan (Prioritize, after the plan is recorded). It only ever rises:
//     a later plan may raise it, a missed deadline raises it one level.
//   - Deadlines: the runbook's response times (P0 immediate, P1 30 min,
//     P2 2 h, P3 24 h) are "deadline" jobs in the store's queue (Ref: the
//     priority), scheduled in the transaction that sets the priority, so
//     they survive restarts and move with the worker. When one fires and the
//     incident is still firing, unacknowledged and at that priority, it
//     escalates one level (P3 → P2 → P1 → P0) and schedules that level's
//     deadline. Each fires once: the escalation is recorded per
//     (incident, "deadline/<priority>").
//   - Outcomes: a remediation that failed, was blocked, did not resolve the
//     alert, or had no remedy escalates at once (Escalate, called by the
//     executor). A P0 incident always notifies its targets at once.
//   - Notifications: Escalate writes one outbox message per configured
//     target in the same transaction as the escalated event; a separate
//     delivery loop (Deliverer) sends them, so a slow or dead receiver
//     never delays remediation, and nothing is lost across restarts.
package escalation

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/remediator/remediator/internal/incident"
	"github.com/remediator/remediator/internal/pipeline"
	"github.com/remediator/remediator/internal/policy"
	"github.com/remediator/remediator/internal/store"
)

// KindDeadline is the job kind of a response deadline (Ref: the priority
// whose deadline it is).
const KindDeadline = "deadline"

// Timeline event types.
const (
	EventEscalated    = store.EventEscalated
	EventAcknowledged = store.EventAcknowledged
	EventNotified     = store.EventNotified
)

// Reasons an incident escalates (remediator_escalations_total{reason}).
const (
	ReasonDeadline    = "deadline"    // a response deadline passed without acknowledgement
	ReasonFailed      = "failed"      // a remediation failed (Apply, its rollout, or it could not be planned)
	ReasonBlocked     = "blocked"     // a guard or pre-flight check refused the remediation
	ReasonIneffective = "ineffective" // the ladder's remediations ran and the alert still fires
	ReasonNoRemedy    = "no-remedy"   // the policy has no remedy for it (or no target)
	ReasonP0          = "p0"          // a P0 incident: the on-call lead is told at once
)

// Reasons are all the reasons.
var Reasons = []string{ReasonDeadline, ReasonFailed, ReasonBlocked, ReasonIneffective, ReasonNoRemedy, ReasonP0}

// Channels.
const ChannelWebhook = "webhook"

// Webhook is one outgoing webhook target.
type Webhook struct {
	// Name identifies the target on outbox messages and events; unique.
	Name            string
	URL             string
	BearerTokenFile string        // read at each delivery, so it can rotate
	Timeout         time.Duration // per request; 0: 10s
}

// Level is who is told at one priority.
type Level struct {
	Webhooks []Webhook
	// Mention is put in the notification for the receiver to page or
	// mention (e.g. "@oncall-lead").
	Mention string
}

// Targets are the levels by priority.
type Targets map[policy.Priority]Level

// Store is what escalation needs from the store.
type Store interface {
	RaisePriority(ctx context.Context, incidentID, p string, at time.Time, next []store.NewJob) (store.EscalationState, bool, error)
	Escalate(ctx context.Context, e store.Escalation, next []store.NewJob, events ...incident.Event) error
	EscalationState(ctx context.Context, incidentID string) (store.EscalationState, error)
	Executions(ctx context.Context, f store.ExecutionFilter) ([]store.Execution, error)
}

// Escalator records escalations and the notifications they send.
type Escalator struct {
	Store   Store
	Targets Targets
	// ExternalURL is the service's URL as people reach it, for the links
	// in notifications ("" gives paths only).
	ExternalURL string
	Metrics     *Metrics
	Log         *zap.Logger
	Now         func() time.Time
	// Kick, when set, is called after an escalation is stored (it wakes
	// the delivery loop). It must not block.
	Kick func()
}

func (x *Escalator) now() time.Time {
	if x.Now != nil {
		return x.Now().UTC()
	}
	return time.Now().UTC()
}

func (x *Escalator) log() *zap.Logger {
	if x.Log != nil {
		return x.Log
	}
	return zap.NewNop()
}

// Above is the priority one level above p (P3 → P2 → P1 → P0); false for
// P0, which has none.
func Above(p policy.Priority) (policy.Priority, bool) {
	switch p {
	case policy.P3:
		return policy.P2, true
	case policy.P2:
		return policy.P1, true
	case policy.P1:
		return policy.P0, true
	}
	return "", false
}

// deadlineJob is p's deadline, counted from at; none for P0 (its
// response is immediate: it is notified at once, and there is no level
// above it).
func deadlineJob(w *pipeline.Work, p policy.Priority, at time.Time) []store.NewJob {
	if _, ok := Above(p); !ok {
		return nil
	}
	return []store.NewJob{{IncidentID: w.Incident.ID, Kind: KindDeadline, Ref: string(p),
		NotificationID: w.Job.NotificationID, CorrelationID: w.Job.CorrelationID, CreatedAt: at, NotBefore: at.Add(p.Deadline())}}
}

// Prioritize records the priority of the incident's plan: raises the
// incident to it (never lowers it) and, when it rises, schedules its
// deadline in the same transaction. A P0 incident is handed to the P0
// targets at once (once per incident) unless notifyP0 is false — the
// caller is about to escalate it anyway — or a person acknowledged it.
func (x *Escalator) Prioritize(ctx context.Context, w *pipeline.Work, p policy.Priority, notifyP0 bool) error {
	if p == "" {
		return nil
	}
	now := x.now()
	st, _, err := x.Store.RaisePriority(ctx, w.Incident.ID, string(p), now, deadlineJob(w, p, now))
	if err != nil {
		return fmt.Errorf("priority: %w", err)
	}
	if st.Priority != string(policy.P0) || st.EscalatedPriority == string(policy.P0) || st.Acknowledged() || !notifyP0 {
		return nil
	}
	return x.Escalate(ctx, w, Notice{Key: "p0", Priority: policy.P0, Reason: ReasonP0,
		Text: "P0 (critical): immediate response; handed to the on-call lead"})
}

// Notice is one escalation to record.
type Notice struct {
	// Key names the cause, unique per incident (see store.Escalation).
	Key string
	// Priority to hand the incident over at; the incident's own when
	// higher; P1 when neither is set.
	Priority policy.Priority
	Reason   string // one of Reasons
	Text     string // why, for people
	Action   string // the action concerned, if any
	// Level is the escalation level after this one (deadline escalations
	// raise it); the incident's when lower.
	Level int
	// Finish moves an execution to its outcome in the same transaction;
	// Before are events recorded before the escalated one (the outcome's).
	Finish *store.ExecutionChange
	Before []incident.Event
	// Next are jobs to enqueue with it (the next deadline).
	Next []store.NewJob
}

// Escalate records the escalation — the events the work recorded so far,
// n.Before, the escalated event and one outbox message per target of its
// priority, with n.Finish and n.Next — in one store transaction, once per
// (incident, n.Key): when the key is taken (an earlier run of the job
// escalated already) nothing is recorded again.
func (x *Escalator) Escalate(ctx context.Context, w *pipeline.Work, n Notice) error {
	st, err := x.Store.EscalationState(ctx, w.Incident.ID)
	if err != nil {
		return fmt.Errorf("escalate: %w", err)
	}
	pr := n.Priority
	if store.HigherPriority(st.Priority, string(pr)) {
		pr = policy.Priority(st.Priority)
	}
	if pr == "" {
		pr = policy.P1
	}
	level := max(st.Level, n.Level)
	execs, err := x.Store.Executions(ctx, store.ExecutionFilter{IncidentID: w.Incident.ID})
	if err != nil {
		return fmt.Errorf("escalate: read executions: %w", err)
	}
	if f := n.Finish; f != nil {
		for i := range execs {
			if execs[i].ID == f.ID {
				execs[i].State, execs[i].Reason = f.To, f.Reason
			}
		}
	}
	now := x.now()
	esc := store.Escalation{ID: incident.NewID(), IncidentID: w.Incident.ID, Key: n.Key, Priority: string(pr),
		Reason: n.Reason, Level: level, At: now, Finish: n.Finish}
	inc := w.Incident
	inc.Status = st.Status // as of now, not as of the job's start
	var respondBy *time.Time
	if _, ok := Above(pr); ok {
		since := now
		if st.Priority == string(pr) && st.PrioritySince != nil {
			since = *st.PrioritySince
		}
		t := since.Add(pr.Deadline())
		respondBy = &t
	}
	lvl := x.Targets[pr]
	b := payloadBuilder{
		escalation: esc, incident: inc, state: st, previous: st.Priority, text: n.Text, action: n.Action,
		execs: execs, respondBy: respondBy, externalURL: x.ExternalURL, mention: lvl.Mention,
	}
	names := make([]string, 0, len(lvl.Webhooks))
	for _, wh := range lvl.Webhooks {
		body, err := b.build(Target{Name: wh.Name, Channel: ChannelWebhook, Mention: lvl.Mention})
		if err != nil {
			return fmt.Errorf("escalate: payload for %s: %w", wh.Name, err)
		}
		esc.Outbox = append(esc.Outbox, store.OutboxMessage{Channel: ChannelWebhook, Target: wh.Name,
			Destination: redactURL(wh.URL), Payload: body})
		names = append(names, wh.Name)
	}
	text := fmt.Sprintf("escalated (%s): %s", pr, n.Text)
	if len(names) == 0 {
		text += "; no notification target is configured for " + string(pr)
	}
	details := map[string]any{
		"priority": pr, "action": n.Action, "deadline": pr.Deadline().String(), "reason": n.Reason,
		"escalation": esc.ID, "key": n.Key, "level": level, "targets": names,
	}
	if st.Priority != "" && st.Priority != string(pr) {
		details["previousPriority"] = st.Priority
	}
	if lvl.Mention != "" {
		details["mention"] = lvl.Mention
	}
	if respondBy != nil {
		details["respondBy"] = respondBy
	}
	next := n.Next
	if next == nil && store.HigherPriority(string(pr), st.Priority) {
		next = deadlineJob(w, pr, now) // the escalation sets the priority: its deadline starts
	}
	ev := w.Event(EventEscalated, "", text, details)
	taken := w.Take()
	events := append(append(append([]incident.Event(nil), taken...), n.Before...), ev)
	err = x.Store.Escalate(ctx, esc, next, events...)
	switch {
	case errors.Is(err, store.ErrExists) && n.Finish == nil:
		// Recorded by an earlier run of this job, or the deadline fired
		// already: once is enough.
		w.Restore(taken)
		x.log().Info("escalation already recorded", zap.String("incident", w.Incident.ID), zap.String("key", n.Key))
		return nil
	case err != nil:
		w.Restore(taken)
		return fmt.Errorf("escalate: %w", err)
	}
	if x.Metrics != nil {
		x.Metrics.Escalations.WithLabelValues(string(pr), n.Reason).Inc()
	}
	if x.Kick != nil && len(esc.Outbox) > 0 {
		x.Kick()
	}
	return nil
}

// Stage handles deadline jobs.
func (x *Escalator) Stage() pipeline.Stage { return pipeline.StageFunc(x.deadline) }

// deadline runs when the response deadline of priority Ref passed. An
// incident that resolved, was acknowledged, or rose above Ref meanwhile
// (its own deadline job covers it) is left alone.
func (x *Escalator) deadline(ctx context.Context, w *pipeline.Work) error {
	ref := policy.Priority(w.Job.Ref)
	st, err := x.Store.EscalationState(ctx, w.Incident.ID)
	if err != nil {
		return fmt.Errorf("deadline: %w", err)
	}
	if st.Status == incident.StatusResolved || st.Acknowledged() || st.Priority != string(ref) {
		return nil
	}
	up, ok := Above(ref)
	if !ok {
		return nil
	}
	since := "planning"
	if st.PrioritySince != nil {
		since = st.PrioritySince.Format(time.RFC3339)
	}
	now := x.now()
	return x.Escalate(ctx, w, Notice{
		Key: "deadline/" + string(ref), Priority: up, Reason: ReasonDeadline, Level: st.Level + 1,
		Text: fmt.Sprintf("not acknowledged within the %s response time of %s (since %s); raised to %s",
			ref, ref.Deadline(), since, up),
		Next: deadlineJob(w, up, now),
	})
}
