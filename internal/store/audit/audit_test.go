package audit

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

func goldenRecord() Record {
	return Record{Seq: 42, EventID: 7, Time: time.Date(2026, 3, 1, 10, 0, 0, 123456789, time.UTC),
		IncidentID: "inc-1", CorrelationID: "corr-1", AlertName: "HighErrorRate", Fingerprint: "a1b2c3d4e5f60718",
		Namespace: "shop", Target: Target{Kind: "Deployment", Namespace: "shop", Name: "web"}, Priority: "P1",
		Type: "planned", Action: "rollback", Mode: "dry-run", Outcome: "planned", Reason: "would roll back → v1",
		Actor: "remediator", Details: json.RawMessage(`{"mode":"dry-run"}`), PrevHash: GenesisHash}
}

// TestCanonicalGolden pins the canonical encoding and its hash; the hash
// was computed independently (Python hashlib over the same netstrings),
// so a verifier in another language can be checked against it
// (docs/audit.md).
func TestCanonicalGolden(t *testing.T) {
	r := goldenRecord()
	want := `19:remediator-audit-v1,2:42,1:7,27:2026-03-01T10:00:00.123456Z,5:inc-1,6:corr-1,13:HighErrorRate,` +
		`16:a1b2c3d4e5f60718,4:shop,10:Deployment,4:shop,3:web,2:P1,7:planned,8:rollback,7:dry-run,7:planned,` +
		`22:would roll back → v1,10:remediator,18:{"mode":"dry-run"},64:` + GenesisHash + `,`
	if got := string(Canonical(&r)); got != want {
		t.Fatalf("canonical:\n%s\nwant\n%s", got, want)
	}
	if got := Hash(&r); got != "a76e0505432803e38b10b60d6eddbbc413f2be01fc896e280864f9ef4718d80b" {
		t.Fatalf("hash %s", got)
	}
}

// TestHashCoversEveryField changes each field of the record in turn (and
// moves bytes across a field boundary): every change changes the hash,
// except Hash itself.
func TestHashCoversEveryField(t *testing.T) {
	base := goldenRecord()
	h0 := Hash(&base)
	v := reflect.ValueOf(&base).Elem()
	var walk func(v reflect.Value, name string)
	walk = func(f reflect.Value, name string) {
		switch f.Kind() {
		case reflect.Struct:
			if f.Type() == reflect.TypeOf(time.Time{}) {
				old := f.Interface().(time.Time)
				f.Set(reflect.ValueOf(old.Add(time.Microsecond)))
				if Hash(&base) == h0 {
					t.Errorf("%s: hash unchanged", name)
				}
				f.Set(reflect.ValueOf(old))
				return
			}
			for i := 0; i < f.NumField(); i++ {
				walk(f.Field(i), name+"."+f.Type().Field(i).Name)
			}
			return
		case reflect.String:
			old := f.String()
			f.SetString(old + "x")
		case reflect.Int64:
			old := f.Int()
			f.SetInt(old + 1)
			defer f.SetInt(old)
		case reflect.Slice:
			old := f.Bytes()
			f.SetBytes(append(append([]byte(nil), old...), ' '))
			defer f.SetBytes(old)
		}
		got := Hash(&base)
		if f.Kind() == reflect.String {
			f.SetString(f.String()[:f.Len()-1])
		}
		if name == ".Hash" {
			if got != h0 {
				t.Errorf("Hash is covered by the hash")
			}
			return
		}
		if got == h0 {
			t.Errorf("%s: hash unchanged", name)
		}
	}
	walk(v, "")
	if Hash(&base) != h0 {
		t.Fatal("walk did not restore the record")
	}
	a, b := base, base
	a.AlertName, a.Fingerprint = "ab", "c"
	b.AlertName, b.Fingerprint = "a", "bc"
	if Hash(&a) == Hash(&b) {
		t.Error("moving a byte across fields keeps the hash")
	}
}

func TestChain(t *testing.T) {
	recs := []Record{goldenRecord(), goldenRecord(), goldenRecord()}
	seq, head, sizes := Chain(10, "abc", recs)
	if seq != 13 || head != recs[2].Hash || len(sizes) != 3 {
		t.Fatalf("Chain = %d %s %v", seq, head, sizes)
	}
	prev := "abc"
	for i, r := range recs {
		if r.Seq != int64(11+i) || r.PrevHash != prev || r.Hash != Hash(&r) || sizes[i] != len(Canonical(&r)) {
			t.Errorf("record %d: %+v", i, r)
		}
		prev = r.Hash
	}
}

