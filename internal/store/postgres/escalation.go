package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/remediator/remediator/internal/incident"
	"github.com/remediator/remediator/internal/store"
)

// Escalation: priorities, acknowledgements, escalations and the outbox
// (migration 0004_escalation).

const escalationStateColumns = `id, status, priority, priority_since, escalation_level, escalation_count,
	escalated_priority, last_escalated_at, acknowledged_at, acknowledged_by, ack_reason`

// readEscalationState reads the incident's state in q; with lock, inside a
// transaction, the row stays locked (FOR NO KEY UPDATE: events and jobs
// of the incident may still be written) until it ends.
func readEscalationState(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, id string, lock bool) (store.EscalationState, error) {
	var (
		st                 store.EscalationState
		since, last, acked pgtype.Timestamptz
		level, count       int32
	)
	sql := `SELECT ` + escalationStateColumns + ` FROM incidents WHERE id = $1`
	if lock {
		sql += ` FOR NO KEY UPDATE`
	}
	err := q.QueryRow(ctx, sql, id).Scan(&st.IncidentID, &st.Status, &st.Priority, &since, &level, &count,
		&st.EscalatedPriority, &last, &acked, &st.AcknowledgedBy, &st.AckReason)
	if errors.Is(err, pgx.ErrNoRows) {
		return st, fmt.Errorf("incident %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return st, fmt.Errorf("escalation state of %s: %w", id, mapErr(err))
	}
	st.Level, st.Escalations = int(level), int(count)
	st.PrioritySince, st.LastEscalatedAt, st.AcknowledgedAt = tsPtr(since), tsPtr(last), tsPtr(acked)
	return st, nil
}

func tsPtr(t pgtype.Timestamptz) *time.Time {
	if !t.Valid {
		return nil
	}
	u := t.Time.UTC()
	return &u
}

// EscalationState implements store.Store.
func (s *Store) EscalationState(ctx context.Context, incidentID string) (store.EscalationState, error) {
	st, err := readEscalationState(ctx, s.pool, incidentID, false)
	if err != nil {
		return st, fmt.Errorf("postgres: %w", err)
	}
	return st, nil
}

// RaisePriority implements store.Store.
func (s *Store) RaisePriority(ctx context.Context, incidentID, p string, at time.Time, next []store.NewJob) (store.EscalationState, bool, error) {
	if err := store.CheckPriority(p); err != nil {
		return store.EscalationState{}, false, fmt.Errorf("postgres: raise priority of %s: %w", incidentID, err)
	}
	now := s.opts.Now()
	if at.IsZero() {
		at = now
	}
	at = store.UTC(at)
	next, err := store.PrepareJobs(next, now)
	if err != nil {
		return store.EscalationState{}, false, fmt.Errorf("postgres: raise priority of %s: %w", incidentID, err)
	}
	var st store.EscalationState
	var raised bool
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		raised = false
		if st, err = readEscalationState(ctx, tx, incidentID, true); err != nil {
			return err
		}
		if !store.HigherPriority(p, st.Priority) {
			return nil
		}
		if _, err := tx.Exec(ctx, `UPDATE incidents SET priority = $2, priority_since = $3 WHERE id = $1`,
			incidentID, p, at); err != nil {
			return fmt.Errorf("raise priority: %w", mapErr(err))
		}
		if err := s.addJobs(ctx, tx, next); err != nil {
			return err
		}
		raised, st.Priority, st.PrioritySince = true, p, &at
		return nil
	})
	if err != nil {
		return store.EscalationState{}, false, fmt.Errorf("postgres: raise priority of %s: %w", incidentID, err)
	}
	return st, raised, nil
}

