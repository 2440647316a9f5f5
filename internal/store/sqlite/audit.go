package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/remediator/remediator/internal/incident"
	"github.com/remediator/remediator/internal/store"
	"github.com/remediator/remediator/internal/store/audit"
)

// The audit trail on SQLite. Every write here runs on the one writer
// connection (BEGIN IMMEDIATE), so it is serialized with intake, the
// worker and the other sealers (also of other processes on the same file).
// The sealer reads and prepares the events to seal on the reader pool
// first and holds the writer only to chain, insert and commit them.

// A record is stored as its canonical encoding (body) plus the columns
// scans filter and order by, and its hash: see 0003_audit.sql. A scan
// reads two columns, seq and a frame that SQLite builds from the others:
// "<occurred_at>:<alertname bytes>:<alertname><hash bytes>:<hash><body>".
// (modernc.org/sqlite takes the connection's mutex several times per
// column read, which made column reads most of an export's cost.)
const auditColumns = `seq, CAST(occurred_at AS TEXT) || ':' || length(CAST(alertname AS BLOB)) || ':' || alertname ||
	length(CAST(hash AS BLOB)) || ':' || hash || body`

// parseFrame splits a frame of auditColumns. ok is false for a frame that
// does not parse (a column edited by hand to another type, or NULL).
func parseFrame(b []byte) (at int64, alertname, hash, body []byte, ok bool) {
	num := func() (int64, bool) {
		neg := len(b) > 0 && b[0] == '-'
		i, n := 0, int64(0)
		if neg {
			i++
		}
		start := i
		for ; i < len(b) && b[i] >= '0' && b[i] <= '9' && i-start < 18; i++ {
			n = n*10 + int64(b[i]-'0')
		}
		if i == start || i >= len(b) || b[i] != ':' {
			return 0, false
		}
		b = b[i+1:]
		if neg {
			n = -n
		}
		return n, true
	}
	field := func() ([]byte, bool) {
		n, ok := num()
		if !ok || n < 0 || n > int64(len(b)) {
			return nil, false
		}
		f := b[:n:n]
		b = b[n:]
		return f, true
	}
	var ok1, ok2, ok3 bool
	at, ok1 = num()
	alertname, ok2 = field()
	hash, ok3 = field()
	return at, alertname, hash, b, ok1 && ok2 && ok3
}

// The sealer's statements: prepared once on the writer (sealInline runs
// them in every write transaction that appends events).
const (
	auditHeadSQL = `SELECT low_water, head_seq, head_hash FROM audit_state WHERE id = 1`
	unsealedSQL  = `SELECT e.id, e.incident_id, e.occurred_at, e.type, e.correlation_id, e.actor,
			e.reason, e.details, coalesce(i.alertname, ''), coalesce(i.fingerprint, ''), coalesce(i.namespace, '')
		FROM events e LEFT JOIN incidents i ON i.id = e.incident_id
		WHERE e.id > ? ORDER BY e.id LIMIT ?`
	setHeadSQL = `UPDATE audit_state SET low_water = ?, head_seq = ?, head_hash = ? WHERE id = 1`
)

// auditStmts are the audit trail's prepared statements on the writer.
type auditStmts struct {
	records                            *multiStmt
	addStat, head, unsealed, setHead   *sql.Stmt
	maxEvent                           *sql.Stmt
	savepoint, rollbackTo, releaseSave *sql.Stmt
}

func (a *auditStmts) close() {
	if a.records != nil {
		a.records.close()
	}
	for _, st := range []*sql.Stmt{a.addStat, a.head, a.unsealed, a.setHead, a.maxEvent, a.savepoint, a.rollbackTo, a.releaseSave} {
		if st != nil {
			st.Close()
		}
	}
}

