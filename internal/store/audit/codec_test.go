package audit

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

func TestDecodeCanonicalRoundTrip(t *testing.T) {
	recs := []Record{
		{Seq: 1, EventID: 42, Time: time.Date(2026, 2, 28, 23, 59, 59, 123456000, time.UTC), IncidentID: "inc-1",
			CorrelationID: "c", AlertName: "KubePodCrashLooping", Fingerprint: "fp", Namespace: "prod",
			Target: Target{Kind: "Deployment", Namespace: "prod", Name: "api"}, Priority: "P1", Type: "applied",
			Action: "restart", Mode: "auto", Outcome: "applied", Reason: "a, b: 3:x,", Actor: "worker",
			Details: json.RawMessage(`{"a":"1:,"}`), PrevHash: GenesisHash},
		{Seq: 2, Time: time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC), Type: TypeCleanup, PrevHash: GenesisHash},
		{Seq: 1 << 40, EventID: 7, Time: time.Date(2024, 2, 29, 1, 2, 3, 4000, time.UTC), Type: "ünïcode", Reason: "\n\t'\"",
			PrevHash: "ab"},
	}
	for _, want := range recs {
		want.Hash = Hash(&want)
		b := Canonical(&want)
		got := Record{Hash: want.Hash}
		if err := DecodeCanonical(b, &got); err != nil {
			t.Fatalf("DecodeCanonical(%q): %v", b, err)
		}
		if !bytes.Equal(Canonical(&got), b) || got.Hash != want.Hash || !got.Time.Equal(want.Time) || got.Time.Location() != time.UTC {
			t.Errorf("round trip of %q: %+v", b, got)
		}
		if (len(want.Details) == 0) != (got.Details == nil) || got.Reason != want.Reason || got.Target != want.Target {
			t.Errorf("round trip: got %+v, want %+v", got, want)
		}
	}
}

func TestDecodeCanonicalMalformed(t *testing.T) {
	good := Canonical(&Record{Seq: 3, Time: time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC), Type: "x", PrevHash: GenesisHash})
	bad := [][]byte{nil, []byte("remediator"), good[:len(good)-1], append(append([]byte(nil), good...), '0'),
		bytes.Replace(good, []byte("19:remediator-audit-v1"), []byte("19:remediator-audit-v2"), 1),
		bytes.Replace(good, []byte("1:3,"), []byte("1:x,"), 1),
		bytes.Replace(good, []byte("2026-01-02"), []byte("2026-13-02"), 1),
		bytes.Replace(good, []byte("1:x,"), []byte("2:x,"), 1),
		[]byte("99999999999999999999:"),
	}
	for _, b := range bad {
		r := Record{Hash: "h", Reason: "left over"}
		if err := DecodeCanonical(b, &r); err == nil {
			t.Errorf("DecodeCanonical(%q): no error", b)
		} else if r.Hash != "h" || r.Reason != "" {
			t.Errorf("DecodeCanonical(%q) left %+v", b, r)
		}
	}
}

func TestChainEncoded(t *testing.T) {
	a := []Record{{Type: "a", Time: time.Unix(1, 0).UTC()}, {Type: "b", Time: time.Unix(2, 0).UTC()}}
	b := append([]Record(nil), a...)
	seqA, hashA, sizes := Chain(5, GenesisHash, a)
	seqB, hashB, bodies := ChainEncoded(5, GenesisHash, b)
	if seqA != seqB || hashA != hashB {
		t.Fatalf("Chain %d %s, ChainEncoded %d %s", seqA, hashA, seqB, hashB)
	}
	for i := range a {
		if a[i].Hash != b[i].Hash || !bytes.Equal(bodies[i], Canonical(&b[i])) || sizes[i] != len(bodies[i]) {
			t.Errorf("record %d differs", i)
		}
	}
}

func BenchmarkDecodeCanonical(b *testing.B) {
	r := EventRecord(9, time.Now(), "inc-123456", "corr-abcdef", "KubePodCrashLooping", "fp0123456789abcd", "prod",
		"applied", "worker", "restarted after 5 crashes", []byte(`{"action":"restart","target":{"kind":"Deployment","namespace":"prod","name":"api"},"priority":"P2","mode":"auto"}`))
	Chain(0, GenesisHash, []Record{r})
	body := Canonical(&r)
	var out Record
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if err := DecodeCanonical(body, &out); err != nil {
			b.Fatal(err)
		}
	}
}
