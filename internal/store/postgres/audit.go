package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/remediator/remediator/internal/incident"
	"github.com/remediator/remediator/internal/store"
	"github.com/remediator/remediator/internal/store/audit"
)

// The audit trail on PostgreSQL. SealAudit, AppendAudit and CleanupAudit
// take the advisory transaction lock auditLock, so they are serialized
// across replicas; intake and the worker never take it.
//
// Event ids come from an identity sequence and are not commit-ordered: a
// transaction can commit id 10 after id 11 was committed and sealed. The
// sealer therefore never treats "id > last sealed" as "unsealed": it
// selects events above a low-water mark that are not in audit yet (the
// unique index audit_event), in id order, so a late-committing lower id
// is simply sealed by a later pass with a later seq. The low water is
// raised to a candidate id once every transaction that could still commit
// an id at or below it has ended (see audit_state in 0003_audit.sql).

// auditLock is the advisory lock key of the audit chain ("remaudit").
const auditLock int64 = 0x72656d6175646974

// candLag is how long a candidate low water waits before the
// transaction horizon (xmax) it must pass is taken. A transaction gets its
// transaction id only at its first write, a moment after nextval gave its
// event an id; the lag covers that moment.
const candLag = "1 second"

// A record is stored as its canonical encoding (body) plus the columns
// the sealer, scans and the cleanup filter and order by, and its hash: see
// 0003_audit.sql.
const auditColumns = `seq, coalesce(event_id, 0), occurred_at, alertname, body, hash`

type auditHead struct {
	lowWater, candID, candXmax, seq int64
	hash                            string
}

func readAuditHead(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) (auditHead, error) {
	var h auditHead
	err := q.QueryRow(ctx, `SELECT low_water, cand_id, cand_xmax, head_seq, head_hash FROM audit_state WHERE id = 1`).
		Scan(&h.lowWater, &h.candID, &h.candXmax, &h.seq, &h.hash)
	if err != nil {
		return h, fmt.Errorf("audit state: %w", mapErr(err))
	}
	return h, nil
}

// chained runs f in a transaction holding the audit lock.
func (s *Store) chained(ctx context.Context, what string, f func(tx pgx.Tx) error) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, auditLock); err != nil {
			return err
		}
		return f(tx)
	})
	if err != nil {
		return fmt.Errorf("postgres: %s: %w", what, mapErr(err))
	}
	return nil
}

// selectUnsealed does not join the incidents: while a large backlog is
// sealed the planner, estimating the anti-join's rows from a table it has
// not analyzed yet, chose a nested loop over a sequential scan of the
// incidents for every event (10,000 events × every incident per pass). The
// sealer reads the incidents of a pass in a second query instead.
const selectUnsealed = `SELECT e.id, e.incident_id, e.occurred_at, e.type, e.correlation_id, e.actor, e.reason,
		e.details::text
	FROM events e
	WHERE e.id > $1 AND NOT EXISTS (SELECT 1 FROM audit a WHERE a.event_id = e.id)
	ORDER BY e.id LIMIT $2`

type unsealedEvent struct {
	id                            int64
	at                            time.Time
	inc, typ, corr, actor, reason string
	details                       pgtype.Text
}

// incidentLabels reads alertname, fingerprint and namespace of the
// incidents of evs.
func incidentLabels(ctx context.Context, tx pgx.Tx, evs []unsealedEvent) (map[string][3]string, error) {
	ids := make([]string, 0, len(evs))
	seen := make(map[string][3]string, len(evs))
	for _, e := range evs {
		if _, ok := seen[e.inc]; !ok && e.inc != "" {
			seen[e.inc] = [3]string{}
			ids = append(ids, e.inc)
		}
	}
	if len(ids) == 0 {
		return seen, nil
	}
	rows, err := tx.Query(ctx, `SELECT id, coalesce(alertname, ''), coalesce(fingerprint, ''), coalesce(namespace, '')
		FROM incidents WHERE id = ANY($1)`, ids)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var l [3]string
		if err := rows.Scan(&id, &l[0], &l[1], &l[2]); err != nil {
			return nil, err
		}
		seen[id] = l
	}
	return seen, rows.Err()
}

