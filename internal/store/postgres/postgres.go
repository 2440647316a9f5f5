// Package postgres is the PostgreSQL implementation of store.Store, on
// jackc/pgx/v5 (pgxpool).
//
// Ingest is group-committed and set-based: a batch of notifications costs a
// handful of statements (arrays passed through unnest, pipelined with
// pgx.Batch), whatever the number of alerts. Several replicas may share one
// database: episodes are deduplicated by the UNIQUE (fingerprint, starts_at)
// constraint with INSERT … ON CONFLICT, migrations run under an advisory
// lock, and jobs are claimed with FOR UPDATE SKIP LOCKED.
package postgres

import (
	"cmp"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/puddle/v2"

	"github.com/remediator/remediator/internal/incident"
	"github.com/remediator/remediator/internal/store"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// migrationLock is the advisory lock key that serialises migrations of
// replicas starting together ("remediat" in ASCII).
const migrationLock int64 = 0x72656d6564696174

// guardLock is the advisory lock key that serialises BeginExecution (and
// the writes of the guards' inputs: pause, windows) across replicas
// ("remguard" in ASCII).
const guardLock int64 = 0x72656d6775617264

// Store is a store.Store on a PostgreSQL database.
type Store struct {
	pool *pgxpool.Pool
	opts store.Options
	c    *store.Committer

	closeOnce sync.Once
}

var _ store.Store = (*Store)(nil)

// Open connects to the database at dsn (postgres:// or postgresql://) and
// applies pending migrations.
func Open(ctx context.Context, dsn string, opts ...store.Option) (*Store, error) {
	o := store.Apply(opts...)
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres: parse DSN: %w", err)
	}
	if o.MaxConns > 0 {
		cfg.MaxConns = int32(o.MaxConns)
	} else if cfg.MaxConns < 8 {
		cfg.MaxConns = 8
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", mapErr(err))
	}
	s := &Store{pool: pool, opts: o}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	// Two committers: while one waits for its commit, the next batch runs.
	s.c = store.NewCommitter(s.ingestBatch, 2, o.MaxBatch, o.BatchTimeout)
	return s, nil
}

