package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/remediator/remediator/internal/incident"
	"github.com/remediator/remediator/internal/store"
)

// queryer is what the guard-state reads need: a read-only transaction on
// the reader pool, or the write transaction of BeginExecution.
type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

const executionColumns = `id, incident_id, step, policy, remedy, action, namespace, kind, name, mode, change,
	state, reason, owner, created_at, updated_at, applied_at`

func scanExecution(sc scanner) (store.Execution, error) {
	var (
		e                store.Execution
		change           []byte
		created, updated int64
		applied          sql.NullInt64
	)
	if err := sc.Scan(&e.ID, &e.IncidentID, &e.Step, &e.Policy, &e.Remedy, &e.Action, &e.Namespace, &e.Kind, &e.Name,
		&e.Mode, &change, &e.State, &e.Reason, &e.Owner, &created, &updated, &applied); err != nil {
		return e, err
	}
	if len(change) > 0 {
		e.Change = json.RawMessage(change)
	}
	e.CreatedAt, e.UpdatedAt = fromMicros(created), fromMicros(updated)
	if applied.Valid {
		t := fromMicros(applied.Int64)
		e.AppliedAt = &t
	}
	return e, nil
}

func queryExecutions(ctx context.Context, q queryer, query string, args ...any) ([]store.Execution, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var list []store.Execution
	for rows.Next() {
		e, err := scanExecution(rows)
		if err != nil {
			return nil, err
		}
		list = append(list, e)
	}
	return list, rows.Err()
}

// guardState reads a GuardState inside q's transaction. gq is normalized.
func (s *Store) guardState(ctx context.Context, q queryer, gq store.GuardQuery) (store.GuardState, error) {
	var gs store.GuardState
	if gq.IncidentID != "" {
		err := q.QueryRowContext(ctx, `SELECT status FROM incidents WHERE id = ?`, gq.IncidentID).Scan(&gs.IncidentStatus)
		if errors.Is(err, sql.ErrNoRows) {
			return gs, fmt.Errorf("sqlite: guard state: incident %s: %w", gq.IncidentID, store.ErrNotFound)
		}
		if err != nil {
			return gs, fmt.Errorf("sqlite: guard state: incident: %w", mapErr(err))
		}
	}
	p, err := readPause(ctx, q)
	if err != nil {
		return gs, err
	}
	gs.Pause = p
	if gs.Windows, err = readWindows(ctx, q, gq.Now); err != nil {
		return gs, err
	}
	gs.InFlight, err = queryExecutions(ctx, q, `SELECT `+executionColumns+` FROM executions
		WHERE kind = ? AND namespace = ? AND name = ? AND state IN ('intent', 'applied')
		ORDER BY created_at, id`, gq.Kind, gq.Namespace, gq.Name)
	if err != nil {
		return gs, fmt.Errorf("sqlite: guard state: in flight: %w", mapErr(err))
	}
	gs.TargetRecent, err = queryExecutions(ctx, q, `SELECT `+executionColumns+` FROM executions
		WHERE kind = ? AND namespace = ? AND name = ? AND created_at >= ?
		ORDER BY created_at DESC, id DESC`, gq.Kind, gq.Namespace, gq.Name, micros(gq.Since))
	if err != nil {
		return gs, fmt.Errorf("sqlite: guard state: recent: %w", mapErr(err))
	}
	err = q.QueryRowContext(ctx, `SELECT count(*) FROM executions WHERE created_at > ? AND state <> 'abandoned'`,
		micros(gq.Now.Add(-time.Hour))).Scan(&gs.GlobalLastHour)
	if err != nil {
		return gs, fmt.Errorf("sqlite: guard state: last hour: %w", mapErr(err))
	}
	return gs, nil
}