// Escalate implements store.Store.
func (s *Store) Escalate(ctx context.Context, e store.Escalation, next []store.NewJob, events ...incident.Event) error {
	now := s.opts.Now()
	e, err := store.PrepareEscalation(e, now)
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	if next, err = store.PrepareJobs(next, now); err != nil {
		return fmt.Errorf("postgres: escalate: %w", err)
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		st, err := readEscalationState(ctx, tx, e.IncidentID, true)
		if err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `INSERT INTO escalations (id, incident_id, dedup_key, priority, reason, level, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING`,
			e.ID, e.IncidentID, e.Key, e.Priority, e.Reason, e.Level, e.At)
		if err != nil {
			return fmt.Errorf("escalate: %w", mapErr(err))
		}
		if tag.RowsAffected() != 1 {
			return fmt.Errorf("escalation %s of incident %s: %w", e.Key, e.IncidentID, store.ErrExists)
		}
		if e.Finish != nil {
			if err := finishInTx(ctx, tx, *e.Finish, store.UTC(now)); err != nil {
				return err
			}
		}
		pr, since := st.Priority, st.PrioritySince
		if store.HigherPriority(e.Priority, pr) {
			pr, since = e.Priority, &e.At
		}
		escalated := st.EscalatedPriority
		if store.HigherPriority(pr, escalated) {
			escalated = pr
		}
		if _, err := tx.Exec(ctx, `UPDATE incidents SET priority = $2, priority_since = $3,
				escalation_level = GREATEST(escalation_level, $4), escalation_count = escalation_count + 1,
				escalated_priority = $5, last_escalated_at = $6
			WHERE id = $1`, e.IncidentID, pr, since, e.Level, escalated, e.At); err != nil {
			return fmt.Errorf("escalate: %w", mapErr(err))
		}
		if k := len(e.Outbox); k > 0 {
			ch, tg, dst, pl := make([]string, k), make([]string, k), make([]string, k), make([]string, k)
			nb, cr := make([]time.Time, k), make([]time.Time, k)
			for i, m := range e.Outbox {
				ch[i], tg[i], dst[i], pl[i], nb[i], cr[i] = m.Channel, m.Target, m.Destination, string(m.Payload), m.NotBefore, m.CreatedAt
			}
			if _, err := tx.Exec(ctx, `INSERT INTO outbox (incident_id, escalation_id, channel, target, destination,
					payload, state, attempts, not_before, created_at)
				SELECT $1, $2, u.ch, u.tg, u.dst, u.pl::json, 'pending', 0, u.nb, u.cr
				FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::timestamptz[], $8::timestamptz[])
					WITH ORDINALITY AS u(ch, tg, dst, pl, nb, cr, ord)
				ORDER BY u.ord`, e.IncidentID, e.ID, ch, tg, dst, pl, nb, cr); err != nil {
				return fmt.Errorf("escalate: outbox: %w", mapErr(err))
			}
		}
		if err := s.addJobs(ctx, tx, next); err != nil {
			return err
		}
		return s.insertEvents(ctx, tx, events)
	})
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	return nil
}

// finishInTx is FinishExecution's update inside tx.
func finishInTx(ctx context.Context, tx pgx.Tx, c store.ExecutionChange, now time.Time) error {
	from := c.From
	if from == nil {
		from = []string{}
	}
	tag, err := tx.Exec(ctx, `UPDATE executions SET state = $2, reason = $3, updated_at = $4,
			applied_at = CASE WHEN $5 THEN $4 ELSE applied_at END
		WHERE id = $1 AND state = ANY($6::text[])`, c.ID, c.To, c.Reason, now, c.To == store.ExecApplied, from)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" {
		return fmt.Errorf("finish execution %s: its step has another execution: %w", c.ID, store.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("finish execution %s: %w", c.ID, mapErr(err))
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	var state string
	err = tx.QueryRow(ctx, `SELECT state FROM executions WHERE id = $1`, c.ID).Scan(&state)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("finish execution %s: %w", c.ID, store.ErrNotFound)
	case err != nil:
		return fmt.Errorf("finish execution %s: %w", c.ID, mapErr(err))
	}
	return fmt.Errorf("finish execution %s: it is %s, not %s: %w", c.ID, state, strings.Join(c.From, "|"), store.ErrConflict)
}