func (s *Store) migrate(ctx context.Context) error {
	ms, err := store.LoadMigrations(migrationFS, "migrations")
	if err != nil {
		return err
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// Transaction-scoped: released at commit or rollback, even if this
		// process dies half-way.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLock); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL)`); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT version FROM schema_migrations`)
		if err != nil {
			return err
		}
		applied, err := pgx.CollectRows(rows, pgx.RowTo[int32])
		if err != nil {
			return err
		}
		for _, m := range ms {
			if slices.Contains(applied, int32(m.Version)) {
				continue
			}
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return fmt.Errorf("migration %s: %w", m.Name, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`,
				m.Version, m.Name, s.opts.Now()); err != nil {
				return fmt.Errorf("migration %s: %w", m.Name, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", mapErr(err))
	}
	return nil
}

// Ingest implements store.Store. Concurrent calls are group-committed.
func (s *Store) Ingest(ctx context.Context, n *incident.Notification) (incident.IngestResult, error) {
	return s.c.Ingest(ctx, n)
}

func (s *Store) ingestBatch(ctx context.Context, ns []*incident.Notification) ([]incident.IngestResult, error) {
	var err error
	for attempt := 0; attempt < 4; attempt++ {
		var res []incident.IngestResult
		res, err = s.ingestOnce(ctx, ns)
		if err == nil {
			return res, nil
		}
		if !retryable(err) || ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("postgres: ingest: %w", mapErr(err))
}

const (
	insertNotifications = `INSERT INTO notifications
		(id, received_at, correlation_id, receiver, group_key, status, reason, external_url, alert_count, body)
		SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[],
			$7::text[], $8::text[], $9::int[], $10::bytea[])`

	upsertIncidents = `INSERT INTO incidents AS i
		(id, fingerprint, starts_at, alertname, namespace, status, labels, annotations, generator_url,
		 first_seen, last_seen, resolved_at, resolved_by, receipts, duplicates)
		SELECT u.id, u.fp, u.starts_at, u.alertname, u.namespace, u.status, u.labels::jsonb, u.annotations::jsonb,
			u.gen, u.seen, u.seen, u.resolved_at, NULLIF(u.resolved_by, ''), 1, 0
		FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[], $5::text[], $6::text[], $7::text[],
			$8::text[], $9::text[], $10::timestamptz[], $11::timestamptz[], $12::text[])
			WITH ORDINALITY AS u(id, fp, starts_at, alertname, namespace, status, labels, annotations, gen, seen,
				resolved_at, resolved_by, ord)
		ORDER BY u.ord
		ON CONFLICT (fingerprint, starts_at) DO UPDATE SET
			receipts    = i.receipts + 1,
			last_seen   = GREATEST(i.last_seen, EXCLUDED.last_seen),
			duplicates  = i.duplicates + CASE WHEN i.status = 'firing' AND EXCLUDED.status = 'resolved' THEN 0 ELSE 1 END,
			resolved_at = CASE WHEN i.status = 'firing' AND EXCLUDED.status = 'resolved' THEN EXCLUDED.resolved_at ELSE i.resolved_at END,
			resolved_by = CASE WHEN i.status = 'firing' AND EXCLUDED.status = 'resolved' THEN EXCLUDED.resolved_by ELSE i.resolved_by END,
			status      = CASE WHEN i.status = 'firing' AND EXCLUDED.status = 'resolved' THEN 'resolved' ELSE i.status END
		RETURNING i.id, i.fingerprint, i.starts_at, i.status, coalesce(i.resolved_by, '')`

	updateIncidents = `UPDATE incidents AS i SET
			receipts    = i.receipts + u.receipts,
			duplicates  = i.duplicates + u.duplicates,
			last_seen   = GREATEST(i.last_seen, u.last_seen),
			status      = CASE WHEN u.resolve THEN 'resolved' ELSE i.status END,
			resolved_at = CASE WHEN u.resolve THEN u.resolved_at ELSE i.resolved_at END,
			resolved_by = CASE WHEN u.resolve THEN u.resolved_by ELSE i.resolved_by END
		FROM unnest($1::text[], $2::int[], $3::int[], $4::timestamptz[], $5::bool[], $6::timestamptz[], $7::text[])
			AS u(id, receipts, duplicates, last_seen, resolve, resolved_at, resolved_by)
		WHERE i.id = u.id`

	insertEvents = `INSERT INTO events
		(incident_id, occurred_at, type, notification_id, correlation_id, actor, reason, details)
		SELECT u.incident_id, u.occurred_at, u.type, u.notification_id, u.correlation_id, u.actor, u.reason, u.details::jsonb
		FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[])
			WITH ORDINALITY AS u(incident_id, occurred_at, type, notification_id, correlation_id, actor, reason, details, ord)
		ORDER BY u.ord`

	appendEvents = `INSERT INTO events
		(incident_id, occurred_at, type, notification_id, correlation_id, actor, reason, details)
		SELECT u.incident_id, u.occurred_at, u.type, u.notification_id, u.correlation_id, u.actor, u.reason, u.details::jsonb
		FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[])
			WITH ORDINALITY AS u(incident_id, occurred_at, type, notification_id, correlation_id, actor, reason, details, ord)
		WHERE EXISTS (SELECT 1 FROM incidents i WHERE i.id = u.incident_id FOR KEY SHARE)
		ORDER BY u.ord`

	enqueueJobs = `INSERT INTO jobs
		(incident_id, kind, ref, notification_id, correlation_id, state, attempts, not_before, created_at)
		SELECT u.incident_id, u.kind, u.ref, u.notification_id, u.correlation_id, 'pending', 0, u.not_before, u.created_at
		FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[], $7::timestamptz[])
			WITH ORDINALITY AS u(incident_id, kind, ref, notification_id, correlation_id, not_before, created_at, ord)
		WHERE EXISTS (SELECT 1 FROM incidents i WHERE i.id = u.incident_id FOR KEY SHARE)
		ORDER BY u.ord`

	insertJobs = `INSERT INTO jobs
		(incident_id, kind, notification_id, correlation_id, state, attempts, not_before, created_at)
		SELECT u.incident_id, u.kind, u.notification_id, u.correlation_id, 'pending', 0, u.created_at, u.created_at
		FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[])
			WITH ORDINALITY AS u(incident_id, kind, notification_id, correlation_id, created_at, ord)
		ORDER BY u.ord`
)

type episodeKey struct {
	fp string
	at int64
}

func (s *Store) ingestOnce(ctx context.Context, ns []*incident.Notification) (res []incident.IngestResult, err error) {
	plan := store.NewIngestPlan(s.opts.Now(), ns)
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			tx.Rollback(context.WithoutCancel(ctx))
		}
	}()

	// Round trip 1: the notifications and the incident upsert.
	var b1 pgx.Batch
	{
		k := len(plan.Notifications)
		ids, corr, recv, group, status, reason, ext := make([]string, k), make([]string, k), make([]string, k),
			make([]string, k), make([]string, k), make([]string, k), make([]string, k)
		at, count, body := make([]time.Time, k), make([]int32, k), make([][]byte, k)
		for i := range plan.Notifications {
			n := &plan.Notifications[i]
			ids[i], at[i], corr[i], recv[i], group[i] = n.ID, n.ReceivedAt, n.CorrelationID, n.Receiver, n.GroupKey
			status[i], reason[i], ext[i], count[i], body[i] = n.Status, n.Reason, n.ExternalURL, int32(len(n.Alerts)), n.Body
		}
		b1.Queue(insertNotifications, ids, at, corr, recv, group, status, reason, ext, count, body)
	}
	// Upserts go in key order, so concurrent transactions lock rows in
	// the same order and do not deadlock.
	order := make([]int, len(plan.Upserts))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		ua, ub := &plan.Upserts[a], &plan.Upserts[b]
		if c := strings.Compare(ua.Fingerprint, ub.Fingerprint); c != 0 {
			return c
		}
		return ua.StartsAt.Compare(ub.StartsAt)
	})
	index := make(map[episodeKey]int, len(plan.Upserts))
	if k := len(plan.Upserts); k > 0 {
		id, fp, an, nsp, st, lab, ann, gen, rby := make([]string, k), make([]string, k), make([]string, k),
			make([]string, k), make([]string, k), make([]string, k), make([]string, k), make([]string, k), make([]string, k)
		starts, seen, rat := make([]time.Time, k), make([]time.Time, k), make([]pgtype.Timestamptz, k)
		for j, i := range order {
			u := &plan.Upserts[i]
			index[episodeKey{u.Fingerprint, u.StartsAt.UnixMicro()}] = i
			id[j], fp[j], starts[j], an[j], nsp[j], st[j] = u.ProposedID, u.Fingerprint, u.StartsAt, u.AlertName, u.Namespace, u.Status
			lab[j], ann[j], gen[j], seen[j] = string(u.Labels), string(u.Annotations), u.GeneratorURL, u.Seen
			if u.Status == incident.StatusResolved {
				rat[j] = pgtype.Timestamptz{Time: u.ResolvedAt, Valid: true}
				rby[j] = u.NotificationID
			}
		}
		b1.Queue(upsertIncidents, id, fp, starts, an, nsp, st, lab, ann, gen, seen, rat, rby)
	}
	results := make([]store.UpsertResult, len(plan.Upserts))
	br := tx.SendBatch(ctx, &b1)
	if _, err := br.Exec(); err != nil {
		br.Close()
		return nil, fmt.Errorf("notifications: %w", err)
	}
	if len(plan.Upserts) > 0 {
		rows, err := br.Query()
		if err != nil {
			br.Close()
			return nil, fmt.Errorf("incidents: %w", err)
		}
		got := 0
		for rows.Next() {
			var r store.UpsertResult
			var fp string
			var startsAt time.Time
			if err := rows.Scan(&r.ID, &fp, &startsAt, &r.Status, &r.ResolvedBy); err != nil {
				rows.Close()
				br.Close()
				return nil, fmt.Errorf("incidents: %w", err)
			}
			i, ok := index[episodeKey{fp, startsAt.UnixMicro()}]
			if !ok {
				rows.Close()
				br.Close()
				return nil, fmt.Errorf("incidents: upsert returned unknown episode %s@%s", fp, startsAt)
			}
			results[i] = r
			got++
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			br.Close()
			return nil, fmt.Errorf("incidents: %w", err)
		}
		if got != len(plan.Upserts) {
			br.Close()
			return nil, fmt.Errorf("incidents: upsert returned %d rows for %d episodes", got, len(plan.Upserts))
		}
	}
	if err := br.Close(); err != nil {
		return nil, err
	}

	// Round trip 2: what the upserts' outcomes imply.
	out := plan.Resolve(results)
	var b2 pgx.Batch
	if k := len(out.Updates); k > 0 {
		slices.SortFunc(out.Updates, func(a, b store.Update) int { return strings.Compare(a.IncidentID, b.IncidentID) })
		id, rby := make([]string, k), make([]string, k)
		rec, dup := make([]int32, k), make([]int32, k)
		last, rat := make([]time.Time, k), make([]pgtype.Timestamptz, k)
		resolve := make([]bool, k)
		for i, u := range out.Updates {
			id[i], rec[i], dup[i], last[i], resolve[i] = u.IncidentID, int32(u.Receipts), int32(u.Duplicates), u.LastSeen, u.Resolve
			if u.Resolve {
				rat[i] = pgtype.Timestamptz{Time: u.ResolvedAt, Valid: true}
				rby[i] = u.ResolvedBy
			}
		}
		b2.Queue(updateIncidents, id, rec, dup, last, resolve, rat, rby)
	}
	if k := len(out.Events); k > 0 {
		inc, typ, nid, cid, act, rsn := make([]string, k), make([]string, k), make([]string, k),
			make([]string, k), make([]string, k), make([]string, k)
		at, det := make([]time.Time, k), make([]pgtype.Text, k)
		for i := range out.Events {
			e := &out.Events[i]
			inc[i], at[i], typ[i], nid[i], cid[i], act[i], rsn[i] = e.IncidentID, e.Time, e.Type, e.NotificationID, e.CorrelationID, e.Actor, e.Reason
			if len(e.Details) > 0 {
				det[i] = pgtype.Text{String: string(e.Details), Valid: true}
			}
		}
		b2.Queue(insertEvents, inc, at, typ, nid, cid, act, rsn, det)
	}
	if k := len(out.Jobs); k > 0 {
		inc, kind, nid, cid := make([]string, k), make([]string, k), make([]string, k), make([]string, k)
		at := make([]time.Time, k)
		for i, j := range out.Jobs {
			inc[i], kind[i], nid[i], cid[i], at[i] = j.IncidentID, j.Kind, j.NotificationID, j.CorrelationID, j.CreatedAt
		}
		b2.Queue(insertJobs, inc, kind, nid, cid, at)
	}
	if b2.Len() > 0 {
		if err := tx.SendBatch(ctx, &b2).Close(); err != nil {
			return nil, err
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, err
	}
	return out.Results, nil
}

// claimJobs leases due jobs. A due job is handed out unless another
// unfinished job of its incident is leased (never two at once), or, for a
// pending job, an earlier pending job of its incident is due or has been
// attempted already (due jobs go in id order, and a job retrying after
// FailJob keeps its place; a job merely scheduled for later does not hold
// the queue). A job whose lease expired is handed out again before earlier
// pending jobs: it was already under way.
//
// The candidates are materialised once (an IN (… LIMIT … FOR UPDATE)
// subquery may be rescanned and hand out more than limit rows).
const claimJobs = `WITH cand AS MATERIALIZED (
		SELECT j.id FROM jobs j
		WHERE j.state <> 'done'
		  AND ((j.state = 'pending' AND j.not_before <= $3) OR (j.state = 'leased' AND j.lease_until <= $3))
		  AND NOT EXISTS (SELECT 1 FROM jobs p
		                  WHERE p.incident_id = j.incident_id AND p.state <> 'done' AND p.id <> j.id
		                    AND (p.state = 'leased'
		                         OR (j.state = 'pending' AND p.id < j.id AND (p.not_before <= $3 OR p.attempts > 0))))
		ORDER BY j.id
		LIMIT $4
		FOR UPDATE OF j SKIP LOCKED)
	UPDATE jobs SET state = 'leased', lease_owner = $1, lease_until = $2, attempts = attempts + 1
	FROM cand
	WHERE jobs.id = cand.id
	RETURNING jobs.id, jobs.incident_id, jobs.kind, jobs.ref, jobs.notification_id, jobs.correlation_id,
		jobs.attempts, jobs.created_at`

// ClaimJobs implements store.Store. Concurrent claimers (also in other
// processes) skip each other's rows instead of waiting. Two claims that
// read the queue at once may still both pick a job of the same incident
// (their snapshots or clocks differ); the unique index jobs_one_leased
// then fails one of them, which runs again.
func (s *Store) ClaimJobs(ctx context.Context, worker string, limit int, lease time.Duration) ([]incident.Job, error) {
	if limit <= 0 {
		return nil, nil
	}
	var err error
	for attempt := 0; attempt < 8; attempt++ {
		var jobs []incident.Job
		if jobs, err = s.claimOnce(ctx, worker, limit, lease); err == nil {
			return jobs, nil
		}
		if !claimRace(err) || ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("postgres: claim jobs: %w", mapErr(err))
}

func (s *Store) claimOnce(ctx context.Context, worker string, limit int, lease time.Duration) ([]incident.Job, error) {
	now := store.UTC(s.opts.Now())
	rows, err := s.pool.Query(ctx, claimJobs, worker, now.Add(lease), now, limit)
	if err != nil {
		return nil, err
	}
	jobs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (incident.Job, error) {
		var j incident.Job
		var attempts int32
		err := r.Scan(&j.ID, &j.IncidentID, &j.Kind, &j.Ref, &j.NotificationID, &j.CorrelationID, &attempts, &j.CreatedAt)
		j.Attempts = int(attempts)
		j.CreatedAt = j.CreatedAt.UTC()
		return j, err
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(jobs, func(a, b incident.Job) int { return cmp.Compare(a.ID, b.ID) })
	return jobs, nil
}

// claimRace reports the errors a claim racing another claim may get: the
// one-leased-job-per-incident index, or a deadlock on it.
func claimRace(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001" ||
		(pe.Code == "23505" && pe.ConstraintName == "jobs_one_leased"))
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
		return fmt.Errorf("postgres: complete job %d: %w", jobID, err)
	}
	var tag pgconn.CommandTag
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		tag, err = tx.Exec(ctx, `UPDATE jobs SET state = 'done', done_at = $1, lease_until = NULL
			WHERE id = $2 AND state = 'leased' AND lease_owner = $3`, store.UTC(s.opts.Now()), jobID, worker)
		if err != nil {
			return mapErr(err)
		}
		if tag.RowsAffected() != 1 {
			return errLeaseCheck
		}
		if err := s.addJobs(ctx, tx, next); err != nil {
			return err
		}
		return s.insertEvents(ctx, tx, events)
	})
	if errors.Is(err, errLeaseCheck) {
		return s.leaseResult(ctx, "complete job", tag, nil, jobID)
	}
	if err != nil {
		return fmt.Errorf("postgres: complete job %d: %w", jobID, err)
	}
	return nil
}

// Enqueue implements store.Store.
func (s *Store) Enqueue(ctx context.Context, jobs ...store.NewJob) error {
	jobs, err := store.PrepareJobs(jobs, s.opts.Now())
	if err != nil {
		return fmt.Errorf("postgres: enqueue: %w", err)
	}
	if len(jobs) == 0 {
		return nil
	}
	if err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error { return s.addJobs(ctx, tx, jobs) }); err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	return nil
}

// addJobs enqueues prepared jobs inside tx. Only jobs of existing
// incidents are inserted; if any is missing it fails with store.ErrNotFound
// and the caller's transaction is rolled back.
func (s *Store) addJobs(ctx context.Context, tx pgx.Tx, jobs []store.NewJob) error {
	k := len(jobs)
	if k == 0 {
		return nil
	}
	inc, kind, ref, nid, cid := make([]string, k), make([]string, k), make([]string, k), make([]string, k), make([]string, k)
	notBefore, created := make([]time.Time, k), make([]time.Time, k)
	for i, j := range jobs {
		inc[i], kind[i], ref[i], nid[i], cid[i], notBefore[i], created[i] = j.IncidentID, j.Kind, j.Ref, j.NotificationID,
			j.CorrelationID, j.NotBefore, j.CreatedAt
	}
	tag, err := tx.Exec(ctx, enqueueJobs, inc, kind, ref, nid, cid, notBefore, created)
	if err != nil {
		return fmt.Errorf("enqueue jobs: %w", mapErr(err))
	}
	if tag.RowsAffected() != int64(k) {
		return fmt.Errorf("enqueue jobs: unknown incident: %w", store.ErrNotFound)
	}
	return nil
}

// errLeaseCheck rolls a completion back so leaseResult can say why.
var errLeaseCheck = errors.New("lease check")

// FailJob implements store.Store, with the same lease rules as CompleteJob.
func (s *Store) FailJob(ctx context.Context, worker string, jobID int64, cause string, retryAfter time.Duration) error {
	tag, err := s.pool.Exec(ctx, `UPDATE jobs SET state = 'pending', lease_owner = NULL, lease_until = NULL,
			not_before = $1, last_error = $2
		WHERE id = $3 AND state = 'leased' AND lease_owner = $4`,
		store.UTC(s.opts.Now().Add(retryAfter)), cause, jobID, worker)
	return s.leaseResult(ctx, "fail job", tag, err, jobID)
}

func (s *Store) leaseResult(ctx context.Context, what string, tag pgconn.CommandTag, err error, jobID int64) error {
	if err != nil {
		return fmt.Errorf("postgres: %s %d: %w", what, jobID, mapErr(err))
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	var exists bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM jobs WHERE id = $1)`, jobID).Scan(&exists); err != nil {
		return fmt.Errorf("postgres: %s %d: %w", what, jobID, mapErr(err))
	}
	if !exists {
		return fmt.Errorf("postgres: %s %d: %w", what, jobID, store.ErrNotFound)
	}
	return fmt.Errorf("postgres: %s %d: %w", what, jobID, store.ErrLeaseLost)
}

