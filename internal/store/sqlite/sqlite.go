// Package sqlite is the SQLite implementation of store.Store, on the pure-Go
// modernc.org/sqlite driver.
//
// The database runs in WAL mode with synchronous=FULL, so a committed
// Ingest survives power loss. Writes go through one connection (SQLite has
// one writer anyway) and Ingest calls are group-committed; reads use a
// separate pool of read-only connections that WAL lets run alongside the
// writer.
package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/remediator/remediator/internal/incident"
	"github.com/remediator/remediator/internal/store"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// Store is a store.Store on one SQLite database file.
type Store struct {
	w    *sql.DB // the single writer connection
	r    *sql.DB // read-only pool
	opts store.Options
	c    *store.Committer

	updIncident, insEvent, insJob *sql.Stmt // single-row statements
	// multi-row statements of the committer
	mNotifications, mIncidents, mEvents, mJobs *multiStmt
	// the audit trail (audit.go)
	audit auditStmts

	closeOnce sync.Once
	closeErr  error
}

var _ store.Store = (*Store)(nil)

// Open opens (creating if needed) the database file at path, creating its
// parent directory, and applies pending migrations.
func Open(ctx context.Context, path string, opts ...store.Option) (*Store, error) {
	if path == "" {
		return nil, errors.New("sqlite: empty database path")
	}
	if strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("sqlite: database path %q must not contain '?' or '#'", path)
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("sqlite: create directory for %s: %w", path, err)
		}
	}
	o := store.Apply(opts...)
	const pragmas = "_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=temp_store(MEMORY)"
	// The writer gets a 16 MiB page cache so a big batch does not spill;
	// readers keep the 2 MiB default.
	w, err := sql.Open("sqlite", "file:"+path+"?"+pragmas+"&_pragma=cache_size(-16384)&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	s := &Store{w: w, opts: o}
	if err := s.migrate(ctx); err != nil {
		w.Close()
		return nil, err
	}
	// Readers open after the writer switched the file to WAL.
	r, err := sql.Open("sqlite", "file:"+path+"?"+pragmas+"&_pragma=query_only(1)")
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	readers := o.MaxConns
	if readers <= 0 {
		readers = 4
	}
	r.SetMaxOpenConns(readers)
	r.SetMaxIdleConns(readers)
	s.r = r
	if err := s.prepare(ctx); err != nil {
		w.Close()
		r.Close()
		return nil, err
	}
	s.c = store.NewCommitter(s.ingestBatch, 1, o.MaxBatch, o.BatchTimeout)
	return s, nil
}

func (s *Store) migrate(ctx context.Context) error {
	ms, err := store.LoadMigrations(migrationFS, "migrations")
	if err != nil {
		return err
	}
	tx, err := s.w.BeginTx(ctx, nil) // BEGIN IMMEDIATE: one migrator at a time
	if err != nil {
		return fmt.Errorf("sqlite: migrate: %w", mapErr(err))
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("sqlite: migrate: %w", mapErr(err))
	}
	applied := map[int]bool{}
	rows, err := tx.QueryContext(ctx, `SELECT version FROM schema_migrations`)
	if err != nil {
		return fmt.Errorf("sqlite: migrate: %w", mapErr(err))
	}
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return fmt.Errorf("sqlite: migrate: %w", err)
		}
		applied[v] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	for _, m := range ms {
		if applied[m.Version] {
			continue
		}
		if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
			return fmt.Errorf("sqlite: migration %s: %w", m.Name, mapErr(err))
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
			m.Version, m.Name, micros(s.opts.Now())); err != nil {
			return fmt.Errorf("sqlite: migration %s: %w", m.Name, mapErr(err))
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: migrate: %w", mapErr(err))
	}
	return nil
}