// Acknowledge implements store.Store.
func (s *Store) Acknowledge(ctx context.Context, incidentID, by, reason string, at time.Time, events ...incident.Event) (store.EscalationState, error) {
	if at.IsZero() {
		at = s.opts.Now()
	}
	at = store.UTC(at)
	var st store.EscalationState
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		if st, err = readEscalationState(ctx, tx, incidentID, true); err != nil {
			return err
		}
		if st.Acknowledged() {
			return fmt.Errorf("incident %s: acknowledged by %s at %s: %w", incidentID, st.AcknowledgedBy,
				st.AcknowledgedAt.Format(time.RFC3339), store.ErrAcknowledged)
		}
		if _, err := tx.Exec(ctx, `UPDATE incidents SET acknowledged_at = $2, acknowledged_by = $3, ack_reason = $4
			WHERE id = $1`, incidentID, at, by, reason); err != nil {
			return fmt.Errorf("acknowledge: %w", mapErr(err))
		}
		if err := s.insertEvents(ctx, tx, events); err != nil {
			return err
		}
		st.AcknowledgedAt, st.AcknowledgedBy, st.AckReason = &at, by, reason
		return nil
	})
	switch {
	case errors.Is(err, store.ErrAcknowledged):
		return st, fmt.Errorf("postgres: %w", err)
	case err != nil:
		return store.EscalationState{}, fmt.Errorf("postgres: acknowledge %s: %w", incidentID, err)
	}
	return st, nil
}

const outboxColumns = `id, incident_id, escalation_id, channel, target, destination, payload::text, state, attempts,
	not_before, last_error, created_at, done_at`

func scanOutbox(row pgx.Row) (store.OutboxMessage, error) {
	var (
		m        store.OutboxMessage
		payload  string
		attempts int32
		done     pgtype.Timestamptz
	)
	if err := row.Scan(&m.ID, &m.IncidentID, &m.EscalationID, &m.Channel, &m.Target, &m.Destination, &payload,
		&m.State, &attempts, &m.NotBefore, &m.LastError, &m.CreatedAt, &done); err != nil {
		return m, err
	}
	m.Payload, m.Attempts = []byte(payload), int(attempts)
	m.NotBefore, m.CreatedAt, m.DoneAt = m.NotBefore.UTC(), m.CreatedAt.UTC(), tsPtr(done)
	return m, nil
}

func collectOutbox(rows pgx.Rows) ([]store.OutboxMessage, error) {
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.OutboxMessage, error) { return scanOutbox(r) })
	if list == nil && err == nil {
		list = []store.OutboxMessage{}
	}
	return list, err
}

// Outbox implements store.Store.
func (s *Store) Outbox(ctx context.Context, f store.OutboxFilter) ([]store.OutboxMessage, error) {
	var where []string
	var args []any
	if f.IncidentID != "" {
		args = append(args, f.IncidentID)
		where = append(where, fmt.Sprintf("incident_id = $%d", len(args)))
	}
	if len(f.States) > 0 {
		args = append(args, f.States)
		where = append(where, fmt.Sprintf("state = ANY($%d::text[])", len(args)))
	}
	q := `SELECT ` + outboxColumns + ` FROM outbox`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	args = append(args, store.Limit(f.Limit))
	q += fmt.Sprintf(" ORDER BY id LIMIT $%d", len(args))
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: outbox: %w", mapErr(err))
	}
	list, err := collectOutbox(rows)
	if err != nil {
		return nil, fmt.Errorf("postgres: outbox: %w", mapErr(err))
	}
	return list, nil
}

const claimOutbox = `WITH cand AS MATERIALIZED (
		SELECT id FROM outbox
		WHERE state IN ('pending', 'leased')
		  AND ((state = 'pending' AND not_before <= $3) OR (state = 'leased' AND lease_until <= $3))
		ORDER BY id
		LIMIT $4
		FOR UPDATE SKIP LOCKED)
	UPDATE outbox SET state = 'leased', lease_owner = $1, lease_until = $2, attempts = attempts + 1
	FROM cand
	WHERE outbox.id = cand.id
	RETURNING outbox.id, outbox.incident_id, outbox.escalation_id, outbox.channel, outbox.target, outbox.destination,
		outbox.payload::text, outbox.state, outbox.attempts, outbox.not_before, outbox.last_error, outbox.created_at,
		outbox.done_at`