func (s *Store) prepareAudit(ctx context.Context) error {
	a := &s.audit
	a.records = newMultiStmt(`INSERT INTO audit (seq, occurred_at, alertname, body, hash)`, `(?, ?, ?, ?, ?)`, ``)
	if err := a.records.prepareAll(ctx, s.w); err != nil {
		return fmt.Errorf("sqlite: %w", mapErr(err))
	}
	for _, p := range []struct {
		dst **sql.Stmt
		sql string
	}{
		{&a.addStat, `INSERT INTO audit_stats (dim, key, records, bytes) VALUES (?, ?, ?, ?)
			ON CONFLICT (dim, key) DO UPDATE SET records = records + excluded.records, bytes = bytes + excluded.bytes`},
		{&a.head, auditHeadSQL},
		{&a.unsealed, unsealedSQL},
		{&a.setHead, setHeadSQL},
		{&a.maxEvent, `SELECT coalesce(max(id), 0) FROM events`},
		{&a.savepoint, `SAVEPOINT seal_inline`},
		{&a.rollbackTo, `ROLLBACK TO seal_inline`},
		{&a.releaseSave, `RELEASE seal_inline`},
	} {
		st, err := s.w.PrepareContext(ctx, p.sql)
		if err != nil {
			return fmt.Errorf("sqlite: prepare: %w", mapErr(err))
		}
		*p.dst = st
	}
	return nil
}

type auditHead struct {
	lowWater, seq int64
	hash          string
}

func readAuditHead(ctx context.Context, q queryer) (auditHead, error) {
	return scanAuditHead(q.QueryRowContext(ctx, auditHeadSQL))
}

func scanAuditHead(row *sql.Row) (auditHead, error) {
	var h auditHead
	if err := row.Scan(&h.lowWater, &h.seq, &h.hash); err != nil {
		return h, fmt.Errorf("sqlite: audit state: %w", mapErr(err))
	}
	return h, nil
}

// unsealed reads up to max events after lowWater, in id order, as records
// (without seq and hashes), and the last event id read.
func unsealed(ctx context.Context, q queryer, lowWater int64, max int) ([]audit.Record, int64, error) {
	return scanUnsealed(q.QueryContext(ctx, unsealedSQL, lowWater, max))
}

func scanUnsealed(rows *sql.Rows, err error) ([]audit.Record, int64, error) {
	if err != nil {
		return nil, 0, fmt.Errorf("sqlite: seal audit: %w", mapErr(err))
	}
	defer rows.Close()
	var (
		recs []audit.Record
		last int64
	)
	for rows.Next() {
		var (
			id, at                                       int64
			inc, typ, corr, actor, reason, alert, fp, ns string
			details                                      sql.RawBytes
		)
		if err := rows.Scan(&id, &inc, &at, &typ, &corr, &actor, &reason, &details, &alert, &fp, &ns); err != nil {
			return nil, 0, fmt.Errorf("sqlite: seal audit: %w", mapErr(err))
		}
		recs = append(recs, audit.EventRecord(id, fromMicros(at), inc, corr, alert, fp, ns, typ, actor, reason, details))
		last = id
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("sqlite: seal audit: %w", mapErr(err))
	}
	return recs, last, nil
}