func (s *Store) prepare(ctx context.Context) error {
	s.mNotifications = newMultiStmt(`INSERT INTO notifications
		(id, received_at, correlation_id, receiver, group_key, status, reason, external_url, alert_count, body)`,
		`(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, ``)
	s.mIncidents = newMultiStmt(`INSERT INTO incidents
		(id, fingerprint, starts_at, alertname, namespace, status, labels, annotations, generator_url,
		 first_seen, last_seen, resolved_at, resolved_by, receipts, duplicates)`,
		`(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, 0)`,
		`ON CONFLICT (fingerprint, starts_at) DO UPDATE SET
			receipts    = receipts + 1,
			last_seen   = max(last_seen, excluded.last_seen),
			duplicates  = duplicates + CASE WHEN status = 'firing' AND excluded.status = 'resolved' THEN 0 ELSE 1 END,
			resolved_at = CASE WHEN status = 'firing' AND excluded.status = 'resolved' THEN excluded.resolved_at ELSE resolved_at END,
			resolved_by = CASE WHEN status = 'firing' AND excluded.status = 'resolved' THEN excluded.resolved_by ELSE resolved_by END,
			status      = CASE WHEN status = 'firing' AND excluded.status = 'resolved' THEN 'resolved' ELSE status END
		RETURNING id, fingerprint, starts_at, status, coalesce(resolved_by, ''), alertname, namespace`)
	// Intake gives its events their ids (max(id)+1, …, as SQLite would:
	// the transaction holds the one writer), so it can seal them without
	// reading them back (sealIngest).
	s.mEvents = newMultiStmt(`INSERT INTO events
		(id, incident_id, occurred_at, type, notification_id, correlation_id, actor, reason, details)`,
		`(?, ?, ?, ?, ?, ?, ?, ?, ?)`, ``)
	s.mJobs = newMultiStmt(`INSERT INTO jobs
		(incident_id, kind, notification_id, correlation_id, state, attempts, not_before, created_at)`,
		`(?, ?, ?, ?, 'pending', 0, ?, ?)`, ``)
	for _, m := range []*multiStmt{s.mNotifications, s.mIncidents, s.mEvents, s.mJobs} {
		if err := m.prepareAll(ctx, s.w); err != nil {
			return fmt.Errorf("sqlite: %w", mapErr(err))
		}
	}
	for _, p := range []struct {
		dst **sql.Stmt
		sql string
	}{
		{&s.updIncident, `UPDATE incidents SET
				receipts    = receipts + ?,
				duplicates  = duplicates + ?,
				last_seen   = max(last_seen, ?),
				status      = CASE WHEN ? THEN 'resolved' ELSE status END,
				resolved_at = CASE WHEN ? THEN ? ELSE resolved_at END,
				resolved_by = CASE WHEN ? THEN ? ELSE resolved_by END
			WHERE id = ?`},
		{&s.insEvent, `INSERT INTO events
			(incident_id, occurred_at, type, notification_id, correlation_id, actor, reason, details)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`},
		{&s.insJob, `INSERT INTO jobs
			(incident_id, kind, ref, notification_id, correlation_id, state, attempts, not_before, created_at)
			VALUES (?, ?, ?, ?, ?, 'pending', 0, ?, ?)`},
	} {
		st, err := s.w.PrepareContext(ctx, p.sql)
		if err != nil {
			return fmt.Errorf("sqlite: prepare: %w", mapErr(err))
		}
		*p.dst = st
	}
	return s.prepareAudit(ctx)
}

// Ingest implements store.Store. Concurrent calls are group-committed.
func (s *Store) Ingest(ctx context.Context, n *incident.Notification) (incident.IngestResult, error) {
	return s.c.Ingest(ctx, n)
}

func (s *Store) ingestBatch(ctx context.Context, ns []*incident.Notification) (res []incident.IngestResult, err error) {
	plan := store.NewIngestPlan(s.opts.Now(), ns)
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("sqlite: ingest: %w", mapErr(err))
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	wrap := func(what string, err error) error {
		return fmt.Errorf("sqlite: ingest: %s: %w", what, mapErr(err))
	}
	args := make([]any, 0, maxRows*13)
	exec := func(m *multiStmt, rows int, args []any) error {
		st, err := m.stmt(ctx, nil, rows)
		if err != nil {
			return err
		}
		_, err = tx.StmtContext(ctx, st).ExecContext(ctx, args...)
		return err
	}

	err = chunks(len(plan.Notifications), func(lo, hi int) error {
		args = args[:0]
		for i := lo; i < hi; i++ {
			n := &plan.Notifications[i]
			args = append(args, n.ID, micros(n.ReceivedAt), n.CorrelationID, n.Receiver, n.GroupKey,
				n.Status, n.Reason, n.ExternalURL, len(n.Alerts), n.Body)
		}
		return exec(s.mNotifications, hi-lo, args)
	})
	if err != nil {
		return nil, wrap("notifications", err)
	}

	results := make([]store.UpsertResult, len(plan.Upserts))
	type key struct {
		fp string
		at int64
	}
	index := make(map[key]int, maxRows)
	eps := make(map[string]episode, len(plan.Upserts)) // the incident columns of the audit records
	err = chunks(len(plan.Upserts), func(lo, hi int) error {
		args = args[:0]
		clear(index)
		for i := lo; i < hi; i++ {
			u := &plan.Upserts[i]
			var resolvedAt, resolvedBy any
			if u.Status == incident.StatusResolved {
				resolvedAt, resolvedBy = micros(u.ResolvedAt), u.NotificationID
			}
			at := micros(u.StartsAt)
			index[key{u.Fingerprint, at}] = i
			args = append(args, u.ProposedID, u.Fingerprint, at, u.AlertName, u.Namespace,
				u.Status, u.Labels, u.Annotations, u.GeneratorURL, micros(u.Seen), micros(u.Seen),
				resolvedAt, resolvedBy)
		}
		st, err := s.mIncidents.stmt(ctx, nil, hi-lo)
		if err != nil {
			return err
		}
		rows, err := tx.StmtContext(ctx, st).QueryContext(ctx, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		got := 0
		for rows.Next() {
			var (
				r     store.UpsertResult
				k     key
				alert string
				ns    string
			)
			if err := rows.Scan(&r.ID, &k.fp, &k.at, &r.Status, &r.ResolvedBy, &alert, &ns); err != nil {
				return err
			}
			eps[r.ID] = episode{alertname: alert, fingerprint: k.fp, namespace: ns}
			i, ok := index[k]
			if !ok {
				return fmt.Errorf("upsert returned unknown episode %s@%d", k.fp, k.at)
			}
			results[i] = r
			got++
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if got != hi-lo {
			return fmt.Errorf("upsert returned %d rows for %d episodes", got, hi-lo)
		}
		return nil
	})
	if err != nil {
		return nil, wrap("incidents", err)
	}

	out := plan.Resolve(results)
	if len(out.Updates) > 0 {
		upd := tx.StmtContext(ctx, s.updIncident)
		for _, u := range out.Updates {
			if _, err := upd.ExecContext(ctx, u.Receipts, u.Duplicates, micros(u.LastSeen),
				u.Resolve, u.Resolve, micros(u.ResolvedAt), u.Resolve, u.ResolvedBy, u.IncidentID); err != nil {
				return nil, wrap("incident "+u.IncidentID, err)
			}
		}
	}
	var firstEvent int64
	if err := tx.StmtContext(ctx, s.audit.maxEvent).QueryRowContext(ctx).Scan(&firstEvent); err != nil {
		return nil, wrap("events", err)
	}
	firstEvent++
	err = chunks(len(out.Events), func(lo, hi int) error {
		args = args[:0]
		for i := lo; i < hi; i++ {
			e := &out.Events[i]
			args = append(args, firstEvent+int64(i), e.IncidentID, micros(e.Time), e.Type, e.NotificationID, e.CorrelationID,
				e.Actor, e.Reason, nullJSON(e.Details))
		}
		return exec(s.mEvents, hi-lo, args)
	})
	if err != nil {
		return nil, wrap("events", err)
	}
	err = chunks(len(out.Jobs), func(lo, hi int) error {
		args = args[:0]
		for i := lo; i < hi; i++ {
			j := &out.Jobs[i]
			args = append(args, j.IncidentID, j.Kind, j.NotificationID, j.CorrelationID,
				micros(j.CreatedAt), micros(j.CreatedAt))
		}
		return exec(s.mJobs, hi-lo, args)
	})
	if err != nil {
		return nil, wrap("jobs", err)
	}
	// Seal this batch's events now, unless notifications are already
	// waiting for the writer: then the store is saturated, and sealing is
	// left to a later, idle moment (a later batch's slack, the background
	// sealer, which also yields to intake) rather than added to the queue.
	if s.c.Waiting() == 0 {
		if err := s.sealIngest(ctx, tx, firstEvent, out.Events, eps); err != nil {
			return nil, err
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, wrap("commit", err)
	}
	return out.Results, nil
}

// ClaimJobs implements store.Store.
//
// A due job is handed out unless another unfinished job of its incident is
// leased (never two at once; the unique index jobs_one_leased enforces it
// too), or, for a pending job, an earlier pending job of its incident is due
// or has been attempted already (due jobs go in id order, and a job
// retrying after FailJob keeps its place; a job merely scheduled for later
// does not hold the queue). A job whose lease expired is handed out again
// before earlier pending jobs: it was already under way.
func (s *Store) ClaimJobs(ctx context.Context, worker string, limit int, lease time.Duration) ([]incident.Job, error) {
	if limit <= 0 {
		return nil, nil
	}
	now := micros(s.opts.Now())
	rows, err := s.w.QueryContext(ctx, `UPDATE jobs SET
			state = 'leased', lease_owner = ?, lease_until = ?, attempts = attempts + 1
		WHERE id IN (
			SELECT j.id FROM jobs j
			WHERE j.state <> 'done'
			  AND ((j.state = 'pending' AND j.not_before <= ?) OR (j.state = 'leased' AND j.lease_until <= ?))
			  AND NOT EXISTS (SELECT 1 FROM jobs p
			                  WHERE p.incident_id = j.incident_id AND p.state <> 'done' AND p.id <> j.id
			                    AND (p.state = 'leased'
			                         OR (j.state = 'pending' AND p.id < j.id AND (p.not_before <= ? OR p.attempts > 0))))
			ORDER BY j.id
			LIMIT ?)
		RETURNING id, incident_id, kind, ref, notification_id, correlation_id, attempts, created_at`,
		worker, micros(store.UTC(s.opts.Now()).Add(lease)), now, now, now, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: claim jobs: %w", mapErr(err))
	}
	defer rows.Close()
	var jobs []incident.Job
	for rows.Next() {
		var j incident.Job
		var created int64
		if err := rows.Scan(&j.ID, &j.IncidentID, &j.Kind, &j.Ref, &j.NotificationID, &j.CorrelationID, &j.Attempts, &created); err != nil {
			return nil, fmt.Errorf("sqlite: claim jobs: %w", mapErr(err))
		}
		j.CreatedAt = fromMicros(created)
		jobs = append(jobs, j)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: claim jobs: %w", mapErr(err))
	}
	slices.SortFunc(jobs, func(a, b incident.Job) int { return cmp.Compare(a.ID, b.ID) })
	return jobs, nil
}

// CompleteJob implements store.Store.
func (s *Store) CompleteJob(ctx context.Context, worker string, jobID int64, events ...incident.Event) error {
	return s.CompleteJobWith(ctx, worker, jobID, nil, events...)
}

// CompleteJobWith implements store.Store. It returns store.ErrLeaseLost
// when worker does not hold the job's lease, store.ErrNotFound when there is
// no such job (or a next job or an event names an unknown incident). A
// holder whose lease expired may still complete the job as long as no other
// worker has claimed it since.
func (s *Store) CompleteJobWith(ctx context.Context, worker string, jobID int64, next []store.NewJob, events ...incident.Event) error {
	next, err := store.PrepareJobs(next, s.opts.Now())
	if err != nil {
		return fmt.Errorf("sqlite: complete job %d: %w", jobID, err)
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: complete job %d: %w", jobID, mapErr(err))
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `UPDATE jobs SET state = 'done', done_at = ?, lease_until = NULL
		WHERE id = ? AND state = 'leased' AND lease_owner = ?`, micros(s.opts.Now()), jobID, worker)
	if err != nil {
		return fmt.Errorf("sqlite: complete job %d: %w", jobID, mapErr(err))
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		tx.Rollback()
		return s.leaseResult(ctx, "complete job", res, err, jobID)
	}
	if err := s.insertJobs(ctx, tx, next); err != nil {
		return err
	}
	if err := s.insertEvents(ctx, tx, events); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: complete job %d: %w", jobID, mapErr(err))
	}
	return nil
}

// Enqueue implements store.Store.
func (s *Store) Enqueue(ctx context.Context, jobs ...store.NewJob) error {
	jobs, err := store.PrepareJobs(jobs, s.opts.Now())
	if err != nil {
		return fmt.Errorf("sqlite: enqueue: %w", err)
	}
	if len(jobs) == 0 {
		return nil
	}
	return s.write(ctx, "enqueue", func(tx *sql.Tx) error { return s.insertJobs(ctx, tx, jobs) })
}

// insertJobs enqueues prepared jobs inside tx.
func (s *Store) insertJobs(ctx context.Context, tx *sql.Tx, jobs []store.NewJob) error {
	if len(jobs) == 0 {
		return nil
	}
	st := tx.StmtContext(ctx, s.insJob)
	for _, j := range jobs {
		if _, err := st.ExecContext(ctx, j.IncidentID, j.Kind, j.Ref, j.NotificationID, j.CorrelationID,
			micros(j.NotBefore), micros(j.CreatedAt)); err != nil {
			if isForeignKey(err) {
				return fmt.Errorf("sqlite: enqueue job for incident %q: %w", j.IncidentID, store.ErrNotFound)
			}
			return fmt.Errorf("sqlite: enqueue jobs: %w", mapErr(err))
		}
	}
	return nil
}

// write runs f in a write transaction (BEGIN IMMEDIATE on the writer) and
// commits. Errors from f are returned as they are.
func (s *Store) write(ctx context.Context, what string, f func(tx *sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: %s: %w", what, mapErr(err))
	}
	defer tx.Rollback() // also when f panics: the writer must not stay in a transaction
	if err := f(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: %s: %w", what, mapErr(err))
	}
	return nil
}

// FailJob implements store.Store, with the same lease rules as CompleteJob.
func (s *Store) FailJob(ctx context.Context, worker string, jobID int64, cause string, retryAfter time.Duration) error {
	res, err := s.w.ExecContext(ctx, `UPDATE jobs SET state = 'pending', lease_owner = NULL, lease_until = NULL,
			not_before = ?, last_error = ?
		WHERE id = ? AND state = 'leased' AND lease_owner = ?`,
		micros(s.opts.Now().Add(retryAfter)), cause, jobID, worker)
	return s.leaseResult(ctx, "fail job", res, err, jobID)
}

func (s *Store) leaseResult(ctx context.Context, what string, res sql.Result, err error, jobID int64) error {
	if err != nil {
		return fmt.Errorf("sqlite: %s %d: %w", what, jobID, mapErr(err))
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("sqlite: %s %d: %w", what, jobID, mapErr(err))
	} else if n == 1 {
		return nil
	}
	var one int
	err = s.w.QueryRowContext(ctx, `SELECT 1 FROM jobs WHERE id = ?`, jobID).Scan(&one)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("sqlite: %s %d: %w", what, jobID, store.ErrNotFound)
	case err != nil:
		return fmt.Errorf("sqlite: %s %d: %w", what, jobID, mapErr(err))
	}
	return fmt.Errorf("sqlite: %s %d: %w", what, jobID, store.ErrLeaseLost)
}

// AppendEvents implements store.Store. A zero Time means now and an empty
// Actor means incident.ActorService. An event for an unknown incident fails
// the whole call with an error wrapping store.ErrNotFound.
func (s *Store) AppendEvents(ctx context.Context, events ...incident.Event) (err error) {
	if len(events) == 0 {
		return nil
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: append events: %w", mapErr(err))
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	if err := s.insertEvents(ctx, tx, events); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: append events: %w", mapErr(err))
	}
	return nil
}

// insertEvents appends events inside tx.
func (s *Store) insertEvents(ctx context.Context, tx *sql.Tx, events []incident.Event) error {
	if len(events) == 0 {
		return nil
	}
	st := tx.StmtContext(ctx, s.insEvent)
	now := s.opts.Now()
	for _, e := range events {
		if e.Time.IsZero() {
			e.Time = now
		}
		if e.Actor == "" {
			e.Actor = incident.ActorService
		}
		if _, err := st.ExecContext(ctx, e.IncidentID, micros(e.Time), e.Type, e.NotificationID, e.CorrelationID,
			e.Actor, e.Reason, nullJSON(e.Details)); err != nil {
			if isForeignKey(err) {
				return fmt.Errorf("sqlite: append event to incident %q: %w", e.IncidentID, store.ErrNotFound)
			}
			return fmt.Errorf("sqlite: append events: %w", mapErr(err))
		}
	}
	return s.sealInline(ctx, tx, len(events))
}

const incidentColumns = `id, fingerprint, starts_at, alertname, namespace, status, labels, annotations,
	generator_url, first_seen, last_seen, resolved_at, receipts, duplicates`

type scanner interface{ Scan(dest ...any) error }

func scanIncident(sc scanner) (incident.Incident, error) {
	var (
		in                            incident.Incident
		startsAt, firstSeen, lastSeen int64
		resolvedAt                    sql.NullInt64
		labels, annotations           []byte
	)
	if err := sc.Scan(&in.ID, &in.Fingerprint, &startsAt, &in.AlertName, &in.Namespace, &in.Status,
		&labels, &annotations, &in.GeneratorURL, &firstSeen, &lastSeen, &resolvedAt, &in.Receipts, &in.Duplicates); err != nil {
		return in, err
	}
	in.StartsAt, in.FirstSeen, in.LastSeen = fromMicros(startsAt), fromMicros(firstSeen), fromMicros(lastSeen)
	if resolvedAt.Valid {
		t := fromMicros(resolvedAt.Int64)
		in.ResolvedAt = &t
	}
	if err := json.Unmarshal(labels, &in.Labels); err != nil {
		return in, fmt.Errorf("incident %s labels: %w", in.ID, err)
	}
	if err := json.Unmarshal(annotations, &in.Annotations); err != nil {
		return in, fmt.Errorf("incident %s annotations: %w", in.ID, err)
	}
	return in, nil
}

// Incident implements store.Store.
func (s *Store) Incident(ctx context.Context, id string) (incident.Incident, []incident.Event, error) {
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true}) // one snapshot for row and timeline
	if err != nil {
		return incident.Incident{}, nil, fmt.Errorf("sqlite: incident %s: %w", id, mapErr(err))
	}
	defer tx.Rollback()
	in, err := scanIncident(tx.QueryRowContext(ctx, `SELECT `+incidentColumns+` FROM incidents WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return incident.Incident{}, nil, fmt.Errorf("sqlite: incident %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return incident.Incident{}, nil, fmt.Errorf("sqlite: incident %s: %w", id, mapErr(err))
	}
	rows, err := tx.QueryContext(ctx, `SELECT id, incident_id, occurred_at, type, notification_id, correlation_id,
		actor, reason, details FROM events WHERE incident_id = ? ORDER BY id`, id)
	if err != nil {
		return incident.Incident{}, nil, fmt.Errorf("sqlite: incident %s events: %w", id, mapErr(err))
	}
	defer rows.Close()
	var events []incident.Event
	for rows.Next() {
		var e incident.Event
		var at int64
		var details []byte
		if err := rows.Scan(&e.ID, &e.IncidentID, &at, &e.Type, &e.NotificationID, &e.CorrelationID,
			&e.Actor, &e.Reason, &details); err != nil {
			return incident.Incident{}, nil, fmt.Errorf("sqlite: incident %s events: %w", id, mapErr(err))
		}
		e.Time = fromMicros(at)
		if len(details) > 0 {
			e.Details = json.RawMessage(details)
		}
		events = append(events, e)
	}
	if err := rows.Err(); err != nil {
		return incident.Incident{}, nil, fmt.Errorf("sqlite: incident %s events: %w", id, mapErr(err))
	}
	return in, events, nil
}

// Incidents implements store.Store: newest first (by first_seen, then id).
func (s *Store) Incidents(ctx context.Context, f store.IncidentFilter) ([]incident.Incident, error) {
	q := `SELECT ` + incidentColumns + ` FROM incidents`
	var where []string
	var args []any
	if f.Status != "" {
		where = append(where, "status = ?")
		args = append(args, f.Status)
	}
	if f.AlertName != "" {
		where = append(where, "alertname = ?")
		args = append(args, f.AlertName)
	}
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY first_seen DESC, id DESC LIMIT ?"
	args = append(args, store.Limit(f.Limit))
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: incidents: %w", mapErr(err))
	}
	defer rows.Close()
	list := []incident.Incident{}
	for rows.Next() {
		in, err := scanIncident(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: incidents: %w", mapErr(err))
		}
		list = append(list, in)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: incidents: %w", mapErr(err))
	}
	return list, nil
}

