package audit

import (
	"context"
	"time"
)

// Emit hands one stored record to Stream: its seq, event id (negative when
// the store keeps it only in the body), time and alertname columns, its
// canonical encoding (body) and its hash. The slices are copied before
// Emit returns. It fails once Stream no longer wants records.
type Emit func(seq, eventID int64, at time.Time, alertname, body, hash []byte) error

// Stream is how the stores implement ScanAudit: read runs the query in
// its own goroutine and emits each row; Stream decodes the rows and calls
// fn with them in the same order, one at a time, on the caller's
// goroutine. Reading the rows from the database and decoding and writing
// them (fn) thus overlap, on two cores. Rows travel in a few batches of
// at most streamBatchRows rows or streamBatchBytes bytes, reused, so
// memory does not grow with the scan. Seq, EventID (when emitted), Time
// and AlertName of the records are the emitted columns, not the body's:
// both are hashed, so Verify notices an edit of either. A body that does
// not decode leaves the other fields empty (its hash then mismatches).
// The record passed to fn, and its Details, are valid until fn returns.
//
// When fn fails Stream cancels read's context and returns fn's error;
// otherwise it returns read's.
func Stream(ctx context.Context, read func(ctx context.Context, emit Emit) error, fn func(*Record) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	full := make(chan *streamBatch, streamBatches)
	free := make(chan *streamBatch, streamBatches)
	for range streamBatches {
		free <- new(streamBatch)
	}
	errc := make(chan error, 1)
	go func() {
		var cur *streamBatch
		send := func() error {
			select {
			case full <- cur:
				cur = nil
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		err := read(ctx, func(seq, eventID int64, at time.Time, alertname, body, hash []byte) error {
			if cur == nil {
				if err := ctx.Err(); err != nil {
					return err
				}
				select {
				case cur = <-free:
					cur.rows, cur.arena = cur.rows[:0], cur.arena[:0]
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			a := len(cur.arena)
			cur.arena = append(cur.arena, alertname...)
			cur.arena = append(cur.arena, body...)
			cur.arena = append(cur.arena, hash...)
			cur.rows = append(cur.rows, streamRow{seq: seq, eventID: eventID, at: at, start: a,
				alertEnd: a + len(alertname), bodyEnd: a + len(alertname) + len(body), end: len(cur.arena)})
			if len(cur.rows) >= streamBatchRows || len(cur.arena) >= streamBatchBytes {
				return send()
			}
			return nil
		})
		if err == nil && cur != nil && len(cur.rows) > 0 {
			err = send()
		}
		close(full)
		errc <- err
	}()
	var (
		r    Record
		prev *streamBatch // the batch of the record fn saw last; reused once fn returned from the next one
		err  error
	)
	for b := range full {
		s := string(b.arena) // every string of the batch's records, in one allocation
		for i := range b.rows {
			w := &b.rows[i]
			r.Hash = s[w.bodyEnd:w.end]
			_ = decode(b.arena[w.alertEnd:w.bodyEnd], s[w.alertEnd:w.bodyEnd], &r)
			r.Seq, r.Time, r.AlertName = w.seq, w.at, s[w.start:w.alertEnd]
			if w.eventID >= 0 {
				r.EventID = w.eventID
			}
			if err = fn(&r); err != nil {
				break
			}
			if prev != nil {
				free <- prev
				prev = nil
			}
		}
		if err != nil {
			break
		}
		prev = b
	}
	if err != nil {
		cancel()
		for range full { // let the reader see the cancellation and finish
		}
		<-errc
		return err
	}
	return <-errc
}

const (
	streamBatches    = 4
	streamBatchRows  = 512
	streamBatchBytes = 256 << 10
)

type streamBatch struct {
	rows  []streamRow
	arena []byte
}

type streamRow struct {
	seq, eventID                  int64
	at                            time.Time
	start, alertEnd, bodyEnd, end int
}
