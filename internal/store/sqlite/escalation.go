package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/remediator/remediator/internal/incident"
	"github.com/remediator/remediator/internal/store"
)

// Escalation: priorities, acknowledgements, escalations and the outbox
// (migration 0004_escalation).

const escalationStateColumns = `id, status, priority, priority_since, escalation_level, escalation_count,
	escalated_priority, last_escalated_at, acknowledged_at, acknowledged_by, ack_reason`

func readEscalationState(ctx context.Context, q queryer, id string) (store.EscalationState, error) {
	var (
		st                          store.EscalationState
		since, last, acked          sql.NullInt64
		level, count                int
		status, priority, escalated string
	)
	err := q.QueryRowContext(ctx, `SELECT `+escalationStateColumns+` FROM incidents WHERE id = ?`, id).Scan(
		&st.IncidentID, &status, &priority, &since, &level, &count, &escalated, &last, &acked, &st.AcknowledgedBy, &st.AckReason)
	if errors.Is(err, sql.ErrNoRows) {
		return st, fmt.Errorf("sqlite: incident %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return st, fmt.Errorf("sqlite: escalation state of %s: %w", id, mapErr(err))
	}
	st.Status, st.Priority, st.Level, st.Escalations, st.EscalatedPriority = status, priority, level, count, escalated
	st.PrioritySince, st.LastEscalatedAt, st.AcknowledgedAt = nullTime(since), nullTime(last), nullTime(acked)
	return st, nil
}

func nullTime(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := fromMicros(v.Int64)
	return &t
}

func nullMicros(t *time.Time) any {
	if t == nil {
		return nil
	}
	return micros(*t)
}

// EscalationState implements store.Store.
func (s *Store) EscalationState(ctx context.Context, incidentID string) (store.EscalationState, error) {
	return readEscalationState(ctx, s.r, incidentID)
}

// RaisePriority implements store.Store.
func (s *Store) RaisePriority(ctx context.Context, incidentID, p string, at time.Time, next []store.NewJob) (store.EscalationState, bool, error) {
	if err := store.CheckPriority(p); err != nil {
		return store.EscalationState{}, false, fmt.Errorf("sqlite: raise priority of %s: %w", incidentID, err)
	}
	now := s.opts.Now()
	if at.IsZero() {
		at = now
	}
	at = store.UTC(at)
	next, err := store.PrepareJobs(next, now)
	if err != nil {
		return store.EscalationState{}, false, fmt.Errorf("sqlite: raise priority of %s: %w", incidentID, err)
	}
	var st store.EscalationState
	var raised bool
	err = s.write(ctx, "raise priority", func(tx *sql.Tx) error {
		var err error
		if st, err = readEscalationState(ctx, tx, incidentID); err != nil {
			return err
		}
		if !store.HigherPriority(p, st.Priority) {
			return nil
		}
		if _, err := tx.ExecContext(ctx, `UPDATE incidents SET priority = ?, priority_since = ? WHERE id = ?`,
			p, micros(at), incidentID); err != nil {
			return fmt.Errorf("sqlite: raise priority of %s: %w", incidentID, mapErr(err))
		}
		if err := s.insertJobs(ctx, tx, next); err != nil {
			return err
		}
		raised, st.Priority, st.PrioritySince = true, p, &at
		return nil
	})
	if err != nil {
		return store.EscalationState{}, false, err
	}
	return st, raised, nil
}

// Escalate implements store.Store.
func (s *Store) Escalate(ctx context.Context, e store.Escalation, next []store.NewJob, events ...incident.Event) error {
	now := s.opts.Now()
	e, err := store.PrepareEscalation(e, now)
	if err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	if next, err = store.PrepareJobs(next, now); err != nil {
		return fmt.Errorf("sqlite: escalate: %w", err)
	}
	return s.write(ctx, "escalate "+e.IncidentID, func(tx *sql.Tx) error {
		st, err := readEscalationState(ctx, tx, e.IncidentID)
		if err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO escalations (id, incident_id, dedup_key, priority, reason, level, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
			e.ID, e.IncidentID, e.Key, e.Priority, e.Reason, e.Level, micros(e.At))
		if err != nil {
			return fmt.Errorf("sqlite: escalate: %w", mapErr(err))
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("sqlite: escalate: %w", mapErr(err))
		} else if n != 1 {
			return fmt.Errorf("sqlite: escalation %s of incident %s: %w", e.Key, e.IncidentID, store.ErrExists)
		}
		if e.Finish != nil {
			if err := finishInTx(ctx, tx, *e.Finish, micros(now)); err != nil {
				return err
			}
		}
		pr, since := st.Priority, nullMicros(st.PrioritySince)
		if store.HigherPriority(e.Priority, pr) {
			pr, since = e.Priority, micros(e.At)
		}
		escalated := st.EscalatedPriority
		if store.HigherPriority(pr, escalated) {
			escalated = pr
		}
		if _, err := tx.ExecContext(ctx, `UPDATE incidents SET priority = ?, priority_since = ?,
				escalation_level = max(escalation_level, ?), escalation_count = escalation_count + 1,
				escalated_priority = ?, last_escalated_at = ?
			WHERE id = ?`, pr, since, e.Level, escalated, micros(e.At), e.IncidentID); err != nil {
			return fmt.Errorf("sqlite: escalate: %w", mapErr(err))
		}
		for _, m := range e.Outbox {
			if _, err := tx.ExecContext(ctx, `INSERT INTO outbox (incident_id, escalation_id, channel, target, destination,
					payload, state, attempts, not_before, created_at) VALUES (?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?)`,
				m.IncidentID, m.EscalationID, m.Channel, m.Target, m.Destination, string(m.Payload),
				micros(m.NotBefore), micros(m.CreatedAt)); err != nil {
				return fmt.Errorf("sqlite: escalate: outbox: %w", mapErr(err))
			}
		}
		if err := s.insertJobs(ctx, tx, next); err != nil {
			return err
		}
		return s.insertEvents(ctx, tx, events)
	})
}

// finishInTx is FinishExecution's update inside tx.
func finishInTx(ctx context.Context, tx *sql.Tx, c store.ExecutionChange, now int64) error {
	args := []any{c.To, c.Reason, now, c.To == store.ExecApplied, now, c.ID}
	in := "NULL"
	if len(c.From) > 0 {
		in = strings.TrimSuffix(strings.Repeat("?, ", len(c.From)), ", ")
		for _, f := range c.From {
			args = append(args, f)
		}
	}
	res, err := tx.ExecContext(ctx, `UPDATE executions SET state = ?, reason = ?, updated_at = ?,
			applied_at = CASE WHEN ? THEN ? ELSE applied_at END
		WHERE id = ? AND state IN (`+in+`)`, args...)
	if isUnique(err) {
		return fmt.Errorf("sqlite: finish execution %s: its step has another execution: %w", c.ID, store.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("sqlite: finish execution %s: %w", c.ID, mapErr(err))
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("sqlite: finish execution %s: %w", c.ID, mapErr(err))
	} else if n == 1 {
		return nil
	}
	var state string
	err = tx.QueryRowContext(ctx, `SELECT state FROM executions WHERE id = ?`, c.ID).Scan(&state)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("sqlite: finish execution %s: %w", c.ID, store.ErrNotFound)
	case err != nil:
		return fmt.Errorf("sqlite: finish execution %s: %w", c.ID, mapErr(err))
	}
	return fmt.Errorf("sqlite: finish execution %s: it is %s, not %s: %w", c.ID, state, strings.Join(c.From, "|"), store.ErrConflict)
}

// Acknowledge implements store.Store.
func (s *Store) Acknowledge(ctx context.Context, incidentID, by, reason string, at time.Time, events ...incident.Event) (store.EscalationState, error) {
	if at.IsZero() {
		at = s.opts.Now()
	}
	at = store.UTC(at)
	var st store.EscalationState
	err := s.write(ctx, "acknowledge "+incidentID, func(tx *sql.Tx) error {
		var err error
		if st, err = readEscalationState(ctx, tx, incidentID); err != nil {
			return err
		}
		if st.Acknowledged() {
			return fmt.Errorf("sqlite: incident %s: acknowledged by %s at %s: %w", incidentID, st.AcknowledgedBy,
				st.AcknowledgedAt.Format(time.RFC3339), store.ErrAcknowledged)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE incidents SET acknowledged_at = ?, acknowledged_by = ?, ack_reason = ?
			WHERE id = ? AND acknowledged_at IS NULL`, micros(at), by, reason, incidentID); err != nil {
			return fmt.Errorf("sqlite: acknowledge %s: %w", incidentID, mapErr(err))
		}
		if err := s.insertEvents(ctx, tx, events); err != nil {
			return err
		}
		st.AcknowledgedAt, st.AcknowledgedBy, st.AckReason = &at, by, reason
		return nil
	})
	if err != nil && !errors.Is(err, store.ErrAcknowledged) {
		return store.EscalationState{}, err
	}
	return st, err
}

const outboxColumns = `id, incident_id, escalation_id, channel, target, destination, payload, state, attempts,
	not_before, last_error, created_at, done_at`

func scanOutbox(sc scanner) (store.OutboxMessage, error) {
	var (
		m                  store.OutboxMessage
		payload            string
		notBefore, created int64
		done               sql.NullInt64
	)
	if err := sc.Scan(&m.ID, &m.IncidentID, &m.EscalationID, &m.Channel, &m.Target, &m.Destination, &payload,
		&m.State, &m.Attempts, &notBefore, &m.LastError, &created, &done); err != nil {
		return m, err
	}
	m.Payload = json.RawMessage(payload)
	m.NotBefore, m.CreatedAt, m.DoneAt = fromMicros(notBefore), fromMicros(created), nullTime(done)
	return m, nil
}

func collectOutbox(rows *sql.Rows) ([]store.OutboxMessage, error) {
	defer rows.Close()
	list := []store.OutboxMessage{}
	for rows.Next() {
		m, err := scanOutbox(rows)
		if err != nil {
			return nil, err
		}
		list = append(list, m)
	}
	return list, rows.Err()
}

// Outbox implements store.Store.
func (s *Store) Outbox(ctx context.Context, f store.OutboxFilter) ([]store.OutboxMessage, error) {
	var where []string
	var args []any
	if f.IncidentID != "" {
		where = append(where, "incident_id = ?")
		args = append(args, f.IncidentID)
	}
	if len(f.States) > 0 {
		where = append(where, "state IN ("+strings.TrimSuffix(strings.Repeat("?, ", len(f.States)), ", ")+")")
		for _, st := range f.States {
			args = append(args, st)
		}
	}
	q := `SELECT ` + outboxColumns + ` FROM outbox`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY id LIMIT ?"
	args = append(args, store.Limit(f.Limit))
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: outbox: %w", mapErr(err))
	}
	list, err := collectOutbox(rows)
	if err != nil {
		return nil, fmt.Errorf("sqlite: outbox: %w", mapErr(err))
	}
	return list, nil
}

// ClaimOutbox implements store.Store. The writer connection serializes
// claims, also of other processes on the same file.
func (s *Store) ClaimOutbox(ctx context.Context, owner string, limit int, lease time.Duration) ([]store.OutboxMessage, error) {
	if limit <= 0 {
		return nil, nil
	}
	now := store.UTC(s.opts.Now())
	rows, err := s.w.QueryContext(ctx, `UPDATE outbox SET state = 'leased', lease_owner = ?, lease_until = ?, attempts = attempts + 1
		WHERE id IN (
			SELECT id FROM outbox
			WHERE state IN ('pending', 'leased')
			  AND ((state = 'pending' AND not_before <= ?) OR (state = 'leased' AND lease_until <= ?))
			ORDER BY id
			LIMIT ?)
		RETURNING `+outboxColumns, owner, micros(now.Add(lease)), micros(now), micros(now), limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: claim outbox: %w", mapErr(err))
	}
	list, err := collectOutbox(rows)
	if err != nil {
		return nil, fmt.Errorf("sqlite: claim outbox: %w", mapErr(err))
	}
	// RETURNING gives no order.
	slices.SortFunc(list, func(a, b store.OutboxMessage) int { return cmp.Compare(a.ID, b.ID) })
	return list, nil
}

// SettleOutbox implements store.Store.
func (s *Store) SettleOutbox(ctx context.Context, owner string, id int64, r store.OutboxResult, events ...incident.Event) error {
	if err := store.CheckOutboxResult(r); err != nil {
		return fmt.Errorf("sqlite: settle outbox %d: %w", id, err)
	}
	now := micros(s.opts.Now())
	var done any
	if r.State != store.OutboxPending {
		done = now
	}
	notBefore := now
	if !r.NotBefore.IsZero() {
		notBefore = micros(r.NotBefore)
	}
	return s.write(ctx, fmt.Sprintf("settle outbox %d", id), func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE outbox SET state = ?, last_error = ?, done_at = ?, lease_owner = NULL,
				lease_until = NULL, not_before = CASE WHEN ? = 'pending' THEN ? ELSE not_before END
			WHERE id = ? AND state = 'leased' AND lease_owner = ?`, r.State, r.Error, done, r.State, notBefore, id, owner)
		if err != nil {
			return fmt.Errorf("sqlite: settle outbox %d: %w", id, mapErr(err))
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("sqlite: settle outbox %d: %w", id, mapErr(err))
		} else if n != 1 {
			var one int
			err := tx.QueryRowContext(ctx, `SELECT 1 FROM outbox WHERE id = ?`, id).Scan(&one)
			switch {
			case errors.Is(err, sql.ErrNoRows):
				return fmt.Errorf("sqlite: settle outbox %d: %w", id, store.ErrNotFound)
			case err != nil:
				return fmt.Errorf("sqlite: settle outbox %d: %w", id, mapErr(err))
			}
			return fmt.Errorf("sqlite: settle outbox %d: %w", id, store.ErrLeaseLost)
		}
		return s.insertEvents(ctx, tx, events)
	})
}

// OutboxDepth implements store.Store.
func (s *Store) OutboxDepth(ctx context.Context) (int, error) {
	var n int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM outbox WHERE state IN ('pending', 'leased')`).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlite: outbox depth: %w", mapErr(err))
	}
	return n, nil
}

// OpenIncidents implements store.Store (an index-only count of
// incidents_firing_priority).
func (s *Store) OpenIncidents(ctx context.Context) (map[string]int, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT priority, count(*) FROM incidents WHERE status = 'firing' GROUP BY priority`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open incidents: %w", mapErr(err))
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var p string
		var n int
		if err := rows.Scan(&p, &n); err != nil {
			return nil, fmt.Errorf("sqlite: open incidents: %w", mapErr(err))
		}
		out[p] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: open incidents: %w", mapErr(err))
	}
	return out, nil
}
