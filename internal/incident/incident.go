// Package incident holds the domain types every stage of the pipeline
// shares: the notification as received, the incident (one episode of one
// alert), its timeline events, and the jobs the worker runs.
//
// The words follow docs/glossary (notification, alert, incident, event).
package incident

import (
	"encoding/json"
	"time"

	"github.com/google/uuid"
)

// Alert statuses as Alertmanager sends them.
const (
	StatusFiring   = "firing"
	StatusResolved = "resolved"
)

// Event types recorded on an incident's timeline. Later stages add their
// own (diagnosed, planned, blocked, applied, ...).
const (
	EventReceived  = "received"  // first firing notification of the episode
	EventDuplicate = "duplicate" // a re-send of an episode already on record
	EventResolved  = "resolved"  // the episode ended
	EventUnmatched = "unmatched" // no policy matches: nothing will be done
	EventCancelled = "cancelled" // pending work dropped because the alert resolved
)

// Job kinds: what the worker must do for an incident.
const (
	JobFiring   = "firing"   // a new episode: run the remediation pipeline
	JobResolved = "resolved" // the episode ended: cancel what is pending
	JobVerify   = "verify"   // check an applied change's alert resolved (Ref: the execution)
	JobApproved = "approved" // execute an approved proposal (Ref: the proposal)
	JobExpire   = "expire"   // expire a proposal nobody decided on (Ref: the proposal)
)

// Notification is one webhook body from Alertmanager, stored as received.
type Notification struct {
	ID            string
	ReceivedAt    time.Time
	CorrelationID string
	Receiver      string
	GroupKey      string
	Status        string
	Reason        string // notification_reason, when the sender is new enough to send it
	ExternalURL   string
	Body          []byte // the raw JSON, kept for audit and replay
	Alerts        []Alert
}

// Alert is one entry of a notification's alerts[].
type Alert struct {
	Status       string
	Fingerprint  string
	StartsAt     time.Time
	EndsAt       time.Time
	Labels       map[string]string
	Annotations  map[string]string
	GeneratorURL string
}

// AlertName is the value of the alertname label.
func (a Alert) AlertName() string { return a.Labels["alertname"] }

// Incident is one episode of one alert, keyed by fingerprint + startsAt.
type Incident struct {
	ID           string            `json:"id"`
	Fingerprint  string            `json:"fingerprint"`
	StartsAt     time.Time         `json:"startsAt"`
	AlertName    string            `json:"alertname"`
	Namespace    string            `json:"namespace,omitempty"`
	Status       string            `json:"status"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
	FirstSeen    time.Time         `json:"firstSeen"`
	LastSeen     time.Time         `json:"lastSeen"`
	ResolvedAt   *time.Time        `json:"resolvedAt,omitempty"`
	Receipts     int               `json:"receipts"`   // notifications that carried this episode
	Duplicates   int               `json:"duplicates"` // receipts after the first that changed nothing
}

// Event is one entry on an incident's timeline.
type Event struct {
	ID             int64           `json:"id"`
	IncidentID     string          `json:"incidentId"`
	Time           time.Time       `json:"time"`
	Type           string          `json:"type"`
	NotificationID string          `json:"notificationId,omitempty"`
	CorrelationID  string          `json:"correlationId,omitempty"`
	Actor          string          `json:"actor"`
	Reason         string          `json:"reason,omitempty"`
	Details        json.RawMessage `json:"details,omitempty"`
}

// Job is a unit of asynchronous work for one incident, created in the same
// transaction that stored the notification (or that completed the job
// before it), so it survives crashes.
type Job struct {
	ID             int64
	IncidentID     string
	Kind           string
	Ref            string // the execution or proposal the job is about; "" for firing/resolved jobs
	NotificationID string
	CorrelationID  string
	Attempts       int
	CreatedAt      time.Time
}

// Outcome of one alert at intake.
const (
	OutcomeNew       = "new"
	OutcomeDuplicate = "duplicate"
	OutcomeResolved  = "resolved"
)

// AlertOutcome says what intake did with one alert.
type AlertOutcome struct {
	Fingerprint string
	IncidentID  string
	Outcome     string
}

// IngestResult is what storing a notification did.
type IngestResult struct {
	NotificationID string
	Alerts         []AlertOutcome
}

// Count returns how many alerts had the given outcome.
func (r IngestResult) Count(outcome string) int {
	n := 0
	for _, a := range r.Alerts {
		if a.Outcome == outcome {
			n++
		}
	}
	return n
}

// NewID returns a new time-ordered identifier (UUIDv7).
func NewID() string {
	return uuid.Must(uuid.NewV7()).String()
}

// Actor is the name the service records as the actor of its own steps.
const ActorService = "remediator"
