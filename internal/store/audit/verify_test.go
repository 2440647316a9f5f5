package audit

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"
)

// memSource is a chain in memory, as a store would hold it.
type memSource struct {
	state State
	recs  []Record // any order; scanned by seq
}

func (m *memSource) AuditState(context.Context) (State, error) { return m.state, nil }

func (m *memSource) ScanAudit(ctx context.Context, f Filter, fn func(*Record) error) error {
	recs := slices.Clone(m.recs)
	slices.SortFunc(recs, func(a, b Record) int { return int(a.Seq - b.Seq) })
	for i := range recs {
		if recs[i].Seq <= f.AfterSeq {
			continue
		}
		if err := fn(&recs[i]); err != nil {
			return err
		}
	}
	return nil
}

func chain(n int) *memSource {
	recs := make([]Record, n)
	for i := range recs {
		recs[i] = EventRecord(int64(i+1), time.Date(2026, 1, 1, 0, 0, i, 0, time.UTC), "inc", "", "A", "f", "ns",
			"received", "remediator", fmt.Sprint("r", i), nil)
	}
	seq, head, _ := Chain(0, GenesisHash, recs)
	return &memSource{state: State{HeadSeq: seq, HeadHash: head}, recs: recs}
}

func TestVerify(t *testing.T) {
	at := func(m *memSource, seq int64) *Record {
		for i := range m.recs {
			if m.recs[i].Seq == seq {
				return &m.recs[i]
			}
		}
		panic(seq)
	}
	drop := func(m *memSource, seqs ...int64) {
		m.recs = slices.DeleteFunc(m.recs, func(r Record) bool { return slices.Contains(seqs, r.Seq) })
	}
	cases := []struct {
		name    string
		tamper  func(m *memSource)
		seq     int64
		problem string
	}{
		{"intact", func(*memSource) {}, 0, ""},
		{"edit", func(m *memSource) { at(m, 4).Reason = "x" }, 4, ProblemHash},
		{"edit details", func(m *memSource) { at(m, 2).Details = []byte(`{}`) }, 2, ProblemHash},
		{"edit and re-hash", func(m *memSource) { r := at(m, 4); r.Reason = "x"; r.Hash = Hash(r) }, 5, ProblemPrevHash},
		{"delete", func(m *memSource) { drop(m, 6) }, 6, ProblemMissing},
		{"delete the first", func(m *memSource) { drop(m, 1) }, 1, ProblemMissing},
		{"delete the last", func(m *memSource) { drop(m, 8) }, 8, ProblemMissing},
		{"delete the last two", func(m *memSource) { drop(m, 7, 8) }, 7, ProblemMissing},
		{"swap", func(m *memSource) { at(m, 3).Seq, at(m, 6).Seq = 6, 3 }, 3, ProblemReordered},
		{"swap neighbours", func(m *memSource) { at(m, 3).Seq, at(m, 4).Seq = 4, 3 }, 3, ProblemReordered},
		{"move", func(m *memSource) { at(m, 2).Seq = 20 }, 2, ProblemReordered},
		{"re-hash the last", func(m *memSource) { r := at(m, 8); r.Actor = "x"; r.Hash = Hash(r) }, 8, ProblemHash},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := chain(8)
			tc.tamper(m)
			rep, err := Verify(context.Background(), m)
			if err != nil {
				t.Fatal(err)
			}
			if tc.problem == "" {
				if !rep.Valid || rep.Records != 8 || rep.LastSeq != 8 || rep.LastHash != m.state.HeadHash {
					t.Fatalf("%+v", rep)
				}
				return
			}
			if rep.Valid || rep.Break.Seq != tc.seq || rep.Break.Problem != tc.problem || rep.Records != tc.seq-1 {
				t.Fatalf("%s\n%+v %+v; want seq %d %s", rep, rep, rep.Break, tc.seq, tc.problem)
			}
		})
	}
}

func TestVerifyCheckpoint(t *testing.T) {
	m := chain(8)
	cp := &Checkpoint{Seq: 3, Hash: m.recs[2].Hash}
	m.recs = m.recs[3:]
	m.state.Checkpoint = cp
	rep, err := Verify(context.Background(), m)
	if err != nil || !rep.Valid || rep.FromSeq != 4 || rep.Records != 5 || rep.Checkpoint != cp {
		t.Fatalf("%+v, %v", rep, err)
	}
	// A checkpoint whose hash is not the next record's prev_hash.
	m.state.Checkpoint = &Checkpoint{Seq: 3, Hash: GenesisHash}
	if rep, _ := Verify(context.Background(), m); rep.Valid || rep.Break.Seq != 4 || rep.Break.Problem != ProblemPrevHash {
		t.Fatalf("%+v", rep)
	}
	// Everything deleted: the checkpoint is the head.
	m = chain(2)
	m.state.Checkpoint = &Checkpoint{Seq: 2, Hash: m.state.HeadHash}
	m.recs = nil
	if rep, _ := Verify(context.Background(), m); !rep.Valid || rep.Records != 0 || rep.LastSeq != 2 {
		t.Fatalf("%+v", rep)
	}
	// An empty chain is valid.
	if rep, _ := Verify(context.Background(), &memSource{state: State{HeadHash: GenesisHash}}); !rep.Valid || rep.LastHash != GenesisHash {
		t.Fatalf("%+v", rep)
	}
}
