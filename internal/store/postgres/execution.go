package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/remediator/remediator/internal/incident"
	"github.com/remediator/remediator/internal/store"
)

const executionColumns = `id, incident_id, step, policy, remedy, action, namespace, kind, name, mode, change::text,
	state, reason, owner, created_at, updated_at, applied_at`

func scanExecution(row pgx.Row) (store.Execution, error) {
	var (
		e       store.Execution
		step    int32
		change  pgtype.Text
		applied pgtype.Timestamptz
	)
	if err := row.Scan(&e.ID, &e.IncidentID, &step, &e.Policy, &e.Remedy, &e.Action, &e.Namespace, &e.Kind, &e.Name,
		&e.Mode, &change, &e.State, &e.Reason, &e.Owner, &e.CreatedAt, &e.UpdatedAt, &applied); err != nil {
		return e, err
	}
	e.Step = int(step)
	if change.Valid {
		e.Change = []byte(change.String)
	}
	e.CreatedAt, e.UpdatedAt = e.CreatedAt.UTC(), e.UpdatedAt.UTC()
	if applied.Valid {
		t := applied.Time.UTC()
		e.AppliedAt = &t
	}
	return e, nil
}

func queryExecutions(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, sql string, args ...any) ([]store.Execution, error) {
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Execution, error) { return scanExecution(r) })
}

// guardState reads a GuardState inside tx. gq is normalized. With lock,
// the incident's row is locked FOR SHARE until tx ends, so its status
// cannot change (Ingest resolving it waits) before an intent is written.
func (s *Store) guardState(ctx context.Context, tx pgx.Tx, gq store.GuardQuery, lock bool) (store.GuardState, error) {
	var gs store.GuardState
	if gq.IncidentID != "" {
		q := `SELECT status FROM incidents WHERE id = $1`
		if lock {
			q += ` FOR SHARE`
		}
		err := tx.QueryRow(ctx, q, gq.IncidentID).Scan(&gs.IncidentStatus)
		if errors.Is(err, pgx.ErrNoRows) {
			return gs, fmt.Errorf("guard state: incident %s: %w", gq.IncidentID, store.ErrNotFound)
		}
		if err != nil {
			return gs, fmt.Errorf("guard state: incident: %w", mapErr(err))
		}
	}
	var err error
	if gs.Pause, err = readPause(ctx, tx); err != nil {
		return gs, err
	}
	if gs.Windows, err = readWindows(ctx, tx, gq.Now); err != nil {
		return gs, err
	}
	gs.InFlight, err = queryExecutions(ctx, tx, `SELECT `+executionColumns+` FROM executions
		WHERE kind = $1 AND namespace = $2 AND name = $3 AND state IN ('intent', 'applied')
		ORDER BY created_at, id`, gq.Kind, gq.Namespace, gq.Name)
	if err != nil {
		return gs, fmt.Errorf("guard state: in flight: %w", mapErr(err))
	}
	gs.TargetRecent, err = queryExecutions(ctx, tx, `SELECT `+executionColumns+` FROM executions
		WHERE kind = $1 AND namespace = $2 AND name = $3 AND created_at >= $4
		ORDER BY created_at DESC, id DESC`, gq.Kind, gq.Namespace, gq.Name, gq.Since)
	if err != nil {
		return gs, fmt.Errorf("guard state: recent: %w", mapErr(err))
	}
	var n int64
	err = tx.QueryRow(ctx, `SELECT count(*) FROM executions WHERE created_at > $1 AND state <> 'abandoned'`,
		gq.Now.Add(-time.Hour)).Scan(&n)
	if err != nil {
		return gs, fmt.Errorf("guard state: last hour: %w", mapErr(err))
	}
	gs.GlobalLastHour = int(n)
	return gs, nil
}

// GuardState implements store.Store: one read-only snapshot.
func (s *Store) GuardState(ctx context.Context, q store.GuardQuery) (store.GuardState, error) {
	q = q.Normalize(s.opts.Now())
	var gs store.GuardState
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly},
		func(tx pgx.Tx) error {
			var err error
			gs, err = s.guardState(ctx, tx, q, false)
			return err
		})
	if err != nil {
		return store.GuardState{}, fmt.Errorf("postgres: %w", mapErr(err))
	}
	return gs, nil
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

func jsonText(b []byte) pgtype.Text {
	if len(b) == 0 {
		return pgtype.Text{}
	}
	return pgtype.Text{String: string(b), Valid: true}
}