// AppendEvents implements store.Store. A zero Time means now and an empty
// Actor means incident.ActorService. An event for an unknown incident fails
// the whole call with an error wrapping store.ErrNotFound.
func (s *Store) AppendEvents(ctx context.Context, events ...incident.Event) error {
	if len(events) == 0 {
		return nil
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error { return s.insertEvents(ctx, tx, events) })
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	return nil
}

// insertEvents appends events inside tx. Only events of existing incidents
// are inserted; if any is missing it fails with store.ErrNotFound, and the
// caller's transaction is rolled back, so nothing is appended.
func (s *Store) insertEvents(ctx context.Context, tx pgx.Tx, events []incident.Event) error {
	k := len(events)
	if k == 0 {
		return nil
	}
	inc, typ, nid, cid, act, rsn := make([]string, k), make([]string, k), make([]string, k),
		make([]string, k), make([]string, k), make([]string, k)
	at, det := make([]time.Time, k), make([]pgtype.Text, k)
	now := store.UTC(s.opts.Now())
	for i, e := range events {
		inc[i], at[i], typ[i], nid[i], cid[i], act[i], rsn[i] = e.IncidentID, store.UTC(e.Time), e.Type, e.NotificationID, e.CorrelationID, e.Actor, e.Reason
		if e.Time.IsZero() {
			at[i] = now
		}
		if e.Actor == "" {
			act[i] = incident.ActorService
		}
		if len(e.Details) > 0 {
			det[i] = pgtype.Text{String: string(e.Details), Valid: true}
		}
	}
	tag, err := tx.Exec(ctx, appendEvents, inc, at, typ, nid, cid, act, rsn, det)
	if err != nil {
		return fmt.Errorf("append events: %w", mapErr(err))
	}
	if tag.RowsAffected() != int64(k) {
		return fmt.Errorf("append events: unknown incident: %w", store.ErrNotFound)
	}
	return nil
}