// ClaimOutbox implements store.Store. Concurrent claimers (also of other
// replicas) skip each other's rows.
func (s *Store) ClaimOutbox(ctx context.Context, owner string, limit int, lease time.Duration) ([]store.OutboxMessage, error) {
	if limit <= 0 {
		return nil, nil
	}
	now := store.UTC(s.opts.Now())
	rows, err := s.pool.Query(ctx, claimOutbox, owner, now.Add(lease), now, limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: claim outbox: %w", mapErr(err))
	}
	list, err := collectOutbox(rows)
	if err != nil {
		return nil, fmt.Errorf("postgres: claim outbox: %w", mapErr(err))
	}
	slices.SortFunc(list, func(a, b store.OutboxMessage) int { return cmp.Compare(a.ID, b.ID) })
	return list, nil
}

// SettleOutbox implements store.Store.
func (s *Store) SettleOutbox(ctx context.Context, owner string, id int64, r store.OutboxResult, events ...incident.Event) error {
	if err := store.CheckOutboxResult(r); err != nil {
		return fmt.Errorf("postgres: settle outbox %d: %w", id, err)
	}
	now := store.UTC(s.opts.Now())
	var done pgtype.Timestamptz
	if r.State != store.OutboxPending {
		done = pgtype.Timestamptz{Time: now, Valid: true}
	}
	notBefore := now
	if !r.NotBefore.IsZero() {
		notBefore = store.UTC(r.NotBefore)
	}
	errLease := errors.New("lease")
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE outbox SET state = $3, last_error = $4, done_at = $5, lease_owner = NULL,
				lease_until = NULL, not_before = CASE WHEN $3 = 'pending' THEN $6 ELSE not_before END
			WHERE id = $1 AND state = 'leased' AND lease_owner = $2`, id, owner, r.State, r.Error, done, notBefore)
		if err != nil {
			return mapErr(err)
		}
		if tag.RowsAffected() != 1 {
			return errLease
		}
		return s.insertEvents(ctx, tx, events)
	})
	if errors.Is(err, errLease) {
		var exists bool
		if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM outbox WHERE id = $1)`, id).Scan(&exists); err != nil {
			return fmt.Errorf("postgres: settle outbox %d: %w", id, mapErr(err))
		}
		if !exists {
			return fmt.Errorf("postgres: settle outbox %d: %w", id, store.ErrNotFound)
		}
		return fmt.Errorf("postgres: settle outbox %d: %w", id, store.ErrLeaseLost)
	}
	if err != nil {
		return fmt.Errorf("postgres: settle outbox %d: %w", id, err)
	}
	return nil
}

// OutboxDepth implements store.Store.
func (s *Store) OutboxDepth(ctx context.Context) (int, error) {
	var n int64
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE state IN ('pending', 'leased')`).Scan(&n); err != nil {
		return 0, fmt.Errorf("postgres: outbox depth: %w", mapErr(err))
	}
	return int(n), nil
}

// OpenIncidents implements store.Store (a count of the partial index
// incidents_firing_priority).
func (s *Store) OpenIncidents(ctx context.Context) (map[string]int, error) {
	rows, err := s.pool.Query(ctx, `SELECT priority, count(*) FROM incidents WHERE status = 'firing' GROUP BY priority`)
	if err != nil {
		return nil, fmt.Errorf("postgres: open incidents: %w", mapErr(err))
	}
	out := map[string]int{}
	var p string
	var n int64
	_, err = pgx.ForEachRow(rows, []any{&p, &n}, func() error {
		out[p] = int(n)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: open incidents: %w", mapErr(err))
	}
	return out, nil
}