// GuardState implements store.Store.
func (s *Store) GuardState(ctx context.Context, q store.GuardQuery) (store.GuardState, error) {
	q = q.Normalize(s.opts.Now())
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true}) // one snapshot
	if err != nil {
		return store.GuardState{}, fmt.Errorf("sqlite: guard state: %w", mapErr(err))
	}
	defer tx.Rollback()
	return s.guardState(ctx, tx, q)
}

// targetQuery fills q's incident and target from e when q names none, and
// refuses a q about another incident or target than e.
func targetQuery(e store.Execution, q store.GuardQuery) (store.GuardQuery, error) {
	if q.IncidentID == "" {
		q.IncidentID = e.IncidentID
	}
	if q.Kind == "" && q.Namespace == "" && q.Name == "" {
		q.Kind, q.Namespace, q.Name = e.Kind, e.Namespace, e.Name
	}
	if q.IncidentID != e.IncidentID || store.TargetKey(q.Kind, q.Namespace, q.Name) != e.TargetKey() {
		return q, fmt.Errorf("begin execution %s: guard query for %s %s, execution for %s %s",
			e.ID, q.IncidentID, store.TargetKey(q.Kind, q.Namespace, q.Name), e.IncidentID, e.TargetKey())
	}
	return q, nil
}

// BeginExecution implements store.Store. The transaction is BEGIN IMMEDIATE
// on the one writer connection: it holds the database's write lock from its
// start, so it is serialized with every other write, also of other
// processes on the same file.
func (s *Store) BeginExecution(ctx context.Context, e store.Execution, q store.GuardQuery, decide func(store.GuardState) error, events ...incident.Event) error {
	now := s.opts.Now()
	e, err := store.PrepareExecution(e, now)
	if err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	if q, err = targetQuery(e, q); err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	q = q.Normalize(now)
	return s.write(ctx, "begin execution "+e.ID, func(tx *sql.Tx) error {
		gs, err := s.guardState(ctx, tx, q)
		if err != nil {
			return err
		}
		if decide != nil {
			if err := decide(gs); err != nil {
				return err // unchanged: the caller tests it with errors.Is/As
			}
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO executions (`+executionColumns+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)
			ON CONFLICT DO NOTHING`,
			e.ID, e.IncidentID, e.Step, e.Policy, e.Remedy, e.Action, e.Namespace, e.Kind, e.Name, e.Mode,
			nullJSON(e.Change), e.State, e.Reason, e.Owner, micros(e.CreatedAt), micros(e.UpdatedAt))
		if err != nil { // e's incident exists: guardState read it
			return fmt.Errorf("sqlite: begin execution: %w", mapErr(err))
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("sqlite: begin execution: %w", mapErr(err))
		} else if n != 1 {
			return fmt.Errorf("sqlite: execution %s (incident %s step %d): %w", e.ID, e.IncidentID, e.Step, store.ErrExists)
		}
		return s.insertEvents(ctx, tx, events)
	})
}

// FinishExecution implements store.Store.
func (s *Store) FinishExecution(ctx context.Context, id string, from []string, to, reason string, events ...incident.Event) error {
	if err := store.CheckExecState(to); err != nil {
		return fmt.Errorf("sqlite: finish execution %s: %w", id, err)
	}
	now := micros(s.opts.Now())
	args := []any{to, reason, now, to == store.ExecApplied, now, id}
	in := "NULL"
	if len(from) > 0 {
		in = strings.TrimSuffix(strings.Repeat("?, ", len(from)), ", ")
		for _, f := range from {
			args = append(args, f)
		}
	}
	return s.write(ctx, "finish execution "+id, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE executions SET state = ?, reason = ?, updated_at = ?,
				applied_at = CASE WHEN ? THEN ? ELSE applied_at END
			WHERE id = ? AND state IN (`+in+`)`, args...)
		if isUnique(err) { // out of abandoned, but the step was taken again
			return fmt.Errorf("sqlite: finish execution %s: its step has another execution: %w", id, store.ErrExists)
		}
		if err != nil {
			return fmt.Errorf("sqlite: finish execution %s: %w", id, mapErr(err))
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("sqlite: finish execution %s: %w", id, mapErr(err))
		} else if n != 1 {
			var state string
			err := tx.QueryRowContext(ctx, `SELECT state FROM executions WHERE id = ?`, id).Scan(&state)
			switch {
			case errors.Is(err, sql.ErrNoRows):
				return fmt.Errorf("sqlite: finish execution %s: %w", id, store.ErrNotFound)
			case err != nil:
				return fmt.Errorf("sqlite: finish execution %s: %w", id, mapErr(err))
			}
			return fmt.Errorf("sqlite: finish execution %s: it is %s, not %s: %w", id, state,
				strings.Join(from, "|"), store.ErrConflict)
		}
		return s.insertEvents(ctx, tx, events)
	})
}

// Executions implements store.Store: oldest first.
func (s *Store) Executions(ctx context.Context, f store.ExecutionFilter) ([]store.Execution, error) {
	var where []string
	var args []any
	add := func(col, v string) {
		if v != "" {
			where = append(where, col+" = ?")
			args = append(args, v)
		}
	}
	add("incident_id", f.IncidentID)
	add("namespace", f.Namespace)
	add("kind", f.Kind)
	add("name", f.Name)
	if len(f.States) > 0 {
		where = append(where, "state IN ("+strings.TrimSuffix(strings.Repeat("?, ", len(f.States)), ", ")+")")
		for _, st := range f.States {
			args = append(args, st)
		}
	}
	q := `SELECT ` + executionColumns + ` FROM executions`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY created_at, id LIMIT ?"
	args = append(args, store.Limit(f.Limit))
	list, err := queryExecutions(ctx, s.r, q, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: executions: %w", mapErr(err))
	}
	if list == nil {
		list = []store.Execution{}
	}
	return list, nil
}

func readPause(ctx context.Context, q queryer) (store.PauseState, error) {
	var p store.PauseState
	var at sql.NullInt64
	err := q.QueryRowContext(ctx, `SELECT paused, paused_by, reason, at FROM pause_state WHERE id = 1`).
		Scan(&p.Paused, &p.By, &p.Reason, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return p, errors.New("sqlite: pause state: the row is missing")
	}
	if err != nil {
		return p, fmt.Errorf("sqlite: pause state: %w", mapErr(err))
	}
	if at.Valid {
		p.At = fromMicros(at.Int64)
	}
	return p, nil
}

// Pause implements store.Store.
func (s *Store) Pause(ctx context.Context) (store.PauseState, error) { return readPause(ctx, s.r) }

// SetPause implements store.Store.
func (s *Store) SetPause(ctx context.Context, p store.PauseState, events ...incident.Event) error {
	p = store.PreparePause(p, s.opts.Now())
	return s.write(ctx, "set pause", func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO pause_state (id, paused, paused_by, reason, at) VALUES (1, ?, ?, ?, ?)
			ON CONFLICT (id) DO UPDATE SET paused = excluded.paused, paused_by = excluded.paused_by,
				reason = excluded.reason, at = excluded.at`, p.Paused, p.By, p.Reason, micros(p.At)); err != nil {
			return fmt.Errorf("sqlite: set pause: %w", mapErr(err))
		}
		return s.insertEvents(ctx, tx, events)
	})
}