// BeginExecution implements store.Store. Its transaction first takes the
// transaction-scoped advisory lock guardLock, so the begins of all
// replicas run one at a time, each reading (READ COMMITTED, statements
// after the lock) what the previous ones committed.
func (s *Store) BeginExecution(ctx context.Context, e store.Execution, q store.GuardQuery, decide func(store.GuardState) error, events ...incident.Event) error {
	now := s.opts.Now()
	e, err := store.PrepareExecution(e, now)
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	if q, err = targetQuery(e, q); err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	q = q.Normalize(now)
	var refused error
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, guardLock); err != nil {
			return fmt.Errorf("begin execution: lock: %w", mapErr(err))
		}
		gs, err := s.guardState(ctx, tx, q, true)
		if err != nil {
			return err
		}
		if decide != nil {
			if refused = decide(gs); refused != nil {
				return refused
			}
		}
		tag, err := tx.Exec(ctx, `INSERT INTO executions (`+strings.ReplaceAll(executionColumns, "::text", "")+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::text::json, $12, $13, $14, $15, $16, NULL)
			ON CONFLICT DO NOTHING`,
			e.ID, e.IncidentID, e.Step, e.Policy, e.Remedy, e.Action, e.Namespace, e.Kind, e.Name, e.Mode,
			jsonText(e.Change), e.State, e.Reason, e.Owner, e.CreatedAt, e.UpdatedAt)
		if err != nil {
			return fmt.Errorf("begin execution: %w", mapErr(err))
		}
		if tag.RowsAffected() != 1 {
			return fmt.Errorf("execution %s (incident %s step %d): %w", e.ID, e.IncidentID, e.Step, store.ErrExists)
		}
		return s.insertEvents(ctx, tx, events)
	})
	if refused != nil && err == refused {
		return refused // unchanged: the caller tests it with errors.Is/As
	}
	if err != nil {
		return fmt.Errorf("postgres: %w", mapErr(err))
	}
	return nil
}

// FinishExecution implements store.Store.
func (s *Store) FinishExecution(ctx context.Context, id string, from []string, to, reason string, events ...incident.Event) error {
	if err := store.CheckExecState(to); err != nil {
		return fmt.Errorf("postgres: finish execution %s: %w", id, err)
	}
	if from == nil {
		from = []string{}
	}
	now := store.UTC(s.opts.Now())
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE executions SET state = $2, reason = $3, updated_at = $4,
				applied_at = CASE WHEN $5 THEN $4 ELSE applied_at END
			WHERE id = $1 AND state = ANY($6::text[])`, id, to, reason, now, to == store.ExecApplied, from)
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "23505" { // out of abandoned, but the step was taken again
			return fmt.Errorf("its step has another execution: %w", store.ErrExists)
		}
		if err != nil {
			return mapErr(err)
		}
		if tag.RowsAffected() != 1 {
			var state string
			err := tx.QueryRow(ctx, `SELECT state FROM executions WHERE id = $1`, id).Scan(&state)
			switch {
			case errors.Is(err, pgx.ErrNoRows):
				return store.ErrNotFound
			case err != nil:
				return mapErr(err)
			}
			return fmt.Errorf("it is %s, not %s: %w", state, strings.Join(from, "|"), store.ErrConflict)
		}
		return s.insertEvents(ctx, tx, events)
	})
	if err != nil {
		return fmt.Errorf("postgres: finish execution %s: %w", id, err)
	}
	return nil
}

// Executions implements store.Store: oldest first.
func (s *Store) Executions(ctx context.Context, f store.ExecutionFilter) ([]store.Execution, error) {
	var where []string
	var args []any
	add := func(col, v string) {
		if v != "" {
			args = append(args, v)
			where = append(where, fmt.Sprintf("%s = $%d", col, len(args)))
		}
	}
	add("incident_id", f.IncidentID)
	add("namespace", f.Namespace)
	add("kind", f.Kind)
	add("name", f.Name)
	if len(f.States) > 0 {
		args = append(args, f.States)
		where = append(where, fmt.Sprintf("state = ANY($%d::text[])", len(args)))
	}
	q := `SELECT ` + executionColumns + ` FROM executions`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	args = append(args, store.Limit(f.Limit))
	q += fmt.Sprintf(" ORDER BY created_at, id LIMIT $%d", len(args))
	list, err := queryExecutions(ctx, s.pool, q, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: executions: %w", mapErr(err))
	}
	if list == nil {
		list = []store.Execution{}
	}
	return list, nil
}

func readPause(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) (store.PauseState, error) {
	var p store.PauseState
	var at pgtype.Timestamptz
	err := q.QueryRow(ctx, `SELECT paused, paused_by, reason, at FROM pause_state WHERE id = 1`).
		Scan(&p.Paused, &p.By, &p.Reason, &at)
	if errors.Is(err, pgx.ErrNoRows) {
		return p, errors.New("pause state: the row is missing")
	}
	if err != nil {
		return p, fmt.Errorf("pause state: %w", mapErr(err))
	}
	if at.Valid {
		p.At = at.Time.UTC()
	}
	return p, nil
}