const incidentColumns = `id, fingerprint, starts_at, alertname, namespace, status, labels::text, annotations::text,
	generator_url, first_seen, last_seen, resolved_at, receipts, duplicates`

func scanIncident(row pgx.Row) (incident.Incident, error) {
	var (
		in                  incident.Incident
		labels, annotations string
		resolvedAt          pgtype.Timestamptz
		receipts, dups      int32
	)
	if err := row.Scan(&in.ID, &in.Fingerprint, &in.StartsAt, &in.AlertName, &in.Namespace, &in.Status,
		&labels, &annotations, &in.GeneratorURL, &in.FirstSeen, &in.LastSeen, &resolvedAt, &receipts, &dups); err != nil {
		return in, err
	}
	in.Receipts, in.Duplicates = int(receipts), int(dups)
	in.StartsAt, in.FirstSeen, in.LastSeen = in.StartsAt.UTC(), in.FirstSeen.UTC(), in.LastSeen.UTC()
	if resolvedAt.Valid {
		t := resolvedAt.Time.UTC()
		in.ResolvedAt = &t
	}
	if err := json.Unmarshal([]byte(labels), &in.Labels); err != nil {
		return in, fmt.Errorf("incident %s labels: %w", in.ID, err)
	}
	if err := json.Unmarshal([]byte(annotations), &in.Annotations); err != nil {
		return in, fmt.Errorf("incident %s annotations: %w", in.ID, err)
	}
	return in, nil
}