func readWindows(ctx context.Context, q queryer, at time.Time) ([]store.Window, error) {
	rows, err := q.QueryContext(ctx, `SELECT id, start_at, end_at, namespaces, reason, created_by, created_at
		FROM maintenance_windows WHERE end_at > ? ORDER BY start_at, id`, micros(at))
	if err != nil {
		return nil, fmt.Errorf("sqlite: windows: %w", mapErr(err))
	}
	defer rows.Close()
	var list []store.Window
	for rows.Next() {
		var w store.Window
		var start, end, created int64
		var namespaces []byte
		if err := rows.Scan(&w.ID, &start, &end, &namespaces, &w.Reason, &w.By, &created); err != nil {
			return nil, fmt.Errorf("sqlite: windows: %w", mapErr(err))
		}
		w.Start, w.End, w.CreatedAt = fromMicros(start), fromMicros(end), fromMicros(created)
		if err := json.Unmarshal(namespaces, &w.Namespaces); err != nil {
			return nil, fmt.Errorf("sqlite: window %s namespaces: %w", w.ID, err)
		}
		if len(w.Namespaces) == 0 {
			w.Namespaces = nil
		}
		list = append(list, w)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: windows: %w", mapErr(err))
	}
	return list, nil
}

// Windows implements store.Store.
func (s *Store) Windows(ctx context.Context, at time.Time) ([]store.Window, error) {
	list, err := readWindows(ctx, s.r, at)
	if list == nil && err == nil {
		list = []store.Window{}
	}
	return list, err
}

