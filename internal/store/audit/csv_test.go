package audit

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"strconv"
	"testing"
	"time"
)

// csvReference is what the CSV export wrote with encoding/csv; the
// encoder must write exactly the same bytes.
func csvReference(t testing.TB, recs []Record) []byte {
	var out bytes.Buffer
	w := csv.NewWriter(&out)
	if err := w.Write(CSVHeader); err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		row := []string{
			itoa(r.Seq), r.Time.UTC().Format(TimeFormat), itoa(r.EventID), r.IncidentID, r.CorrelationID, r.AlertName,
			r.Fingerprint, r.Namespace, r.Target.Kind, r.Target.Namespace, r.Target.Name, r.Priority, r.Type, r.Action,
			r.Mode, r.Outcome, r.Reason, r.Actor, string(r.Details), r.PrevHash, r.Hash}
		if err := w.Write(row); err != nil {
			t.Fatal(err)
		}
	}
	w.Flush()
	return out.Bytes()
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func encodeCSV(t testing.TB, recs []Record) []byte {
	var out bytes.Buffer
	enc, err := NewEncoder(&out, FormatCSV)
	if err != nil {
		t.Fatal(err)
	}
	for i := range recs {
		if err := enc.Encode(&recs[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func FuzzCSVLikeEncodingCSV(f *testing.F) {
	for _, s := range []string{"", "plain", `a "quoted" one`, "a,b", "\r\n", "line\nbreak", ` lead`, "\tlead", `\.`,
		"\u00a0nbsp", "\u2028x", "\x85", "\xff\xfe", `{"a":"b,c"}`, "=SUM(A1)", "é"} {
		f.Add(s, s+"x", int64(3), int64(1700000000123456))
	}
	f.Fuzz(func(t *testing.T, a, b string, seq, us int64) {
		recs := []Record{{Seq: seq, EventID: -seq, Time: time.UnixMicro(us), IncidentID: a, CorrelationID: b,
			AlertName: a + b, Fingerprint: b + a, Namespace: a, Target: Target{Kind: b, Namespace: a, Name: b},
			Priority: a, Type: b, Action: a, Mode: b, Outcome: a, Reason: b, Actor: a, Details: json.RawMessage(b),
			PrevHash: a, Hash: b}, {}}
		if got, want := encodeCSV(t, recs), csvReference(t, recs); !bytes.Equal(got, want) {
			t.Fatalf("CSV export differs from encoding/csv:\n got %q\nwant %q", got, want)
		}
	})
}

func FuzzAppendTime(f *testing.F) {
	for _, ns := range []int64{0, 1, 999, 1000, 1700000000123456789, -1, -62135596800000000000 / 1000, 253402300799999999999 / 1000} {
		f.Add(ns)
	}
	f.Fuzz(func(t *testing.T, ns int64) {
		for _, tm := range []time.Time{time.Unix(0, ns), time.Unix(ns, ns%1e9).In(time.FixedZone("x", 3600)), time.UnixMicro(ns)} {
			if got, want := string(appendTime(nil, tm)), tm.UTC().Format(TimeFormat); got != want {
				t.Fatalf("appendTime(%v) = %s, want %s", tm, got, want)
			}
		}
	})
}
