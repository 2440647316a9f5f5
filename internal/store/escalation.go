package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Escalation: every incident a policy governs has a priority (P0 most
// urgent … P3 least), which only ever rises; a person acknowledges it; an
// escalation hands it to people and is recorded once per cause; the
// notifications it sends wait in a persistent outbox, written in the same
// transaction as the escalation, until a delivery loop has handed them on.

// Timeline event types of escalation. The escalated event is written by
// Escalate's caller, acknowledged by Acknowledge's, notified by the
// delivery loop's (with SettleOutbox).
const (
	EventEscalated    = "escalated"    // handed to people (details: priority, reason, level, targets)
	EventAcknowledged = "acknowledged" // a person took the incident: its deadlines stop escalating
	EventNotified     = "notified"     // one notification delivered, or failing (details: channel, target, ok)
)

// Priorities, most urgent first.
var Priorities = []string{"P0", "P1", "P2", "P3"}

// PriorityRank orders priorities: P0 is 0, P3 is 3, anything else (no
// priority) 4.
func PriorityRank(p string) int {
	if i := slices.Index(Priorities, p); i >= 0 {
		return i
	}
	return len(Priorities)
}

// HigherPriority reports whether a is more urgent than b (a priority is
// higher than none).
func HigherPriority(a, b string) bool { return PriorityRank(a) < PriorityRank(b) }

// CheckPriority returns an error unless p is P0, P1, P2 or P3.
func CheckPriority(p string) error {
	if !slices.Contains(Priorities, p) {
		return fmt.Errorf("unknown priority %q (want P0, P1, P2 or P3)", p)
	}
	return nil
}

// EscalationState is an incident's priority and response state.
type EscalationState struct {
	IncidentID string `json:"incidentId"`
	// Status is the incident's status (firing/resolved).
	Status string `json:"status"`
	// Priority is the current priority; "" before the incident was
	// planned. It is only ever raised.
	Priority string `json:"priority,omitempty"`
	// PrioritySince is when the priority was set or last raised: its
	// response deadline counts from here.
	PrioritySince *time.Time `json:"prioritySince,omitempty"`
	// Level counts the response deadlines that passed without
	// acknowledgement (each raised the priority by one).
	Level int `json:"level"`
	// Escalations counts the escalations recorded; EscalatedPriority is
	// the highest priority people were handed the incident at.
	Escalations       int        `json:"escalations"`
	EscalatedPriority string     `json:"escalatedPriority,omitempty"`
	LastEscalatedAt   *time.Time `json:"lastEscalatedAt,omitempty"`
	// AcknowledgedAt is set once, by the first acknowledgement.
	AcknowledgedAt *time.Time `json:"acknowledgedAt,omitempty"`
	AcknowledgedBy string     `json:"acknowledgedBy,omitempty"`
	AckReason      string     `json:"ackReason,omitempty"`
}

// Acknowledged reports whether a person acknowledged the incident.
func (s EscalationState) Acknowledged() bool { return s.AcknowledgedAt != nil }

// Escalation is one hand-over of an incident to people. Escalate records
// it at most once per (IncidentID, Key), so a job that runs twice, or a
// deadline that fires twice, escalates once.
type Escalation struct {
	ID         string
	IncidentID string
	// Key names the cause, unique per incident: "deadline/P2" (the P2
	// deadline passed), "p0", "failed/<execution>", "job/<job id>".
	Key string
	// Priority is the priority the incident is handed over at; the
	// incident's priority is raised to it when lower.
	Priority string
	// Reason is the cause's class: deadline, failed, blocked, ineffective,
	// no-remedy, p0.
	Reason string
	// Level is the incident's escalation level after it; the stored level
	// is raised to it when lower.
	Level int
	At    time.Time // zero: now

	// Finish, when set, moves an execution to its outcome in the same
	// transaction: the outcome and its escalation are written together.
	Finish *ExecutionChange
	// Outbox are the notifications to deliver, one per target.
	Outbox []OutboxMessage
}

// ExecutionChange is a FinishExecution done inside another transaction.
type ExecutionChange struct {
	ID     string
	From   []string
	To     string
	Reason string
}

// Outbox message states.
const (
	OutboxPending = "pending" // waiting for a (first or next) delivery attempt at NotBefore
	OutboxLeased  = "leased"  // a delivery loop is sending it
	OutboxSent    = "sent"    // delivered
	OutboxFailed  = "failed"  // given up (permanent error or too old); recorded as such
)

// OutboxMessage is one notification to one target through one channel
// ("webhook"; other channels, such as Slack, add their own). The delivery
// loop leases messages like the worker leases jobs, so two replicas never
// send one at the same time.
type OutboxMessage struct {
	ID           int64           `json:"id"`
	IncidentID   string          `json:"incidentId"`
	EscalationID string          `json:"escalationId"`
	Channel      string          `json:"channel"`
	Target       string          `json:"target"`      // the configured target's name
	Destination  string          `json:"destination"` // where it goes (a URL), for the record
	Payload      json.RawMessage `json:"payload"`     // the body to send, JSON
	State        string          `json:"state"`
	Attempts     int             `json:"attempts"` // claims so far
	NotBefore    time.Time       `json:"notBefore"`
	LastError    string          `json:"lastError,omitempty"`
	CreatedAt    time.Time       `json:"createdAt"`
	DoneAt       *time.Time      `json:"doneAt,omitempty"`
}

// OutboxResult settles a leased message: State sent or failed (final), or
// pending to try again at NotBefore.
type OutboxResult struct {
	State     string
	NotBefore time.Time
	Error     string
}

// OutboxFilter selects outbox messages. Zero values mean "any".
type OutboxFilter struct {
	IncidentID string
	States     []string
	Limit      int // 0 means the default (100); capped at 1000
}

// ErrAcknowledged is returned by Acknowledge when the incident was
// acknowledged already. It wraps ErrConflict.
var ErrAcknowledged = fmt.Errorf("%w: already acknowledged", ErrConflict)

// PrepareEscalation checks e for Escalate and returns it as the store
// writes it: times in UTC, At defaulted to now, the messages pending at
// At (or their NotBefore) with the escalation's IDs.
func PrepareEscalation(e Escalation, now time.Time) (Escalation, error) {
	if e.ID == "" || e.IncidentID == "" || e.Key == "" {
		return e, errors.New("an escalation needs an ID, an IncidentID and a Key")
	}
	if err := CheckPriority(e.Priority); err != nil {
		return e, fmt.Errorf("escalation %s: %w", e.ID, err)
	}
	if e.At.IsZero() {
		e.At = now
	}
	e.At = UTC(e.At)
	if e.Finish != nil {
		if err := CheckExecState(e.Finish.To); err != nil {
			return e, fmt.Errorf("escalation %s: %w", e.ID, err)
		}
	}
	msgs := make([]OutboxMessage, len(e.Outbox))
	for i, m := range e.Outbox {
		if m.Channel == "" || m.Target == "" {
			return e, fmt.Errorf("escalation %s: an outbox message needs a Channel and a Target", e.ID)
		}
		if !json.Valid(m.Payload) {
			return e, fmt.Errorf("escalation %s: outbox payload for %s is not valid JSON", e.ID, m.Target)
		}
		m.IncidentID, m.EscalationID, m.State, m.Attempts, m.LastError, m.DoneAt = e.IncidentID, e.ID, OutboxPending, 0, "", nil
		if m.CreatedAt.IsZero() {
			m.CreatedAt = e.At
		}
		if m.NotBefore.IsZero() {
			m.NotBefore = m.CreatedAt
		}
		m.CreatedAt, m.NotBefore = UTC(m.CreatedAt), UTC(m.NotBefore)
		msgs[i] = m
	}
	e.Outbox = msgs
	return e, nil
}

// CheckOutboxResult returns an error unless r settles a leased message.
func CheckOutboxResult(r OutboxResult) error {
	switch r.State {
	case OutboxSent, OutboxFailed, OutboxPending:
		return nil
	}
	return fmt.Errorf("an outbox message cannot be settled as %q", r.State)
}