// AddWindow implements store.Store.
func (s *Store) AddWindow(ctx context.Context, w store.Window) error {
	w, err := store.PrepareWindow(w, s.opts.Now())
	if err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	namespaces := w.Namespaces
	if namespaces == nil {
		namespaces = []string{}
	}
	ns, err := json.Marshal(namespaces)
	if err != nil {
		return fmt.Errorf("sqlite: add window: %w", err)
	}
	return s.write(ctx, "add window", func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO maintenance_windows
			(id, start_at, end_at, namespaces, reason, created_by, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT DO NOTHING`,
			w.ID, micros(w.Start), micros(w.End), string(ns), w.Reason, w.By, micros(w.CreatedAt))
		if err != nil {
			return fmt.Errorf("sqlite: add window: %w", mapErr(err))
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("sqlite: add window: %w", mapErr(err))
		} else if n != 1 {
			return fmt.Errorf("sqlite: window %s: %w", w.ID, store.ErrExists)
		}
		return nil
	})
}

// DeleteWindow implements store.Store.
func (s *Store) DeleteWindow(ctx context.Context, id string) error {
	return s.write(ctx, "delete window", func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM maintenance_windows WHERE id = ?`, id)
		if err != nil {
			return fmt.Errorf("sqlite: delete window %s: %w", id, mapErr(err))
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("sqlite: delete window %s: %w", id, mapErr(err))
		} else if n != 1 {
			return fmt.Errorf("sqlite: window %s: %w", id, store.ErrNotFound)
		}
		return nil
	})
}

const proposalColumns = `id, incident_id, step, policy, remedy, action, namespace, kind, name, plan, state,
	created_at, expires_at, decided_by, reason, decided_at`

func scanProposal(sc scanner) (store.Proposal, error) {
	var (
		p                store.Proposal
		plan             []byte
		created, expires int64
		decided          sql.NullInt64
	)
	if err := sc.Scan(&p.ID, &p.IncidentID, &p.Step, &p.Policy, &p.Remedy, &p.Action, &p.Namespace, &p.Kind, &p.Name,
		&plan, &p.State, &created, &expires, &p.DecidedBy, &p.Reason, &decided); err != nil {
		return p, err
	}
	if len(plan) > 0 {
		p.Plan = json.RawMessage(plan)
	}
	p.CreatedAt, p.ExpiresAt = fromMicros(created), fromMicros(expires)
	if decided.Valid {
		t := fromMicros(decided.Int64)
		p.DecidedAt = &t
	}
	return p, nil
}