// Incident implements store.Store.
func (s *Store) Incident(ctx context.Context, id string) (incident.Incident, []incident.Event, error) {
	var (
		in     incident.Incident
		events []incident.Event
	)
	// One snapshot for the row and its timeline.
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var err error
		in, err = scanIncident(tx.QueryRow(ctx, `SELECT `+incidentColumns+` FROM incidents WHERE id = $1`, id))
		if err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT id, incident_id, occurred_at, type, notification_id, correlation_id,
			actor, reason, details::text FROM events WHERE incident_id = $1 ORDER BY id`, id)
		if err != nil {
			return err
		}
		events, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (incident.Event, error) {
			var e incident.Event
			var details pgtype.Text
			err := r.Scan(&e.ID, &e.IncidentID, &e.Time, &e.Type, &e.NotificationID, &e.CorrelationID,
				&e.Actor, &e.Reason, &details)
			e.Time = e.Time.UTC()
			if details.Valid {
				e.Details = json.RawMessage(details.String)
			}
			return e, err
		})
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return incident.Incident{}, nil, fmt.Errorf("postgres: incident %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return incident.Incident{}, nil, fmt.Errorf("postgres: incident %s: %w", id, mapErr(err))
	}
	return in, events, nil
}

// Incidents implements store.Store: newest first (by first_seen, then id).
func (s *Store) Incidents(ctx context.Context, f store.IncidentFilter) ([]incident.Incident, error) {
	q := `SELECT ` + incidentColumns + ` FROM incidents`
	var where []string
	var args []any
	if f.Status != "" {
		args = append(args, f.Status)
		where = append(where, fmt.Sprintf("status = $%d", len(args)))
	}
	if f.AlertName != "" {
		args = append(args, f.AlertName)
		where = append(where, fmt.Sprintf("alertname = $%d", len(args)))
	}
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	args = append(args, store.Limit(f.Limit))
	q += fmt.Sprintf(" ORDER BY first_seen DESC, id DESC LIMIT $%d", len(args))
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: incidents: %w", mapErr(err))
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (incident.Incident, error) { return scanIncident(r) })
	if err != nil {
		return nil, fmt.Errorf("postgres: incidents: %w", mapErr(err))
	}
	if list == nil {
		list = []incident.Incident{}
	}
	return list, nil
}

// Notification implements store.Store. Alerts is not filled in: decode Body.
func (s *Store) Notification(ctx context.Context, id string) (incident.Notification, error) {
	var n incident.Notification
	var count int32
	err := s.pool.QueryRow(ctx, `SELECT id, received_at, correlation_id, receiver, group_key, status, reason,
		external_url, alert_count, body FROM notifications WHERE id = $1`, id).Scan(&n.ID, &n.ReceivedAt,
		&n.CorrelationID, &n.Receiver, &n.GroupKey, &n.Status, &n.Reason, &n.ExternalURL, &count, &n.Body)
	if errors.Is(err, pgx.ErrNoRows) {
		return n, fmt.Errorf("postgres: notification %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return n, fmt.Errorf("postgres: notification %s: %w", id, mapErr(err))
	}
	n.ReceivedAt = n.ReceivedAt.UTC()
	return n, nil
}

// Ping implements store.Store.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("postgres: ping: %w", mapErr(err))
	}
	return nil
}

// Close commits what is queued, then closes the pool. Later calls return
// errors wrapping store.ErrUnavailable.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.c.Close()
		s.pool.Close()
	})
	return nil
}

// retryable reports errors after which the same transaction may succeed
// when run again: deadlock and serialization failures.
func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001")
}

// mapErr marks errors that mean "cannot write now" as store.ErrUnavailable.
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case strings.HasPrefix(pe.Code, "08"), // connection exception
			strings.HasPrefix(pe.Code, "53"),  // insufficient resources: disk full, out of memory, too many connections
			strings.HasPrefix(pe.Code, "57P"), // admin/crash shutdown, cannot connect now
			strings.HasPrefix(pe.Code, "58"),  // system error (I/O)
			pe.Code == "25006",                // read-only transaction: a standby after failover
			pe.Code == "40P01", pe.Code == "40001":
			return store.Unavailable(err)
		}
		return err
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	switch {
	case errors.As(err, &ce), errors.As(err, &ne),
		errors.Is(err, puddle.ErrClosedPool), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		pgconn.Timeout(err), pgconn.SafeToRetry(err),
		strings.Contains(err.Error(), "closed pool"), strings.Contains(err.Error(), "conn closed"):
		return store.Unavailable(err)
	}
	return err
}