// SealAudit implements store.Store.
func (s *Store) SealAudit(ctx context.Context, max int) (int, error) {
	if max <= 0 {
		return 0, nil
	}
	// Outside the writer: read and prepare (details parsed) on a reader.
	h, err := readAuditHead(ctx, s.r)
	if err != nil {
		return 0, err
	}
	recs, last, err := unsealed(ctx, s.r, h.lowWater, max)
	if err != nil || len(recs) == 0 {
		return 0, err
	}
	// Yield the writer to intake: while notifications wait for it, wait
	// too (50 ms at most, so a sustained queue cannot starve the chain).
	for i := 0; i < 50 && s.c.Waiting() > 0; i++ {
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
	err = s.write(ctx, "seal audit", func(tx *sql.Tx) error {
		now, err := readAuditHead(ctx, tx)
		if err != nil {
			return err
		}
		if now.lowWater != h.lowWater { // another sealer ran meanwhile: read again, under the lock
			if recs, last, err = unsealed(ctx, tx, now.lowWater, max); err != nil || len(recs) == 0 {
				return err
			}
		}
		return s.appendRecords(ctx, tx, now, recs, last)
	})
	if err != nil {
		return 0, err
	}
	return len(recs), nil
}

// inlineSlack is how many older unsealed events (a backlog: events
// written by a benchmark build without sealing, or before an upgrade) one
// write transaction seals besides its own, so a backlog drains without
// making any one transaction long; the background sealer drains the rest.
const inlineSlack = 64

// sealInline seals, inside tx, the unsealed events up to the ones tx has
// just appended (added of them; at most added+inlineSlack records), so on
// SQLite the chain grows in the transaction that writes the events:
// SQLite has one writer anyway, and a separate seal transaction would
// take it a second time, with its own commit and fsync, while intake
// waits (docs/benchmarks.md, "Intake with the sealer running").
//
// It runs in a savepoint: when sealing fails, its writes are rolled back
// and tx goes on without them, so an audit problem never fails intake or
// the worker; the events stay unsealed, and the background sealer (which
// runs the same code, SealAudit) retries and reports the error.
func (s *Store) sealInline(ctx context.Context, tx *sql.Tx, added int) error {
	if added <= 0 {
		return nil
	}
	return s.sealSavepoint(ctx, tx, func(h auditHead) error {
		return s.sealUnsealed(ctx, tx, h, added+inlineSlack)
	})
}

// sealUnsealed reads up to max unsealed events after h's low water inside
// tx and appends their records.
func (s *Store) sealUnsealed(ctx context.Context, tx *sql.Tx, h auditHead, max int) error {
	recs, last, err := scanUnsealed(tx.StmtContext(ctx, s.audit.unsealed).QueryContext(ctx, h.lowWater, max))
	if err != nil || len(recs) == 0 {
		return err
	}
	return s.appendRecords(ctx, tx, h, recs, last)
}

// episode is what a record takes from its incident row.
type episode struct{ alertname, fingerprint, namespace string }

// sealIngest is sealInline for intake's group commit, without reading the
// events back: they are events[i] with id firstID+i, of the incidents in
// eps (the rows the upsert returned), so the records are built from them
// directly, field for field as the read-back would (same stored values:
// times in microseconds, empty details as none). When older events are
// still unsealed (the low water is not just below firstID), those come
// first and it falls back to sealInline's read-back.
func (s *Store) sealIngest(ctx context.Context, tx *sql.Tx, firstID int64, events []incident.Event, eps map[string]episode) error {
	if len(events) == 0 {
		return nil
	}
	return s.sealSavepoint(ctx, tx, func(h auditHead) error {
		if h.lowWater != firstID-1 {
			return s.sealUnsealed(ctx, tx, h, len(events)+inlineSlack)
		}
		recs := make([]audit.Record, len(events))
		for i := range events {
			e := &events[i]
			ep, ok := eps[e.IncidentID]
			if !ok {
				return s.sealUnsealed(ctx, tx, h, len(events)+inlineSlack)
			}
			recs[i] = audit.EventRecord(firstID+int64(i), fromMicros(micros(e.Time)), e.IncidentID, e.CorrelationID,
				ep.alertname, ep.fingerprint, ep.namespace, e.Type, e.Actor, e.Reason, e.Details)
		}
		return s.appendRecords(ctx, tx, h, recs, firstID+int64(len(events))-1)
	})
}

// sealSavepoint runs seal with the chain's head inside a savepoint of tx;
// when seal fails, its writes are rolled back and tx goes on without them
// (the events are sealed later). It returns an error only when the
// savepoint itself cannot be opened, rolled back to or released — e.g. an
// interrupt, a full disk or an I/O error that rolled back the whole
// transaction — since then tx is not what its caller thinks, and any
// statement it ran next would run outside it.
func (s *Store) sealSavepoint(ctx context.Context, tx *sql.Tx, seal func(h auditHead) error) error {
	if !audit.SealingEnabled {
		return nil
	}
	a := &s.audit
	if _, err := tx.StmtContext(ctx, a.savepoint).ExecContext(ctx); err != nil {
		return fmt.Errorf("sqlite: audit savepoint: %w", mapErr(err))
	}
	err := func() error {
		h, err := scanAuditHead(tx.StmtContext(ctx, a.head).QueryRowContext(ctx))
		if err != nil {
			return err
		}
		return seal(h)
	}()
	if err != nil {
		if _, rerr := tx.StmtContext(ctx, a.rollbackTo).ExecContext(ctx); rerr != nil {
			return fmt.Errorf("sqlite: audit seal failed (%v) and its savepoint could not be rolled back: %w", err, mapErr(rerr))
		}
	}
	if _, err := tx.StmtContext(ctx, a.releaseSave).ExecContext(ctx); err != nil {
		return fmt.Errorf("sqlite: audit release savepoint: %w", mapErr(err))
	}
	return nil
}

// appendRecords chains recs after head, inserts them, counts them in the
// stats and moves the head (and the low water to lowWater when it is
// greater), inside tx.
func (s *Store) appendRecords(ctx context.Context, tx *sql.Tx, head auditHead, recs []audit.Record, lowWater int64) error {
	seq, hash, bodies := audit.ChainEncoded(head.seq, head.hash, recs)
	args := make([]any, 0, maxRows*5)
	delta := audit.StatDelta{}
	err := chunks(len(recs), func(lo, hi int) error {
		args = args[:0]
		for i := lo; i < hi; i++ {
			r := &recs[i]
			args = append(args, r.Seq, micros(r.Time), r.AlertName, bodies[i], r.Hash)
			delta.Add(r, len(bodies[i]), 1)
		}
		st, err := s.audit.records.stmt(ctx, nil, hi-lo)
		if err != nil {
			return err
		}
		_, err = tx.StmtContext(ctx, st).ExecContext(ctx, args...)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: audit records: %w", mapErr(err))
	}
	if err := s.applyStats(ctx, tx, delta); err != nil {
		return err
	}
	lowWater = max(lowWater, head.lowWater)
	if _, err := tx.StmtContext(ctx, s.audit.setHead).ExecContext(ctx, lowWater, seq, hash); err != nil {
		return fmt.Errorf("sqlite: audit state: %w", mapErr(err))
	}
	return nil
}

func (s *Store) applyStats(ctx context.Context, tx *sql.Tx, delta audit.StatDelta) error {
	st := tx.StmtContext(ctx, s.audit.addStat)
	shrunk := false
	for k, v := range delta {
		if v[0] == 0 && v[1] == 0 {
			continue
		}
		shrunk = shrunk || v[0] < 0
		if _, err := st.ExecContext(ctx, k.Dim, k.Key, v[0], v[1]); err != nil {
			return fmt.Errorf("sqlite: audit stats: %w", mapErr(err))
		}
	}
	if shrunk {
		if _, err := tx.ExecContext(ctx, `DELETE FROM audit_stats WHERE records <= 0`); err != nil {
			return fmt.Errorf("sqlite: audit stats: %w", mapErr(err))
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
		return fmt.Errorf("sqlite: %w", err)
	}
	return s.write(ctx, "append audit", func(tx *sql.Tx) error {
		h, err := readAuditHead(ctx, tx)
		if err != nil {
			return err
		}
		return s.appendRecords(ctx, tx, h, recs, 0)
	})
}

// ScanAudit implements store.Store, on a reader: the scan sees one
// snapshot and never blocks writers. It reads seq, occurred_at and
// alertname (the record takes them from these columns), the canonical
// encoding and the hash, in two columns (auditColumns), and decodes the
// rest in Go.
func (s *Store) ScanAudit(ctx context.Context, f audit.Filter, fn func(*audit.Record) error) error {
	q := `SELECT ` + auditColumns + ` FROM audit`
	where := []string{"seq > ?"}
	args := []any{f.AfterSeq}
	if !f.Since.IsZero() {
		where = append(where, "occurred_at >= ?")
		args = append(args, micros(f.Since))
	}
	if !f.Until.IsZero() {
		where = append(where, "occurred_at < ?")
		args = append(args, micros(f.Until))
	}
	if f.AlertName != "" {
		where = append(where, "alertname = ?")
		args = append(args, f.AlertName)
	}
	q += " WHERE " + strings.Join(where, " AND ")
	if f.ByTime {
		q += " ORDER BY occurred_at, seq"
	} else {
		q += " ORDER BY seq"
	}
	// The query runs in audit.Stream's reader goroutine; decoding and fn
	// run on this one.
	return audit.Stream(ctx, func(ctx context.Context, emit audit.Emit) error {
		rows, err := s.r.QueryContext(ctx, q, args...)
		if err != nil {
			return fmt.Errorf("sqlite: scan audit: %w", mapErr(err))
		}
		defer rows.Close()
		var (
			seq   int64
			frame sql.RawBytes
		)
		for rows.Next() {
			if err := rows.Scan(&seq, &frame); err != nil {
				return fmt.Errorf("sqlite: scan audit: %w", mapErr(err))
			}
			at, alertname, hash, body, ok := parseFrame(frame)
			if !ok { // the record then hashes to something else: Verify reports it
				at, alertname, hash, body = 0, nil, nil, nil
			}
			if err := emit(seq, -1, fromMicros(at), alertname, body, hash); err != nil {
				return err
			}
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("sqlite: scan audit: %w", mapErr(err))
		}
		return nil
	}, fn)
}

func readCheckpoint(ctx context.Context, q queryer) (*audit.Checkpoint, error) {
	var (
		cp         audit.Checkpoint
		cutoff, at int64
	)
	err := q.QueryRowContext(ctx, `SELECT seq, hash, deleted, cutoff, at, actor FROM audit_checkpoints
		ORDER BY seq DESC LIMIT 1`).Scan(&cp.Seq, &cp.Hash, &cp.Deleted, &cutoff, &at, &cp.Actor)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: audit checkpoint: %w", mapErr(err))
	}
	cp.Before, cp.Time = fromMicros(cutoff), fromMicros(at)
	return &cp, nil
}

func readAuditState(ctx context.Context, q queryer) (audit.State, error) {
	h, err := readAuditHead(ctx, q)
	if err != nil {
		return audit.State{}, err
	}
	st := audit.State{HeadSeq: h.seq, HeadHash: h.hash, SealedThrough: h.lowWater}
	if st.Checkpoint, err = readCheckpoint(ctx, q); err != nil {
		return st, err
	}
	if err := q.QueryRowContext(ctx, `SELECT count(*) FROM events WHERE id > ?`, h.lowWater).Scan(&st.Unsealed); err != nil {
		return st, fmt.Errorf("sqlite: audit state: %w", mapErr(err))
	}
	return st, nil
}

// AuditState implements store.Store.
func (s *Store) AuditState(ctx context.Context) (audit.State, error) {
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return audit.State{}, fmt.Errorf("sqlite: audit state: %w", mapErr(err))
	}
	defer tx.Rollback()
	return readAuditState(ctx, tx)
}

// AuditStats implements store.Store: the aggregate table and two index
// look-ups, whatever the number of records.
func (s *Store) AuditStats(ctx context.Context) (audit.Stats, error) {
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return audit.Stats{}, fmt.Errorf("sqlite: audit stats: %w", mapErr(err))
	}
	defer tx.Rollback()
	st := audit.NewStats()
	rows, err := tx.QueryContext(ctx, `SELECT dim, key, records, bytes FROM audit_stats`)
	if err != nil {
		return st, fmt.Errorf("sqlite: audit stats: %w", mapErr(err))
	}
	for rows.Next() {
		var dim, key string
		var n, b int64
		if err := rows.Scan(&dim, &key, &n, &b); err != nil {
			rows.Close()
			return st, fmt.Errorf("sqlite: audit stats: %w", mapErr(err))
		}
		st.Set(dim, key, n, b)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return st, fmt.Errorf("sqlite: audit stats: %w", mapErr(err))
	}
	var oldest, newest sql.NullInt64
	if err := tx.QueryRowContext(ctx, `SELECT (SELECT min(occurred_at) FROM audit), (SELECT max(occurred_at) FROM audit)`).
		Scan(&oldest, &newest); err != nil {
		return st, fmt.Errorf("sqlite: audit stats: %w", mapErr(err))
	}
	if oldest.Valid {
		o, n := fromMicros(oldest.Int64), fromMicros(newest.Int64)
		st.Oldest, st.Newest = &o, &n
	}
	if st.State, err = readAuditState(ctx, tx); err != nil {
		return st, err
	}
	return st, nil
}