// SealAudit implements store.Store.
func (s *Store) SealAudit(ctx context.Context, max int) (int, error) {
	if max <= 0 {
		return 0, nil
	}
	sealed := 0
	err := s.chained(ctx, "seal audit", func(tx pgx.Tx) error {
		h, err := readAuditHead(ctx, tx)
		if err != nil {
			return err
		}
		var xmin, xmax int64
		var lagged bool
		if err := tx.QueryRow(ctx, `SELECT pg_snapshot_xmin(s)::text::bigint, pg_snapshot_xmax(s)::text::bigint,
				coalesce(clock_timestamp() - a.cand_at >= interval '`+candLag+`', false)
			FROM pg_current_snapshot() s, audit_state a WHERE a.id = 1`).Scan(&xmin, &xmax, &lagged); err != nil {
			return err
		}
		// Every transaction that could hold an id <= cand_id has ended.
		promotable := h.candID > h.lowWater && h.candXmax > 0 && xmin >= h.candXmax

		rows, err := tx.Query(ctx, selectUnsealed, h.lowWater, max)
		if err != nil {
			return err
		}
		var evs []unsealedEvent
		var last int64
		for rows.Next() {
			var e unsealedEvent
			if err := rows.Scan(&e.id, &e.inc, &e.at, &e.typ, &e.corr, &e.actor, &e.reason, &e.details); err != nil {
				rows.Close()
				return err
			}
			evs = append(evs, e)
			last = max64(last, e.id)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		labels, err := incidentLabels(ctx, tx, evs)
		if err != nil {
			return err
		}
		recs := make([]audit.Record, 0, len(evs))
		for _, e := range evs {
			var det []byte
			if e.details.Valid {
				det = []byte(e.details.String)
			}
			l := labels[e.inc]
			recs = append(recs, audit.EventRecord(e.id, e.at, e.inc, e.corr, l[0], l[1], l[2], e.typ, e.actor, e.reason, det))
		}
		if len(recs) > 0 {
			if h, err = s.appendRecords(ctx, tx, h, recs); err != nil {
				return err
			}
		}
		sealed = len(recs)

		if promotable {
			var left bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM events e WHERE e.id > $1 AND e.id <= $2
				AND NOT EXISTS (SELECT 1 FROM audit a WHERE a.event_id = e.id))`, h.lowWater, h.candID).Scan(&left); err != nil {
				return err
			}
			if !left {
				h.lowWater, h.candID, h.candXmax = h.candID, 0, 0
			}
		}
		switch {
		case h.candID == 0:
			// The next candidate: what this pass sealed, or when it
			// sealed nothing, every id committed so far.
			cand := last
			if cand == 0 {
				if err := tx.QueryRow(ctx, `SELECT coalesce(max(id), 0) FROM events`).Scan(&cand); err != nil {
					return err
				}
			}
			if cand > h.lowWater {
				h.candID = cand
				_, err = tx.Exec(ctx, `UPDATE audit_state SET low_water = $1, cand_id = $2, cand_xmax = 0,
					cand_at = clock_timestamp() WHERE id = 1`, h.lowWater, h.candID)
				return err
			}
		case h.candXmax == 0 && lagged:
			// candLag after the candidate was chosen: every transaction
			// that got an id <= cand_id has a transaction id below this.
			h.candXmax = xmax
		}
		_, err = tx.Exec(ctx, `UPDATE audit_state SET low_water = $1, cand_id = $2, cand_xmax = $3 WHERE id = 1`,
			h.lowWater, h.candID, h.candXmax)
		return err
	})
	if err != nil {
		return 0, err
	}
	return sealed, nil
}

func max64(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}

const insertAudit = `INSERT INTO audit (seq, event_id, occurred_at, alertname, body, hash)
	SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::timestamptz[], $4::text[], $5::text[], $6::text[])`

const addAuditStats = `INSERT INTO audit_stats (dim, key, records, bytes)
	SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[])
	ON CONFLICT (dim, key) DO UPDATE SET records = audit_stats.records + excluded.records,
		bytes = audit_stats.bytes + excluded.bytes`

// appendRecords chains recs after h, inserts them, counts them in the
// stats and moves the head, inside tx; it returns the new head.
func (s *Store) appendRecords(ctx context.Context, tx pgx.Tx, h auditHead, recs []audit.Record) (auditHead, error) {
	seq, hash, bodies := audit.ChainEncoded(h.seq, h.hash, recs)
	k := len(recs)
	var (
		seqs     = make([]int64, k)
		eventIDs = make([]pgtype.Int8, k)
		times    = make([]time.Time, k)
		alert    = make([]string, k)
		body     = make([]string, k)
		hashes   = make([]string, k)
	)
	delta := audit.StatDelta{}
	for i := range recs {
		r := &recs[i]
		seqs[i], times[i], alert[i], body[i], hashes[i] = r.Seq, r.Time, r.AlertName, string(bodies[i]), r.Hash
		if r.EventID != 0 {
			eventIDs[i] = pgtype.Int8{Int64: r.EventID, Valid: true}
		}
		delta.Add(r, len(bodies[i]), 1)
	}
	if _, err := tx.Exec(ctx, insertAudit, seqs, eventIDs, times, alert, body, hashes); err != nil {
		return h, fmt.Errorf("audit records: %w", err)
	}
	if err := applyStats(ctx, tx, delta); err != nil {
		return h, err
	}
	if _, err := tx.Exec(ctx, `UPDATE audit_state SET head_seq = $1, head_hash = $2 WHERE id = 1`, seq, hash); err != nil {
		return h, fmt.Errorf("audit state: %w", err)
	}
	h.seq, h.hash = seq, hash
	return h, nil
}

func applyStats(ctx context.Context, tx pgx.Tx, delta audit.StatDelta) error {
	var dims, keys []string
	var recs, bytes []int64
	shrunk := false
	for k, v := range delta {
		if v[0] == 0 && v[1] == 0 {
			continue
		}
		shrunk = shrunk || v[0] < 0
		dims, keys, recs, bytes = append(dims, k.Dim), append(keys, k.Key), append(recs, v[0]), append(bytes, v[1])
	}
	if len(dims) == 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, addAuditStats, dims, keys, recs, bytes); err != nil {
		return fmt.Errorf("audit stats: %w", err)
	}
	if shrunk {
		if _, err := tx.Exec(ctx, `DELETE FROM audit_stats WHERE records <= 0`); err != nil {
			return fmt.Errorf("audit stats: %w", err)
		}
	}
	return nil
}

// AppendAudit implements store.Store.
func (s *Store) AppendAudit(ctx context.Context, events ...incident.Event) error {
	if len(events) == 0 {
		return nil
	}
	recs, err := store.ServiceRecords(events, s.opts.Now())
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	return s.chained(ctx, "append audit", func(tx pgx.Tx) error {
		h, err := readAuditHead(ctx, tx)
		if err != nil {
			return err
		}
		_, err = s.appendRecords(ctx, tx, h, recs)
		return err
	})
}

// ScanAudit implements store.Store: one query, its rows streamed from
// the server as they are read (no cursor, nothing buffered here).
func (s *Store) ScanAudit(ctx context.Context, f audit.Filter, fn func(*audit.Record) error) error {
	where := []string{"seq > $1"}
	args := []any{f.AfterSeq}
	if !f.Since.IsZero() {
		args = append(args, store.UTC(f.Since))
		where = append(where, fmt.Sprintf("occurred_at >= $%d", len(args)))
	}
	if !f.Until.IsZero() {
		args = append(args, store.UTC(f.Until))
		where = append(where, fmt.Sprintf("occurred_at < $%d", len(args)))
	}
	if f.AlertName != "" {
		args = append(args, f.AlertName)
		where = append(where, fmt.Sprintf("alertname = $%d", len(args)))
	}
	q := `SELECT ` + auditColumns + ` FROM audit WHERE ` + strings.Join(where, " AND ")
	if f.ByTime {
		q += " ORDER BY occurred_at, seq"
	} else {
		q += " ORDER BY seq"
	}
	// The query runs in audit.Stream's reader goroutine; decoding and fn
	// run on this one.
	return audit.Stream(ctx, func(ctx context.Context, emit audit.Emit) error {
		rows, err := s.pool.Query(ctx, q, args...)
		if err != nil {
			return fmt.Errorf("postgres: scan audit: %w", mapErr(err))
		}
		defer rows.Close()
		var (
			seq, eventID          int64
			at                    time.Time
			alertname, body, hash []byte
		)
		for rows.Next() {
			if err := rows.Scan(&seq, &eventID, &at, &alertname, &body, &hash); err != nil {
				return fmt.Errorf("postgres: scan audit: %w", mapErr(err))
			}
			if err := emit(seq, eventID, at.UTC(), alertname, body, hash); err != nil {
				return err
			}
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("postgres: scan audit: %w", mapErr(err))
		}
		return nil
	}, fn)
}

type queryRower interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}

func readCheckpoint(ctx context.Context, q queryRower) (*audit.Checkpoint, error) {
	var cp audit.Checkpoint
	err := q.QueryRow(ctx, `SELECT seq, hash, deleted, cutoff, at, actor FROM audit_checkpoints
		ORDER BY seq DESC LIMIT 1`).Scan(&cp.Seq, &cp.Hash, &cp.Deleted, &cp.Before, &cp.Time, &cp.Actor)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("audit checkpoint: %w", err)
	}
	cp.Before, cp.Time = cp.Before.UTC(), cp.Time.UTC()
	return &cp, nil
}

func readAuditState(ctx context.Context, q queryRower) (audit.State, error) {
	h, err := readAuditHead(ctx, q)
	if err != nil {
		return audit.State{}, err
	}
	st := audit.State{HeadSeq: h.seq, HeadHash: h.hash, SealedThrough: h.lowWater}
	if st.Checkpoint, err = readCheckpoint(ctx, q); err != nil {
		return st, err
	}
	// Events above the newest sealed one, up to the newest event: three
	// index look-ups, however far the low water trails. (A late-committing
	// lower id, sealed by the next pass, is not counted.) max() of an
	// indexed column is planned as an index look-up whatever the table's
	// statistics; a one-sided "id > bound" is not: on a table not analyzed
	// yet (just filled, restored, or autovacuum's naptime not come round)
	// the planner assumes a third of the rows match and counts them with a
	// parallel sequential scan of the whole table (69 ms at 1M events, for
	// nothing). So the count is skipped when nothing is above the bound,
	// and otherwise bounded on both sides, as literals (simple protocol):
	// a closed range is estimated from the histogram when there is one and
	// at 0.5% of the rows when there is none, and walks events_pkey.
	var bound, top int64
	if err := q.QueryRow(ctx, `SELECT greatest($1::bigint, (SELECT coalesce(max(event_id), 0) FROM audit)),
			(SELECT coalesce(max(id), 0) FROM events)`, h.lowWater).Scan(&bound, &top); err != nil {
		return st, fmt.Errorf("audit state: %w", err)
	}
	if top > bound {
		if err := q.QueryRow(ctx, unsealedCount, pgx.QueryExecModeSimpleProtocol, bound, top).Scan(&st.Unsealed); err != nil {
			return st, fmt.Errorf("audit state: %w", err)
		}
	}
	return st, nil
}

// unsealedCount counts the events in (bound, top]; see readAuditState.
const unsealedCount = `SELECT count(*) FROM events WHERE id > $1 AND id <= $2`

func (s *Store) readOnly(ctx context.Context, what string, f func(tx pgx.Tx) error) error {
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, f)
	if err != nil {
		return fmt.Errorf("postgres: %s: %w", what, mapErr(err))
	}
	return nil
}

// AuditState implements store.Store.
func (s *Store) AuditState(ctx context.Context) (audit.State, error) {
	var st audit.State
	err := s.readOnly(ctx, "audit state", func(tx pgx.Tx) error {
		var err error
		st, err = readAuditState(ctx, tx)
		return err
	})
	return st, err
}

// AuditStats implements store.Store: the aggregate table and index
// look-ups (the oldest and newest record, readAuditState's), whatever the
// number of records.
func (s *Store) AuditStats(ctx context.Context) (audit.Stats, error) {
	st := audit.NewStats()
	err := s.readOnly(ctx, "audit stats", func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT dim, key, records, bytes FROM audit_stats`)
		if err != nil {
			return err
		}
		for rows.Next() {
			var dim, key string
			var n, b int64
			if err := rows.Scan(&dim, &key, &n, &b); err != nil {
				rows.Close()
				return err
			}
			st.Set(dim, key, n, b)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		var oldest, newest pgtype.Timestamptz
		if err := tx.QueryRow(ctx, `SELECT (SELECT min(occurred_at) FROM audit), (SELECT max(occurred_at) FROM audit)`).
			Scan(&oldest, &newest); err != nil {
			return err
		}
		if oldest.Valid {
			o, n := oldest.Time.UTC(), newest.Time.UTC()
			st.Oldest, st.Newest = &o, &n
		}
		st.State, err = readAuditState(ctx, tx)
		return err
	})
	return st, err
}

