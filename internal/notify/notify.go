// Package notify is the platform-neutral model of what people are told
// about an incident. One Notification is built from an incident and one
// event of its timeline (Build, with the events before it for context);
// renderers turn it into one channel's messages (internal/slack is the
// first; Microsoft Teams or a generic webhook would be one more renderer
// of the same Notification).
//
// Delivery is at least once and never blocks remediation: the executor
// records events on the timeline; a feed outside this package (internal/slack
// Feed, following the audit trail) calls a Deliverer for each notable event
// and schedules retries from the typed errors (RetryAfter, Retryable,
// Permanent).
package notify

import (
	"context"
	"time"
)

// Kind is what happened, one per notable timeline event.
type Kind string

// The kinds, in the order they usually happen.
const (
	KindFiring      Kind = "firing"      // a new incident (received)
	KindUnmatched   Kind = "unmatched"   // no policy governs it: nothing will be done
	KindDiagnosis   Kind = "diagnosis"   // the probes' evidence
	KindPlan        Kind = "plan"        // the decision and the exact change
	KindProposal    Kind = "proposal"    // dry-run or awaiting approval: approve/reject
	KindApproved    Kind = "approved"    // a person approved the proposal
	KindRejected    Kind = "rejected"    // a person rejected it
	KindExpired     Kind = "expired"     // nobody decided in time, or the alert resolved
	KindBlocked     Kind = "blocked"     // a guard or pre-flight check said no
	KindApplied     Kind = "applied"     // the change was made
	KindRolledOut   Kind = "rolled-out"  // its rollout completed
	KindVerified    Kind = "verified"    // the alert resolved after the change
	KindIneffective Kind = "ineffective" // rolled out, the alert still fires: next remedy
	KindFailed      Kind = "failed"      // Apply or the rollout failed
	KindReconciled  Kind = "reconciled"  // an interrupted attempt was settled by reading the cluster
	KindEscalated   Kind = "escalated"   // handed to people
	KindResolved    Kind = "resolved"    // the alert resolved: the incident is closed
)

// Status is where the incident stands, shown on the incident's root
// message (which a channel updates in place when it changes).
type Status string

// The statuses: firing → (awaiting approval) → remediating → verified or
// failed → resolved; escalated when people own it.
const (
	StatusFiring      Status = "firing"
	StatusAwaiting    Status = "awaiting-approval"
	StatusRemediating Status = "remediating"
	StatusVerified    Status = "verified"
	StatusFailed      Status = "failed"
	StatusEscalated   Status = "escalated"
	StatusResolved    Status = "resolved"
)

// Label is the status as people read it.
func (s Status) Label() string {
	switch s {
	case StatusAwaiting:
		return "Awaiting approval"
	case "":
		return "Unknown"
	}
	return string(s[0]-'a'+'A') + string(s[1:])
}

// Alert is the alert an incident is an episode of.
type Alert struct {
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels,omitempty"`
	// Summary is the alert's summary (or description) annotation.
	Summary  string    `json:"summary,omitempty"`
	StartsAt time.Time `json:"startsAt"`
}

// Link is a URL people may follow.
type Link struct {
	Label string `json:"label"`
	URL   string `json:"url"`
}

// Link labels.
const (
	LinkSource       = "Source"       // the alert's generatorURL (Prometheus graph)
	LinkAlertmanager = "Alertmanager" // the alert in Alertmanager (its externalURL)
	LinkIncident     = "Incident"     // the incident in this service's API
)

// Action is a decision a person can take from the message (proposals).
type Action struct {
	ID    string `json:"id"`    // ActionApprove or ActionReject
	Label string `json:"label"` // "Approve"
	Value string `json:"value"` // the incident id
	Style string `json:"style"` // "primary" or "danger"
}

// Action ids.
const (
	ActionApprove = "approve"
	ActionReject  = "reject"
)

// Notification is one thing to tell people about one incident.
type Notification struct {
	Kind       Kind      `json:"kind"`
	IncidentID string    `json:"incidentId"`
	EventID    int64     `json:"eventId,omitempty"`
	Time       time.Time `json:"time"`
	Alert      Alert     `json:"alert"`
	// Target is the workload ("Deployment prod/platform-service"), once a
	// policy resolved it; Namespace is the target's, else the alert's.
	Target    string `json:"target,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	Policy    string `json:"policy,omitempty"`
	// Priority (P0–P3) once planned; "" before.
	Priority string `json:"priority,omitempty"`
	// Status is the incident's status after this event.
	Status Status `json:"status"`
	// RootChanged says the status or the priority changed with this event,
	// so a channel that keeps one root message per incident updates it.
	RootChanged bool `json:"rootChanged,omitempty"`
	// Title is one short line ("Plan (P0)"); Summary the human part: the
	// exact change, the top evidence, the outcome — never a dump.
	Title   string `json:"title"`
	Summary string `json:"summary,omitempty"`
	// Bullets are a few short supporting lines (top evidence).
	Bullets []string `json:"bullets,omitempty"`
	// Change is the exact change this incident's latest plan makes, short
	// ("rollback platform-service rev 7 → 6, image a → b"); "" before any.
	Change string `json:"change,omitempty"`
	// Reason is why: the condition that chose the remedy, the guard's reason.
	Reason string `json:"reason,omitempty"`
	// Actor is who did it ("remediator", "slack:U123 (alice)").
	Actor     string    `json:"actor,omitempty"`
	ExpiresAt time.Time `json:"expiresAt,omitzero"`
	Links     []Link    `json:"links,omitempty"`
	Actions   []Action  `json:"actions,omitempty"`
}

// Deliverer delivers one notification to one channel (Slack, a webhook).
// The outbox calls it, at least once per notification and, for one
// incident, in timeline order, one at a time. Errors say what to do next:
// *RetryAfter (wait that long), *Retryable (retry with backoff),
// *Permanent (drop it and log); any other error is treated as Retryable.
type Deliverer interface {
	Deliver(ctx context.Context, n Notification) error
}

// DeliverFunc adapts a function to Deliverer.
type DeliverFunc func(ctx context.Context, n Notification) error

// Deliver calls f.
func (f DeliverFunc) Deliver(ctx context.Context, n Notification) error { return f(ctx, n) }