// Pause implements store.Store.
func (s *Store) Pause(ctx context.Context) (store.PauseState, error) {
	p, err := readPause(ctx, s.pool)
	if err != nil {
		return p, fmt.Errorf("postgres: %w", err)
	}
	return p, nil
}

// guarded runs f in a transaction holding guardLock: writes of the guards'
// inputs wait for the BeginExecution under way, and once they commit every
// later BeginExecution sees them.
func (s *Store) guarded(ctx context.Context, what string, f func(tx pgx.Tx) error) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, guardLock); err != nil {
			return mapErr(err)
		}
		return f(tx)
	})
	if err != nil {
		return fmt.Errorf("postgres: %s: %w", what, mapErr(err))
	}
	return nil
}

// SetPause implements store.Store.
func (s *Store) SetPause(ctx context.Context, p store.PauseState, events ...incident.Event) error {
	p = store.PreparePause(p, s.opts.Now())
	return s.guarded(ctx, "set pause", func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO pause_state (id, paused, paused_by, reason, at) VALUES (1, $1, $2, $3, $4)
			ON CONFLICT (id) DO UPDATE SET paused = EXCLUDED.paused, paused_by = EXCLUDED.paused_by,
				reason = EXCLUDED.reason, at = EXCLUDED.at`, p.Paused, p.By, p.Reason, p.At); err != nil {
			return err
		}
		return s.insertEvents(ctx, tx, events)
	})
}

func readWindows(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, at time.Time) ([]store.Window, error) {
	rows, err := q.Query(ctx, `SELECT id, start_at, end_at, namespaces, reason, created_by, created_at
		FROM maintenance_windows WHERE end_at > $1 ORDER BY start_at, id`, store.UTC(at))
	if err != nil {
		return nil, fmt.Errorf("windows: %w", mapErr(err))
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Window, error) {
		var w store.Window
		err := r.Scan(&w.ID, &w.Start, &w.End, &w.Namespaces, &w.Reason, &w.By, &w.CreatedAt)
		w.Start, w.End, w.CreatedAt = w.Start.UTC(), w.End.UTC(), w.CreatedAt.UTC()
		if len(w.Namespaces) == 0 {
			w.Namespaces = nil
		}
		return w, err
	})
	if err != nil {
		return nil, fmt.Errorf("windows: %w", mapErr(err))
	}
	return list, nil
}

// Windows implements store.Store.
func (s *Store) Windows(ctx context.Context, at time.Time) ([]store.Window, error) {
	list, err := readWindows(ctx, s.pool, at)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if list == nil {
		list = []store.Window{}
	}
	return list, nil
}

// AddWindow implements store.Store.
func (s *Store) AddWindow(ctx context.Context, w store.Window) error {
	w, err := store.PrepareWindow(w, s.opts.Now())
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	namespaces := w.Namespaces
	if namespaces == nil {
		namespaces = []string{}
	}
	return s.guarded(ctx, "add window", func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO maintenance_windows
			(id, start_at, end_at, namespaces, reason, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)
			ON CONFLICT DO NOTHING`, w.ID, w.Start, w.End, namespaces, w.Reason, w.By, w.CreatedAt)
		if err != nil {
			return err
		}
		if tag.RowsAffected() != 1 {
			return fmt.Errorf("window %s: %w", w.ID, store.ErrExists)
		}
		return nil
	})
}