// CleanupAudit implements store.Store.
func (s *Store) CleanupAudit(ctx context.Context, before time.Time, actor, correlationID string) (audit.CleanupResult, error) {
	res := audit.CleanupResult{Before: store.UTC(before)}
	for {
		done := false
		err := s.chained(ctx, "audit cleanup", func(tx pgx.Tx) error {
			var err error
			done, err = s.cleanupChunk(ctx, tx, &res, actor, correlationID)
			return err
		})
		if err != nil {
			return res, err
		}
		if done {
			return res, nil
		}
	}
}

// cleanupChunk deletes the next chunk of the prefix older than
// res.Before behind a checkpoint, inside tx. Records of events above the
// sealer's low water are kept for a later cleanup: the sealer tells them
// sealed by their record. When nothing is left to delete it appends the
// cleanup record (if anything was deleted) and reports done.
func (s *Store) cleanupChunk(ctx context.Context, tx pgx.Tx, res *audit.CleanupResult, actor, correlationID string) (bool, error) {
	h, err := readAuditHead(ctx, tx)
	if err != nil {
		return false, err
	}
	var from int64
	if cp, err := readCheckpoint(ctx, tx); err != nil {
		return false, err
	} else if cp != nil {
		from = cp.Seq
	}
	end := h.seq
	var keep pgtype.Int8
	if err := tx.QueryRow(ctx, `SELECT least(
			(SELECT min(seq) FROM audit WHERE seq > $1 AND occurred_at >= $2),
			(SELECT min(seq) FROM audit WHERE event_id > $3))`, from, res.Before, h.lowWater).Scan(&keep); err != nil {
		return false, err
	}
	if keep.Valid {
		end = keep.Int64 - 1
	}
	end = min(end, from+store.AuditCleanupChunk)
	if end <= from {
		if res.Deleted > 0 {
			rec := store.CleanupRecord(*res, s.opts.Now(), actor, correlationID)
			_, err := s.appendRecords(ctx, tx, h, []audit.Record{rec})
			return true, err
		}
		return true, nil
	}
	var hash string
	if err := tx.QueryRow(ctx, `SELECT hash FROM audit WHERE seq = $1`, end).Scan(&hash); errors.Is(err, pgx.ErrNoRows) {
		return false, fmt.Errorf("record %d is missing, the chain is broken: run remediator audit verify", end)
	} else if err != nil {
		return false, err
	}
	rows, err := tx.Query(ctx, `SELECT alertname, body FROM audit WHERE seq > $1 AND seq <= $2`, from, end)
	if err != nil {
		return false, err
	}
	delta := audit.StatDelta{}
	var deleted int64
	for rows.Next() {
		var (
			r     audit.Record
			alert string
			body  []byte
		)
		if err := rows.Scan(&alert, &body); err != nil {
			rows.Close()
			return false, err
		}
		_ = audit.DecodeCanonical(body, &r) // the stats' keys; a body that does not decode counts under empty keys
		delta.AddKeys(r.Type, r.Action, r.Outcome, alert, r.Priority, -int64(len(body)), -1)
		deleted++
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return false, err
	}
	cp := audit.Checkpoint{Seq: end, Hash: hash, Deleted: deleted, Before: res.Before, Time: store.UTC(s.opts.Now()), Actor: actor}
	if _, err := tx.Exec(ctx, `INSERT INTO audit_checkpoints (seq, hash, deleted, cutoff, at, actor) VALUES ($1, $2, $3, $4, $5, $6)`,
		cp.Seq, cp.Hash, cp.Deleted, cp.Before, cp.Time, cp.Actor); err != nil {
		return false, err
	}
	if _, err := tx.Exec(ctx, `DELETE FROM audit WHERE seq > $1 AND seq <= $2`, from, end); err != nil {
		return false, err
	}
	if err := applyStats(ctx, tx, delta); err != nil {
		return false, err
	}
	res.Deleted += deleted
	res.Checkpoint = &cp
	return false, nil
}