// Propose implements store.Store.
func (s *Store) Propose(ctx context.Context, p store.Proposal, next []store.NewJob, events ...incident.Event) error {
	now := s.opts.Now()
	p, err := store.PrepareProposal(p, now)
	if err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	if next, err = store.PrepareJobs(next, now); err != nil {
		return fmt.Errorf("sqlite: propose: %w", err)
	}
	return s.write(ctx, "propose", func(tx *sql.Tx) error {
		var one int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM incidents WHERE id = ?`, p.IncidentID).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("sqlite: propose: incident %s: %w", p.IncidentID, store.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("sqlite: propose: %w", mapErr(err))
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO proposals (`+proposalColumns+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '', '', NULL)
			ON CONFLICT DO NOTHING`,
			p.ID, p.IncidentID, p.Step, p.Policy, p.Remedy, p.Action, p.Namespace, p.Kind, p.Name,
			nullJSON(p.Plan), p.State, micros(p.CreatedAt), micros(p.ExpiresAt))
		if err != nil {
			return fmt.Errorf("sqlite: propose: %w", mapErr(err))
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("sqlite: propose: %w", mapErr(err))
		} else if n != 1 {
			return fmt.Errorf("sqlite: proposal %s (incident %s step %d): %w", p.ID, p.IncidentID, p.Step, store.ErrExists)
		}
		if err := s.insertJobs(ctx, tx, next); err != nil {
			return err
		}
		return s.insertEvents(ctx, tx, events)
	})
}

// Proposals implements store.Store: oldest first.
func (s *Store) Proposals(ctx context.Context, incidentID string) ([]store.Proposal, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+proposalColumns+` FROM proposals WHERE incident_id = ?
		ORDER BY created_at, id`, incidentID)
	if err != nil {
		return nil, fmt.Errorf("sqlite: proposals: %w", mapErr(err))
	}
	defer rows.Close()
	list := []store.Proposal{}
	for rows.Next() {
		p, err := scanProposal(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: proposals: %w", mapErr(err))
		}
		list = append(list, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: proposals: %w", mapErr(err))
	}
	return list, nil
}

func readProposal(ctx context.Context, q queryer, id string) (store.Proposal, error) {
	p, err := scanProposal(q.QueryRowContext(ctx, `SELECT `+proposalColumns+` FROM proposals WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return p, fmt.Errorf("sqlite: proposal %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return p, fmt.Errorf("sqlite: proposal %s: %w", id, mapErr(err))
	}
	return p, nil
}

// Proposal implements store.Store.
func (s *Store) Proposal(ctx context.Context, id string) (store.Proposal, error) {
	return readProposal(ctx, s.r, id)
}

// DecideProposal implements store.Store.
func (s *Store) DecideProposal(ctx context.Context, id, to, by, reason string, at time.Time,
	next []store.NewJob, events ...incident.Event) (store.Proposal, error) {
	if err := store.CheckDecision(to); err != nil {
		return store.Proposal{}, fmt.Errorf("sqlite: decide proposal %s: %w", id, err)
	}
	now := s.opts.Now()
	if at.IsZero() {
		at = now
	}
	next, err := store.PrepareJobs(next, now)
	if err != nil {
		return store.Proposal{}, fmt.Errorf("sqlite: decide proposal %s: %w", id, err)
	}
	var cur, dec store.Proposal
	err = s.write(ctx, "decide proposal "+id, func(tx *sql.Tx) error {
		var err error
		if cur, err = readProposal(ctx, tx, id); err != nil {
			return err
		}
		if dec, err = store.Decide(cur, to, by, reason, at); err != nil {
			return fmt.Errorf("sqlite: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE proposals SET state = ?, decided_by = ?, reason = ?, decided_at = ?
			WHERE id = ? AND state = 'pending'`, dec.State, dec.DecidedBy, dec.Reason, micros(*dec.DecidedAt), id); err != nil {
			return fmt.Errorf("sqlite: decide proposal %s: %w", id, mapErr(err))
		}
		if err := s.insertJobs(ctx, tx, next); err != nil {
			return err
		}
		return s.insertEvents(ctx, tx, events)
	})
	switch {
	case err == nil:
		return dec, nil
	case errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrExpired):
		return cur, err // refused: the proposal as it is
	}
	return store.Proposal{}, err
}
