// Package store is the durable state of the service: notifications as
// received, incidents, their timelines, the job queue the worker drains,
// and the state of guarded remediation: the execution ledger (intents and
// outcomes), proposals awaiting approval, the pause switch and maintenance
// windows; and the hash-chained audit trail every timeline event enters
// (package audit, docs/audit.md).
//
// Two implementations pass the same test suite (storetest): SQLite
// (modernc.org/sqlite, pure Go, WAL) and PostgreSQL (jackc/pgx/v5). Open picks
// one by DSN.
package store

import (
	"context"
	"errors"
	"time"

	"github.com/remediator/remediator/internal/incident"
	"github.com/remediator/remediator/internal/store/audit"
)

// ErrNotFound is returned when a looked-up row does not exist.
var ErrNotFound = errors.New("not found")

// ErrUnavailable wraps errors that mean the store cannot take writes now
// (connection refused, database locked past its timeout, disk full). Intake
// answers 503 for these so Alertmanager sends again.
var ErrUnavailable = errors.New("store unavailable")

// IncidentFilter selects incidents for listing. Zero values mean "any".
type IncidentFilter struct {
	Status    string
	AlertName string
	Limit     int // 0 means the default (100); capped at 1000
}

// Store is the whole persistence contract.
type Store interface {
	// Ingest stores a notification and, in the same transaction, upserts one
	// incident per alert (keyed by fingerprint+startsAt), appends timeline
	// events (received | duplicate | resolved) and enqueues jobs for the
	// worker (JobFiring for a new firing episode, JobResolved when a firing
	// episode resolves). It returns only after the transaction is durable.
	// Safe for concurrent use by many goroutines and many processes sharing
	// the database: the same episode never becomes two incidents.
	Ingest(ctx context.Context, n *incident.Notification) (incident.IngestResult, error)

	// ClaimJobs leases up to limit due jobs (oldest first) to worker for the
	// lease duration. A job is due when it is pending and its NotBefore has
	// come, or when its lease expired without completion (crash recovery).
	// Jobs of one incident are never leased two at a time, and its due jobs
	// are handed out in id order; a job retrying after FailJob keeps its
	// place (later jobs of its incident wait for it), but a job scheduled
	// for later (NotBefore in the future, never attempted) does not hold
	// back later jobs that are due.
	ClaimJobs(ctx context.Context, worker string, limit int, lease time.Duration) ([]incident.Job, error)
	// CompleteJob is CompleteJobWith without follow-up jobs.
	CompleteJob(ctx context.Context, worker string, jobID int64, events ...incident.Event) error
	// CompleteJobWith marks a job done, enqueues next and appends the events
	// its stages recorded, in one transaction: a job that runs again after a
	// crash never records its steps (or its follow-ups) twice. Only the
	// lease holder may complete a job (else ErrLeaseLost; ErrNotFound when
	// there is no such job).
	CompleteJobWith(ctx context.Context, worker string, jobID int64, next []NewJob, events ...incident.Event) error
	// FailJob releases a job for a retry after the given delay, recording the error.
	FailJob(ctx context.Context, worker string, jobID int64, cause string, retryAfter time.Duration) error
	// Enqueue adds jobs in one transaction. A job for an unknown incident
	// fails the call with ErrNotFound and nothing is enqueued.
	Enqueue(ctx context.Context, jobs ...NewJob) error

	// AppendEvents appends events to incidents' timelines.
	AppendEvents(ctx context.Context, events ...incident.Event) error

	// Incident returns one incident with its timeline, oldest event first.
	Incident(ctx context.Context, id string) (incident.Incident, []incident.Event, error)
	// Incidents lists incidents, newest first.
	Incidents(ctx context.Context, f IncidentFilter) ([]incident.Incident, error)
	// Notification returns a stored notification (with Body) by id.
	Notification(ctx context.Context, id string) (incident.Notification, error)

	// GuardState reads, in one read-only transaction, what the guards need
	// to decide on an execution for q's target (dry runs, approval
	// previews). It fails when the pause state cannot be read (callers
	// fail closed) and with ErrNotFound when q names an unknown incident.
	GuardState(ctx context.Context, q GuardQuery) (GuardState, error)
	// BeginExecution is the atomic "guards pass ⇒ intent written" step. In
	// ONE transaction, serialized with every other BeginExecution (also of
	// other processes sharing the database), with SetPause, AddWindow and
	// DeleteWindow, and with changes to the incident's status, it reads the
	// GuardState exactly as GuardState would and calls decide. If decide
	// returns an error, nothing is written and that error is returned
	// unchanged. Otherwise it inserts e with State intent (ErrExists when
	// e's ID is taken, or its (IncidentID, Step) by an execution that is
	// not abandoned), appends events, commits
	// durably and returns nil. decide runs inside the transaction: it must
	// be quick and must not call the store. A nil decide allows.
	BeginExecution(ctx context.Context, e Execution, q GuardQuery, decide func(GuardState) error, events ...incident.Event) error
	// FinishExecution moves execution id from one of the states in from to
	// state to, with reason, and appends events, in one transaction. It
	// stamps UpdatedAt (and AppliedAt when to is ExecApplied). It returns
	// ErrConflict (writing nothing) when the execution is in another state,
	// ErrNotFound when there is no such execution, ErrExists when moving an
	// abandoned execution out of abandoned while its step was taken again.
	FinishExecution(ctx context.Context, id string, from []string, to, reason string, events ...incident.Event) error
	// Executions lists executions, oldest first.
	Executions(ctx context.Context, f ExecutionFilter) ([]Execution, error)

	// SetPause sets the global pause switch (a persisted singleton; At
	// defaults to now) and appends events, in one transaction.
	SetPause(ctx context.Context, p PauseState, events ...incident.Event) error
	// Pause reads the global pause switch.
	Pause(ctx context.Context) (PauseState, error)
	// AddWindow stores an ad-hoc maintenance window (ErrExists when its ID
	// is taken).
	AddWindow(ctx context.Context, w Window) error
	// Windows lists the windows with End > at, ordered by Start.
	Windows(ctx context.Context, at time.Time) ([]Window, error)
	// DeleteWindow removes a window (ErrNotFound when there is none).
	DeleteWindow(ctx context.Context, id string) error

	// Propose stores a pending proposal (ErrExists when its (IncidentID,
	// Step) or ID is taken), enqueues next (e.g. its expiry job) and appends
	// events, in one transaction.
	Propose(ctx context.Context, p Proposal, next []NewJob, events ...incident.Event) error
	// Proposals lists an incident's proposals, oldest first.
	Proposals(ctx context.Context, incidentID string) ([]Proposal, error)
	// Proposal returns one proposal (ErrNotFound when there is none).
	Proposal(ctx context.Context, id string) (Proposal, error)
	// DecideProposal moves a pending proposal to to (approved, rejected or
	// expired), recording by, reason and at (zero: now), enqueues next and
	// appends events, in one transaction, and returns the updated proposal.
	// When the proposal is not pending it returns ErrConflict; when
	// approving at or after ExpiresAt, ErrExpired; in both cases nothing is
	// written and the current proposal is returned with the error.
	DecideProposal(ctx context.Context, id, to, by, reason string, at time.Time, next []NewJob, events ...incident.Event) (Proposal, error)

	// RaisePriority sets the incident's priority to p (P0–P3) when it has
	// none or a lower one — never lowering it — stamping PrioritySince
	// with at (zero: now), and only then enqueues next (its deadline job),
	// in one transaction. It returns the state after and whether the
	// priority changed (ErrNotFound for an unknown incident).
	RaisePriority(ctx context.Context, incidentID, p string, at time.Time, next []NewJob) (EscalationState, bool, error)
	// Escalate records e at most once per (IncidentID, Key) — ErrExists,
	// writing nothing, when the key is taken — and in the same
	// transaction raises the incident's priority (PrioritySince = At when
	// it rises) and level to e's when lower, counts the escalation,
	// applies e.Finish (ErrConflict/ErrNotFound/ErrExists as
	// FinishExecution), stores e.Outbox as pending messages, enqueues next
	// and appends events.
	Escalate(ctx context.Context, e Escalation, next []NewJob, events ...incident.Event) error
	// Acknowledge records that by took the incident (first time only:
	// else ErrAcknowledged, with the state as it is), appending events in
	// the same transaction. ErrNotFound for an unknown incident.
	Acknowledge(ctx context.Context, incidentID, by, reason string, at time.Time, events ...incident.Event) (EscalationState, error)
	// EscalationState reads an incident's priority and response state.
	EscalationState(ctx context.Context, incidentID string) (EscalationState, error)
	// Outbox lists outbox messages, oldest first.
	Outbox(ctx context.Context, f OutboxFilter) ([]OutboxMessage, error)
	// ClaimOutbox leases up to limit due messages (pending with NotBefore
	// come, or leased with the lease expired), oldest first, counting an
	// attempt on each.
	ClaimOutbox(ctx context.Context, owner string, limit int, lease time.Duration) ([]OutboxMessage, error)
	// SettleOutbox ends owner's lease of message id with r and appends
	// events, in one transaction (ErrLeaseLost when owner does not hold
	// the lease, ErrNotFound when there is no such message).
	SettleOutbox(ctx context.Context, owner string, id int64, r OutboxResult, events ...incident.Event) error
	// OutboxDepth counts the messages not yet delivered nor given up.
	OutboxDepth(ctx context.Context) (int, error)
	// OpenIncidents counts the firing incidents by priority ("" for those
	// without one).
	OpenIncidents(ctx context.Context) (map[string]int, error)

	// The audit trail (package audit; docs/audit.md). SealAudit,
	// AppendAudit and CleanupAudit are serialized with each other, also
	// across processes sharing the database (SQLite: the one writer;
	// PostgreSQL: an advisory transaction lock). On PostgreSQL none of them
	// is on the path of Ingest or of the worker's transactions; SQLite,
	// which serializes all writes anyway, seals a write's events inside
	// the write's own transaction (docs/audit.md), so SealAudit only has a
	// backlog to seal there.

	// SealAudit appends up to max unsealed events to the audit chain, in
	// event id order, in one transaction, and returns how many it sealed.
	// Each gets the next seq (gap-free), the previous record's hash as
	// prev_hash, and its hash. On PostgreSQL event ids are not commit
	// ordered: an event that commits after higher ids were sealed is
	// sealed by a later call, with a later seq. Every event is sealed
	// exactly once.
	SealAudit(ctx context.Context, max int) (int, error)
	// AppendAudit appends service-level records — events not tied to an
	// incident (IncidentID must be empty), such as pause/resume and
	// maintenance windows — straight into the chain, in one transaction.
	// Like AppendEvents, a zero Time means now and an empty Actor
	// incident.ActorService.
	AppendAudit(ctx context.Context, events ...incident.Event) error
	// ScanAudit calls fn for each record f selects, in seq order (or
	// (time, seq) order with f.ByTime), streaming: fn gets one record at a
	// time, valid only until it returns. An error from fn (or the end of
	// ctx) stops the scan and is returned.
	ScanAudit(ctx context.Context, f audit.Filter, fn func(*audit.Record) error) error
	// AuditState returns the chain's head, its latest checkpoint and how
	// many events wait to be sealed.
	AuditState(ctx context.Context) (audit.State, error)
	// CleanupAudit deletes the longest prefix of the chain whose records
	// are all older than before, in chunks, each chunk in one transaction
	// with a checkpoint (the last deleted record's seq and hash) and the
	// stats decremented; it then appends a service-level audit-cleanup
	// record by actor. Events (the incidents' timelines) are not deleted.
	CleanupAudit(ctx context.Context, before time.Time, actor, correlationID string) (audit.CleanupResult, error)
	// AuditStats returns the counts the sealer and cleanup maintain, the
	// oldest and newest record times and the chain state, without
	// scanning the records.
	AuditStats(ctx context.Context) (audit.Stats, error)

	// SlackState is the Slack notifier's: root messages and the signatures
	// of recent interaction requests.
	SlackState

	// Ping checks the store answers (for /health and /readyz).
	Ping(ctx context.Context) error
	Close() error
}