// CleanupAudit implements store.Store.
func (s *Store) CleanupAudit(ctx context.Context, before time.Time, actor, correlationID string) (audit.CleanupResult, error) {
	res := audit.CleanupResult{Before: store.UTC(before)}
	for {
		done := false
		err := s.write(ctx, "audit cleanup", func(tx *sql.Tx) error {
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
// res.Before behind a checkpoint, inside tx. When nothing is left to
// delete it appends the cleanup record (if anything was deleted) and
// reports done.
func (s *Store) cleanupChunk(ctx context.Context, tx *sql.Tx, res *audit.CleanupResult, actor, correlationID string) (bool, error) {
	fail := func(err error) (bool, error) { return false, fmt.Errorf("sqlite: audit cleanup: %w", mapErr(err)) }
	h, err := readAuditHead(ctx, tx)
	if err != nil {
		return false, err
	}
	var from int64 // the prefix ends at or before seq from, which the latest checkpoint covers
	if cp, err := readCheckpoint(ctx, tx); err != nil {
		return false, err
	} else if cp != nil {
		from = cp.Seq
	}
	// The first record to keep; "+occurred_at" makes SQLite walk the
	// primary key from the start instead of the time index.
	end := h.seq
	var keep int64
	err = tx.QueryRowContext(ctx, `SELECT seq FROM audit WHERE seq > ? AND +occurred_at >= ? ORDER BY seq LIMIT 1`,
		from, micros(res.Before)).Scan(&keep)
	switch {
	case err == nil:
		end = keep - 1
	case !errors.Is(err, sql.ErrNoRows):
		return fail(err)
	}
	end = min(end, from+store.AuditCleanupChunk)
	if end <= from {
		if res.Deleted > 0 {
			rec := store.CleanupRecord(*res, s.opts.Now(), actor, correlationID)
			return true, s.appendRecords(ctx, tx, h, []audit.Record{rec}, 0)
		}
		return true, nil
	}
	var hash string
	if err := tx.QueryRowContext(ctx, `SELECT hash FROM audit WHERE seq = ?`, end).Scan(&hash); errors.Is(err, sql.ErrNoRows) {
		return false, fmt.Errorf("sqlite: audit cleanup: record %d is missing, the chain is broken: run remediator audit verify", end)
	} else if err != nil {
		return fail(err)
	}
	rows, err := tx.QueryContext(ctx, `SELECT alertname, body FROM audit WHERE seq > ? AND seq <= ?`, from, end)
	if err != nil {
		return fail(err)
	}
	delta := audit.StatDelta{}
	var deleted int64
	for rows.Next() {
		var (
			r     audit.Record
			alert string
			body  sql.RawBytes
		)
		if err := rows.Scan(&alert, &body); err != nil {
			rows.Close()
			return fail(err)
		}
		_ = audit.DecodeCanonical(body, &r) // the stats' keys; a body that does not decode counts under empty keys
		delta.AddKeys(r.Type, r.Action, r.Outcome, alert, r.Priority, -int64(len(body)), -1)
		deleted++
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fail(err)
	}
	cp := audit.Checkpoint{Seq: end, Hash: hash, Deleted: deleted, Before: res.Before, Time: store.UTC(s.opts.Now()), Actor: actor}
	if _, err := tx.ExecContext(ctx, `INSERT INTO audit_checkpoints (seq, hash, deleted, cutoff, at, actor) VALUES (?, ?, ?, ?, ?, ?)`,
		cp.Seq, cp.Hash, cp.Deleted, micros(cp.Before), micros(cp.Time), cp.Actor); err != nil {
		return fail(err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM audit WHERE seq > ? AND seq <= ?`, from, end); err != nil {
		return fail(err)
	}
	if err := s.applyStats(ctx, tx, delta); err != nil {
		return false, err
	}
	res.Deleted += deleted
	res.Checkpoint = &cp
	return false, nil
}
