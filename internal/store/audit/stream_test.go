package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// streamRead emits n chained records (with details) as a store would.
func streamRead(t *testing.T, n int) ([]Record, func(context.Context, Emit) error) {
	recs := make([]Record, n)
	for i := range recs {
		recs[i] = EventRecord(int64(i+1), time.Unix(int64(i), 1000).UTC(), fmt.Sprintf("inc-%d", i), "c", "Alert",
			"fp", "ns", "applied", "worker", "r", []byte(fmt.Sprintf(`{"action":"restart","n":%d}`, i)))
	}
	_, _, bodies := ChainEncoded(0, GenesisHash, recs)
	return recs, func(ctx context.Context, emit Emit) error {
		for i := range recs {
			if err := ctx.Err(); err != nil { // as a database's rows do
				return err
			}
			if err := emit(recs[i].Seq, -1, recs[i].Time, []byte(recs[i].AlertName), bodies[i], []byte(recs[i].Hash)); err != nil {
				return err
			}
		}
		return nil
	}
}

func TestStream(t *testing.T) {
	recs, read := streamRead(t, 3*streamBatchRows+7)
	var prev *Record
	i := 0
	err := Stream(context.Background(), read, func(r *Record) error {
		if prev != nil && !bytes.Equal(prev.Details, recs[i-1].Details) {
			t.Fatalf("record %d's details changed before the next record's call returned", i-1)
		}
		want := recs[i]
		if !bytes.Equal(Canonical(r), Canonical(&want)) || r.Hash != want.Hash || r.EventID != want.EventID {
			t.Fatalf("record %d: got %+v, want %+v", i, r, want)
		}
		c := *r
		prev = &c
		i++
		return nil
	})
	if err != nil || i != len(recs) {
		t.Fatalf("Stream: %v after %d records, want %d", err, i, len(recs))
	}
}

func TestStreamColumnsWin(t *testing.T) {
	recs, _ := streamRead(t, 1)
	_, _, bodies := ChainEncoded(0, GenesisHash, recs)
	read := func(ctx context.Context, emit Emit) error {
		return emit(9, 77, time.Unix(5, 0).UTC(), []byte("Other"), bodies[0], []byte(recs[0].Hash))
	}
	err := Stream(context.Background(), read, func(r *Record) error {
		if r.Seq != 9 || r.EventID != 77 || !r.Time.Equal(time.Unix(5, 0)) || r.AlertName != "Other" || r.Reason != "r" {
			t.Errorf("got %+v", r)
		}
		if Hash(r) == r.Hash {
			t.Error("edited columns still match the hash")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestStreamStops(t *testing.T) {
	_, read := streamRead(t, 5*streamBatchRows)
	stop := errors.New("stop")
	n := 0
	err := Stream(context.Background(), read, func(*Record) error {
		n++
		if n == streamBatchRows+3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != streamBatchRows+3 {
		t.Fatalf("Stream: %v after %d", err, n)
	}
	readErr := errors.New("read failed")
	err = Stream(context.Background(), func(ctx context.Context, emit Emit) error {
		if err := read(ctx, emit); err != nil {
			return err
		}
		return readErr
	}, func(*Record) error { return nil })
	if !errors.Is(err, readErr) {
		t.Fatalf("Stream: %v, want the read error", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	err = Stream(ctx, read, func(*Record) error { cancel(); return nil })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Stream after cancel: %v", err)
	}
}
