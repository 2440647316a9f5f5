package audit

import (
	"context"
	"errors"
	"fmt"
)

// Source is what Verify reads: the store's chain state and its records in
// seq order.
type Source interface {
	AuditState(ctx context.Context) (State, error)
	ScanAudit(ctx context.Context, f Filter, fn func(*Record) error) error
}

// Problems Verify reports.
const (
	// ProblemHash: the record's content no longer matches its hash (a
	// field was edited), or the last record's hash is not the head hash the
	// sealer recorded (the last record was edited and re-hashed).
	ProblemHash = "content hash mismatch"
	// ProblemPrevHash: the record's prev_hash is not the hash of the record
	// before it (the record before was replaced, or this one re-chained).
	ProblemPrevHash = "prev_hash mismatch"
	// ProblemMissing: no record has this seq (deleted), including records
	// missing at the end of the chain.
	ProblemMissing = "missing record"
	// ProblemReordered: the record that belongs at this seq (the one whose
	// prev_hash is the previous record's hash) is found at another seq.
	ProblemReordered = "reordered"
)

// Break is the first broken record.
type Break struct {
	Seq     int64  `json:"seq"`
	Problem string `json:"problem"`
	Detail  string `json:"detail"`
}

// Report is the result of Verify.
type Report struct {
	Valid bool `json:"valid"`
	// FromSeq is the first seq checked: 1, or the latest checkpoint's seq + 1.
	FromSeq    int64       `json:"fromSeq"`
	Checkpoint *Checkpoint `json:"checkpoint,omitempty"`
	// Records is how many records were found valid, in order, before the
	// break (all of them when Valid).
	Records int64 `json:"records"`
	// LastSeq and LastHash are the last valid record's (the checkpoint's,
	// or 0 and GenesisHash, when none was valid).
	LastSeq  int64  `json:"lastSeq"`
	LastHash string `json:"lastHash"`
	Break    *Break `json:"break,omitempty"`
	// Unsealed events are not in the chain yet (sealed within ≈1 s).
	Unsealed int64 `json:"unsealed"`
}

func (r Report) String() string {
	from := "from the start of the chain"
	if r.Checkpoint != nil {
		from = fmt.Sprintf("from the checkpoint at seq %d (cleanup of %s)", r.Checkpoint.Seq, r.Checkpoint.Time.Format(TimeFormat))
	}
	if r.Valid {
		return fmt.Sprintf("audit chain valid: %d records checked %s; head seq %d hash %s", r.Records, from, r.LastSeq, r.LastHash)
	}
	return fmt.Sprintf("audit chain BROKEN at seq %d: %s: %s (%d records valid before it, checked %s)",
		r.Break.Seq, r.Break.Problem, r.Break.Detail, r.Records, from)
}

var errStop = errors.New("stop")

// Verify walks the chain from the latest checkpoint (or from seq 1) and
// reports the first broken record: a seq that is missing, a record whose
// content does not match its hash, a prev_hash that is not the previous
// record's hash, or records out of order. It reads every record once,
// plus, after a break, the records after it (to tell a reordering from an
// edit).
func Verify(ctx context.Context, src Source) (Report, error) {
	st, err := src.AuditState(ctx)
	if err != nil {
		return Report{}, err
	}
	rep := Report{FromSeq: 1, LastHash: GenesisHash, Unsealed: st.Unsealed}
	if cp := st.Checkpoint; cp != nil {
		rep.Checkpoint, rep.FromSeq, rep.LastSeq, rep.LastHash = cp, cp.Seq+1, cp.Seq, cp.Hash
	}
	var (
		h      Hasher
		brk    *Break
		where  int64 // lookahead considers records with seq > where
		before struct {
			seq  int64
			hash string
		} // the record before LastSeq
	)
	before.seq, before.hash = rep.LastSeq, rep.LastHash
	// look is the lookahead after a break: the record that should follow
	// LastSeq (its prev_hash is LastHash), found at another seq, means the
	// chain was reordered rather than edited or cut.
	look := func(r *Record) error {
		if r.Seq > where && r.PrevHash == rep.LastHash {
			brk.Detail = fmt.Sprintf("the record that follows seq %d (its prev_hash is that record's hash) is at seq %d; %s",
				rep.LastSeq, r.Seq, brk.Detail)
			brk.Problem = ProblemReordered
			return errStop
		}
		return nil
	}
	err = src.ScanAudit(ctx, Filter{AfterSeq: rep.LastSeq}, func(r *Record) error {
		if brk != nil {
			return look(r)
		}
		if want := rep.LastSeq + 1; r.Seq != want {
			brk = &Break{Seq: want, Problem: ProblemMissing,
				Detail: fmt.Sprintf("no record with seq %d: the next record is seq %d", want, r.Seq)}
			where = rep.LastSeq
			return look(r)
		}
		sum, _ := h.Hash(r)
		switch {
		case sum != r.Hash:
			brk = &Break{Seq: r.Seq, Problem: ProblemHash,
				Detail: fmt.Sprintf("stored hash %s, content hashes to %s", r.Hash, sum)}
		case r.PrevHash != rep.LastHash:
			brk = &Break{Seq: r.Seq, Problem: ProblemPrevHash,
				Detail: fmt.Sprintf("prev_hash %s, but the previous record's hash is %s", r.PrevHash, rep.LastHash)}
		}
		if brk != nil {
			where = r.Seq
			return nil
		}
		rep.Records++
		before.seq, before.hash = rep.LastSeq, rep.LastHash
		rep.LastSeq, rep.LastHash = r.Seq, r.Hash
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return rep, err
	}
	if brk == nil {
		switch {
		case st.HeadSeq > rep.LastSeq:
			brk = &Break{Seq: rep.LastSeq + 1, Problem: ProblemMissing,
				Detail: fmt.Sprintf("records %d to %d are missing at the end of the chain (the sealer's head is seq %d)",
					rep.LastSeq+1, st.HeadSeq, st.HeadSeq)}
		case st.HeadSeq == rep.LastSeq && rep.Records > 0 && st.HeadHash != rep.LastHash:
			brk = &Break{Seq: rep.LastSeq, Problem: ProblemHash,
				Detail: fmt.Sprintf("the last record hashes to %s, but the sealer recorded head hash %s", rep.LastHash, st.HeadHash)}
			rep.Records--
			rep.LastSeq, rep.LastHash = before.seq, before.hash
		}
	}
	rep.Break = brk
	rep.Valid = brk == nil
	return rep, nil
}