func TestDerive(t *testing.T) {
	web := Target{Kind: "Deployment", Namespace: "shop", Name: "web"}
	cases := []struct {
		name, typ, details string
		want               Derived
	}{
		{"no details", "received", ``, Derived{Outcome: "recorded"}},
		{"null details", "duplicate", `null`, Derived{Outcome: "recorded"}},
		{"not JSON", "applied", `{oops`, Derived{Outcome: "applied"}},
		{"array", "applied", `[{"action":"x"}]`, Derived{Outcome: "applied"}},
		{"planned (planner)", "planned", `{"mode":"dry-run","decision":{"action":"rollback","priority":"P1"},
			"target":{"namespace":"shop","kind":"Deployment","name":"web"},"change":{"action":"rollback"}}`,
			Derived{Target: web, Priority: "P1", Action: "rollback", Mode: "dry-run", Outcome: "planned"}},
		{"matched", "matched", `{"policy":"p","target":{"namespace":"shop","kind":"Deployment","name":"web"}}`,
			Derived{Target: web, Outcome: "recorded"}},
		{"blocked (guard)", "blocked", `{"guard":"cooldown","action":"restart","mode":"enforce"}`,
			Derived{Action: "restart", Mode: "enforce", Outcome: "blocked"}},
		{"escalated", "escalated", `{"priority":"P0","action":"escalate","deadline":"0s"}`,
			Derived{Priority: "P0", Action: "escalate", Outcome: "escalated"}},
		{"intent: change target and action", "intent", `{"execution":"e","mode":"enforce","change":{"action":"scale",
			"target":{"namespace":"shop","kind":"Deployment","name":"web"}}}`,
			Derived{Target: web, Action: "scale", Mode: "enforce", Outcome: "pending"}},
		{"proposed", "proposed", `{"proposal":"p","mode":"dry-run","priority":"P2","change":{"action":"restart",
			"target":{"namespace":"shop","kind":"Deployment","name":"web"}}}`,
			Derived{Target: web, Priority: "P2", Action: "restart", Mode: "dry-run", Outcome: "proposed"}},
		{"details.action before change.action", "verified", `{"action":"rollback","change":{"action":"scale"}}`,
			Derived{Action: "rollback", Outcome: "verified"}},
		{"details.target before change.target", "applied", `{"target":{"kind":"StatefulSet","namespace":"db","name":"pg"},
			"change":{"target":{"namespace":"shop","kind":"Deployment","name":"web"}}}`,
			Derived{Target: Target{Kind: "StatefulSet", Namespace: "db", Name: "pg"}, Outcome: "applied"}},
		{"empty target falls through", "applied", `{"target":{},"change":{"target":{"namespace":"shop","kind":"Deployment","name":"web"}}}`,
			Derived{Target: web, Outcome: "applied"}},
		{"wrong types ignored", "failed", `{"action":5,"mode":true,"priority":["P0"],"target":"web","change":"x","decision":3}`,
			Derived{Outcome: "failed"}},
		{"empty strings fall through", "ineffective", `{"action":"","change":{"action":"restart"}}`,
			Derived{Action: "restart", Outcome: "ineffective"}},
		{"rollout-complete", "rollout-complete", `{"execution":"e"}`, Derived{Outcome: "rolled-out"}},
		{"duplicate execution", "duplicate-execution-prevented", ``, Derived{Outcome: "prevented"}},
		{"resolved", "resolved", ``, Derived{Outcome: "recorded"}},
		{"diagnosed", "diagnosed", `{"evidence":[{"action":"x"}]}`, Derived{Outcome: "recorded"}},
		{"service-level type", "paused", `{"by":"alice"}`, Derived{Outcome: "paused"}},
		{"unknown type is its own outcome", "something-new", ``, Derived{Outcome: "something-new"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Derive(tc.typ, []byte(tc.details)); got != tc.want {
				t.Errorf("Derive(%q, %s) =\n%+v, want\n%+v", tc.typ, tc.details, got, tc.want)
			}
		})
	}
}

func TestEventRecord(t *testing.T) {
	details := []byte(`{"action":"restart"}`)
	r := EventRecord(3, time.Date(2026, 1, 1, 0, 0, 0, 1999, time.FixedZone("x", 3600)), "i", "c", "A", "f", "n",
		"blocked", "w", "why", details)
	details[2] = 'X' // the record keeps its own copy
	if r.EventID != 3 || !r.Time.Equal(time.Date(2025, 12, 31, 23, 0, 0, 1000, time.UTC)) || r.Time.Location() != time.UTC ||
		r.Action != "restart" || r.Outcome != "blocked" || string(r.Details) != `{"action":"restart"}` {
		t.Errorf("%+v", r)
	}
}

func TestStatDelta(t *testing.T) {
	d := StatDelta{}
	r := goldenRecord()
	d.Add(&r, 100, 1)
	d.Add(&r, 100, 1)
	d.AddKeys(r.Type, r.Action, r.Outcome, r.AlertName, r.Priority, -100, -1)
	for _, k := range []StatKey{{DimTotal, ""}, {DimType, "planned"}, {DimAction, "rollback"}, {DimOutcome, "planned"},
		{DimAlertName, "HighErrorRate"}, {DimPriority, "P1"}} {
		if d[k] != [2]int64{1, 100} {
			t.Errorf("%v = %v", k, d[k])
		}
	}
	s := NewStats()
	s.Set(DimTotal, "", 5, 500)
	s.Set(DimType, "x", 5, 500)
	s.Set(DimAction, "gone", 0, 0)
	if s.Records != 5 || s.Bytes != 500 || s.ByType["x"] != 5 || len(s.ByAction) != 0 {
		t.Errorf("%+v", s)
	}
}