// DeleteWindow implements store.Store.
func (s *Store) DeleteWindow(ctx context.Context, id string) error {
	return s.guarded(ctx, "delete window", func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM maintenance_windows WHERE id = $1`, id)
		if err != nil {
			return err
		}
		if tag.RowsAffected() != 1 {
			return fmt.Errorf("window %s: %w", id, store.ErrNotFound)
		}
		return nil
	})
}

const proposalColumns = `id, incident_id, step, policy, remedy, action, namespace, kind, name, plan::text, state,
	created_at, expires_at, decided_by, reason, decided_at`

func scanProposal(row pgx.Row) (store.Proposal, error) {
	var (
		p       store.Proposal
		step    int32
		plan    pgtype.Text
		decided pgtype.Timestamptz
	)
	if err := row.Scan(&p.ID, &p.IncidentID, &step, &p.Policy, &p.Remedy, &p.Action, &p.Namespace, &p.Kind, &p.Name,
		&plan, &p.State, &p.CreatedAt, &p.ExpiresAt, &p.DecidedBy, &p.Reason, &decided); err != nil {
		return p, err
	}
	p.Step = int(step)
	if plan.Valid {
		p.Plan = []byte(plan.String)
	}
	p.CreatedAt, p.ExpiresAt = p.CreatedAt.UTC(), p.ExpiresAt.UTC()
	if decided.Valid {
		t := decided.Time.UTC()
		p.DecidedAt = &t
	}
	return p, nil
}

// Propose implements store.Store.
func (s *Store) Propose(ctx context.Context, p store.Proposal, next []store.NewJob, events ...incident.Event) error {
	now := s.opts.Now()
	p, err := store.PrepareProposal(p, now)
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	if next, err = store.PrepareJobs(next, now); err != nil {
		return fmt.Errorf("postgres: propose: %w", err)
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var one int
		err := tx.QueryRow(ctx, `SELECT 1 FROM incidents WHERE id = $1 FOR KEY SHARE`, p.IncidentID).Scan(&one)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("incident %s: %w", p.IncidentID, store.ErrNotFound)
		}
		if err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `INSERT INTO proposals (`+strings.ReplaceAll(proposalColumns, "::text", "")+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::text::json, $11, $12, $13, '', '', NULL)
			ON CONFLICT DO NOTHING`,
			p.ID, p.IncidentID, p.Step, p.Policy, p.Remedy, p.Action, p.Namespace, p.Kind, p.Name,
			jsonText(p.Plan), p.State, p.CreatedAt, p.ExpiresAt)
		if err != nil {
			return err
		}
		if tag.RowsAffected() != 1 {
			return fmt.Errorf("proposal %s (incident %s step %d): %w", p.ID, p.IncidentID, p.Step, store.ErrExists)
		}
		if err := s.addJobs(ctx, tx, next); err != nil {
			return err
		}
		return s.insertEvents(ctx, tx, events)
	})
	if err != nil {
		return fmt.Errorf("postgres: propose: %w", mapErr(err))
	}
	return nil
}

// Proposals implements store.Store: oldest first.
func (s *Store) Proposals(ctx context.Context, incidentID string) ([]store.Proposal, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+proposalColumns+` FROM proposals WHERE incident_id = $1
		ORDER BY created_at, id`, incidentID)
	if err != nil {
		return nil, fmt.Errorf("postgres: proposals: %w", mapErr(err))
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Proposal, error) { return scanProposal(r) })
	if err != nil {
		return nil, fmt.Errorf("postgres: proposals: %w", mapErr(err))
	}
	if list == nil {
		list = []store.Proposal{}
	}
	return list, nil
}

// Proposal implements store.Store.
func (s *Store) Proposal(ctx context.Context, id string) (store.Proposal, error) {
	p, err := scanProposal(s.pool.QueryRow(ctx, `SELECT `+proposalColumns+` FROM proposals WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return p, fmt.Errorf("postgres: proposal %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return p, fmt.Errorf("postgres: proposal %s: %w", id, mapErr(err))
	}
	return p, nil
}

// DecideProposal implements store.Store. The proposal's row is locked FOR
// UPDATE, so of two concurrent decisions the second sees the first's.
func (s *Store) DecideProposal(ctx context.Context, id, to, by, reason string, at time.Time,
	next []store.NewJob, events ...incident.Event) (store.Proposal, error) {
	if err := store.CheckDecision(to); err != nil {
		return store.Proposal{}, fmt.Errorf("postgres: decide proposal %s: %w", id, err)
	}
	now := s.opts.Now()
	if at.IsZero() {
		at = now
	}
	next, err := store.PrepareJobs(next, now)
	if err != nil {
		return store.Proposal{}, fmt.Errorf("postgres: decide proposal %s: %w", id, err)
	}
	var cur, dec store.Proposal
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		cur, err = scanProposal(tx.QueryRow(ctx, `SELECT `+proposalColumns+` FROM proposals WHERE id = $1 FOR UPDATE`, id))
		if errors.Is(err, pgx.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		if dec, err = store.Decide(cur, to, by, reason, at); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE proposals SET state = $2, decided_by = $3, reason = $4, decided_at = $5
			WHERE id = $1`, id, dec.State, dec.DecidedBy, dec.Reason, *dec.DecidedAt); err != nil {
			return err
		}
		if err := s.addJobs(ctx, tx, next); err != nil {
			return err
		}
		return s.insertEvents(ctx, tx, events)
	})
	switch {
	case err == nil:
		return dec, nil
	case errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrExpired):
		return cur, fmt.Errorf("postgres: %w", err) // refused: the proposal as it is
	}
	return store.Proposal{}, fmt.Errorf("postgres: decide proposal %s: %w", id, mapErr(err))
}