// Notification implements store.Store. Alerts is not filled in: decode Body.
func (s *Store) Notification(ctx context.Context, id string) (incident.Notification, error) {
	var n incident.Notification
	var received int64
	var count int
	err := s.r.QueryRowContext(ctx, `SELECT id, received_at, correlation_id, receiver, group_key, status, reason,
		external_url, alert_count, body FROM notifications WHERE id = ?`, id).Scan(&n.ID, &received, &n.CorrelationID,
		&n.Receiver, &n.GroupKey, &n.Status, &n.Reason, &n.ExternalURL, &count, &n.Body)
	if errors.Is(err, sql.ErrNoRows) {
		return n, fmt.Errorf("sqlite: notification %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return n, fmt.Errorf("sqlite: notification %s: %w", id, mapErr(err))
	}
	n.ReceivedAt = fromMicros(received)
	return n, nil
}

// Ping implements store.Store: both pools must answer.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.w.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlite: ping: %w", mapErr(err))
	}
	if err := s.r.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlite: ping: %w", mapErr(err))
	}
	return nil
}

// Close commits what is queued, then closes the database. Later calls
// return store.ErrClosed (or an error wrapping store.ErrUnavailable).
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.c.Close()
		s.updIncident.Close()
		s.insEvent.Close()
		s.insJob.Close()
		for _, m := range []*multiStmt{s.mNotifications, s.mIncidents, s.mEvents, s.mJobs} {
			m.close()
		}
		s.audit.close()
		s.closeErr = errors.Join(s.r.Close(), s.w.Close())
	})
	return s.closeErr
}

func micros(t time.Time) int64 { return t.UTC().Truncate(time.Microsecond).UnixMicro() }

var zeroMicros = time.Time{}.UnixMicro()

func fromMicros(v int64) time.Time {
	if v == zeroMicros {
		return time.Time{}
	}
	return time.UnixMicro(v).UTC()
}

func nullJSON(b json.RawMessage) any {
	if len(b) == 0 {
		return nil
	}
	return []byte(b)
}

func isUnique(err error) bool {
	var e *sqlite.Error
	return errors.As(err, &e) && e.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE
}

func isForeignKey(err error) bool {
	var e *sqlite.Error
	return errors.As(err, &e) && e.Code() == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
}

// mapErr marks errors that mean "cannot write now" as store.ErrUnavailable.
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrConnDone) || strings.Contains(err.Error(), "sql: database is closed") {
		return store.Unavailable(err)
	}
	var e *sqlite.Error
	if errors.As(err, &e) {
		switch e.Code() & 0xff {
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_NOMEM, sqlite3.SQLITE_IOERR,
			sqlite3.SQLITE_FULL, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_PROTOCOL:
			return store.Unavailable(err)
		}
	}
	return err
}
