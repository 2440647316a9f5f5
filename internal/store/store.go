// Package store is the durable state of the service: notifications as
// received, incidents, their timelines, and the job queue the worker drains.
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

	// ClaimJobs leases up to limit pending jobs (oldest first) to worker for
	// the lease duration. A job whose lease expired without completion is
	// claimable again (crash recovery). Jobs of one incident are handed out
	// in order and never two at a time.
	ClaimJobs(ctx context.Context, worker string, limit int, lease time.Duration) ([]incident.Job, error)
	// CompleteJob marks a job done and appends the events its stages
	// recorded, in one transaction: a job that runs again after a crash never
	// records its steps twice. Only the lease holder may complete a job.
	CompleteJob(ctx context.Context, worker string, jobID int64, events ...incident.Event) error
	// FailJob releases a job for a retry after the given delay, recording the error.
	FailJob(ctx context.Context, worker string, jobID int64, cause string, retryAfter time.Duration) error

	// AppendEvents appends events to incidents' timelines.
	AppendEvents(ctx context.Context, events ...incident.Event) error

	// Incident returns one incident with its timeline, oldest event first.
	Incident(ctx context.Context, id string) (incident.Incident, []incident.Event, error)
	// Incidents lists incidents, newest first.
	Incidents(ctx context.Context, f IncidentFilter) ([]incident.Incident, error)
	// Notification returns a stored notification (with Body) by id.
	Notification(ctx context.Context, id string) (incident.Notification, error)

	// Ping checks the store answers (for /health and /readyz).
	Ping(ctx context.Context) error
	Close() error
}
