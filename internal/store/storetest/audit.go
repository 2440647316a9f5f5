package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/remediator/remediator/internal/incident"
	"github.com/remediator/remediator/internal/store"
	"github.com/remediator/remediator/internal/store/audit"
)

func runAudit(t *testing.T, s suite) {
	t.Run("AuditSeal", s.auditSeal)
	t.Run("AuditServiceLevel", s.auditServiceLevel)
	t.Run("AuditTamper", s.auditTamper)
	t.Run("AuditCleanup", s.auditCleanup)
	t.Run("AuditStats", s.auditStats)
	t.Run("AuditScanFilter", s.auditScanFilter)
	t.Run("AuditScanCancelLeaksNothing", s.auditScanCancel)
	t.Run("AuditConcurrentSealers", s.auditConcurrent)
}

// SealAll seals until nothing is left and returns how many were sealed.
func SealAll(t testing.TB, st store.Store) int {
	t.Helper()
	total := 0
	for {
		n, err := st.SealAudit(ctx, 100)
		if err != nil {
			t.Fatalf("SealAudit: %v", err)
		}
		total += n
		if n == 0 {
			return total
		}
	}
}

// Settle seals until every event is sealed and the sealer's low-water mark
// covers them all (on PostgreSQL that takes a few passes, a second apart).
func Settle(t testing.TB, st store.Store) {
	t.Helper()
	var maxID int64
	deadline := time.Now().Add(15 * time.Second)
	for {
		SealAll(t, st)
		err := st.ScanAudit(ctx, audit.Filter{AfterSeq: 0}, func(r *audit.Record) error {
			maxID = max(maxID, r.EventID)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		s, err := st.AuditState(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if s.Unsealed == 0 && s.SealedThrough >= maxID {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("audit did not settle: %+v, newest sealed event %d", s, maxID)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Records returns every record in seq order.
func Records(t testing.TB, st store.Store) []audit.Record {
	t.Helper()
	var recs []audit.Record
	err := st.ScanAudit(ctx, audit.Filter{}, func(r *audit.Record) error {
		c := *r
		c.Details = append(json.RawMessage(nil), r.Details...)
		recs = append(recs, c)
		return nil
	})
	if err != nil {
		t.Fatalf("ScanAudit: %v", err)
	}
	return recs
}

func mustVerify(t *testing.T, st store.Store) audit.Report {
	t.Helper()
	rep, err := audit.Verify(ctx, st)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return rep
}

// fixtureDetails are timeline events in the shapes the stages record.
var fixtureDetails = []struct {
	typ, details string
	want         audit.Derived
}{
	{"planned", `{"mode":"dry-run","decision":{"action":"rollback","priority":"P1","escalated":false},
		"target":{"namespace":"shop","kind":"Deployment","name":"web"},
		"change":{"action":"rollback","target":{"namespace":"shop","kind":"Deployment","name":"web"},"summary":"rollback"}}`,
		audit.Derived{Target: audit.Target{Kind: "Deployment", Namespace: "shop", Name: "web"}, Priority: "P1",
			Action: "rollback", Mode: "dry-run", Outcome: "planned"}},
	{"blocked", `{"guard":"cooldown","action":"restart","mode":"enforce"}`,
		audit.Derived{Action: "restart", Mode: "enforce", Outcome: "blocked"}},
	{"escalated", `{"priority":"P0","action":"escalate","deadline":"0s"}`,
		audit.Derived{Priority: "P0", Action: "escalate", Outcome: "escalated"}},
	{"applied", `{"execution":"x1","mode":"enforce","change":{"action":"scale","target":{"namespace":"shop","kind":"Deployment","name":"api"}}}`,
		audit.Derived{Target: audit.Target{Kind: "Deployment", Namespace: "shop", Name: "api"}, Action: "scale",
			Mode: "enforce", Outcome: "applied"}},
}

// auditFixture ingests two alerts and appends fixtureDetails to the first
// incident: 2 received + len(fixtureDetails) events. It returns the
// incident ids.
func auditFixture(t *testing.T, st store.Store) []string {
	t.Helper()
	res := mustIngest(t, st, Notification(Alert("a0d17000000000a1", incident.StatusFiring, t0),
		Alert("a0d17000000000a2", incident.StatusFiring, t0, "alertname", "OtherAlert", "namespace", "ops")))
	ids := []string{res.Alerts[0].IncidentID, res.Alerts[1].IncidentID}
	var evs []incident.Event
	for _, f := range fixtureDetails {
		evs = append(evs, incident.Event{IncidentID: ids[0], Type: f.typ, Actor: "worker-1", Reason: "why " + f.typ,
			CorrelationID: "corr-fixture", Details: json.RawMessage(f.details)})
	}
	if err := st.AppendEvents(ctx, evs...); err != nil {
		t.Fatal(err)
	}
	return ids
}

func (s suite) auditSeal(t *testing.T) {
	clock := NewClock(t0)
	st := s.open(t, store.WithClock(clock.Now))
	ids := auditFixture(t, st)
	n := 2 + len(fixtureDetails)
	if s.b.SealsOnWrite {
		// Sealed already, by the writing transactions: nothing is left.
		if state, err := st.AuditState(ctx); err != nil || state.Unsealed != 0 || state.HeadSeq != int64(n) {
			t.Fatalf("after writing: %+v, %v; want %d records, none unsealed", state, err, n)
		}
		n = 0
	} else if state, err := st.AuditState(ctx); err != nil || state.Unsealed != int64(n) || state.HeadSeq != 0 || state.HeadHash != audit.GenesisHash {
		t.Fatalf("before sealing: %+v, %v; want %d unsealed, empty chain", state, err, n)
	}
	// Small batches: the chain continues across seal transactions.
	total := 0
	for {
		k, err := st.SealAudit(ctx, 2)
		if err != nil {
			t.Fatal(err)
		}
		if k > 2 {
			t.Fatalf("SealAudit(2) sealed %d", k)
		}
		total += k
		if k == 0 {
			break
		}
	}
	if total != n {
		t.Fatalf("sealed %d, want %d", total, n)
	}
	n = 2 + len(fixtureDetails)
	recs := Records(t, st)
	if len(recs) != n {
		t.Fatalf("%d records, want %d", len(recs), n)
	}
	_, timeline := mustIncident(t, st, ids[0])
	byEvent := map[int64]incident.Event{}
	for _, e := range timeline {
		byEvent[e.ID] = e
	}
	prev := audit.GenesisHash
	var lastEvent int64
	for i, r := range recs {
		if r.Seq != int64(i+1) || r.PrevHash != prev || r.Hash != audit.Hash(&r) {
			t.Fatalf("record %d: seq %d prev %s hash %s (recomputed %s), want seq %d prev %s", i, r.Seq, r.PrevHash,
				r.Hash, audit.Hash(&r), i+1, prev)
		}
		if r.EventID <= lastEvent {
			t.Errorf("record %d: event %d after event %d: not in id order", r.Seq, r.EventID, lastEvent)
		}
		lastEvent, prev = r.EventID, r.Hash
		if r.IncidentID == ids[1] {
			if r.AlertName != "OtherAlert" || r.Namespace != "ops" || r.Fingerprint != "a0d17000000000a2" || r.Type != "received" || r.Outcome != "recorded" {
				t.Errorf("record %d of the second incident: %+v", r.Seq, r)
			}
			continue
		}
		if r.IncidentID != ids[0] || r.AlertName != "TestAlert" || r.Namespace != "default" || r.Fingerprint != "a0d17000000000a1" {
			t.Errorf("record %d: incident columns %q %q %q %q", r.Seq, r.IncidentID, r.AlertName, r.Namespace, r.Fingerprint)
		}
		e, ok := byEvent[r.EventID]
		if !ok {
			t.Fatalf("record %d: event %d is not on the incident's timeline", r.Seq, r.EventID)
		}
		if !r.Time.Equal(e.Time) || r.Type != e.Type || r.Actor != e.Actor || r.Reason != e.Reason || r.CorrelationID != e.CorrelationID {
			t.Errorf("record %d = %+v, event %+v", r.Seq, r, e)
		}
		for _, f := range fixtureDetails {
			if f.typ != r.Type {
				continue
			}
			got := audit.Derived{Target: r.Target, Priority: r.Priority, Action: r.Action, Mode: r.Mode, Outcome: r.Outcome}
			if got != f.want {
				t.Errorf("record %d (%s): derived %+v, want %+v", r.Seq, r.Type, got, f.want)
			}
			var a, b any
			if json.Unmarshal(r.Details, &a) != nil || json.Unmarshal([]byte(f.details), &b) != nil || fmt.Sprint(a) != fmt.Sprint(b) {
				t.Errorf("record %d: details %s, want %s", r.Seq, r.Details, f.details)
			}
		}
	}
	if k, err := st.SealAudit(ctx, 100); err != nil || k != 0 {
		t.Errorf("sealing again: %d, %v; want 0", k, err)
	}
	state, err := st.AuditState(ctx)
	if err != nil || state.Unsealed != 0 || state.HeadSeq != int64(n) || state.HeadHash != prev {
		t.Errorf("after sealing: %+v, %v; want head %d %s", state, err, n, prev)
	}
	if rep := mustVerify(t, st); !rep.Valid || rep.Records != int64(n) || rep.LastSeq != int64(n) {
		t.Errorf("Verify: %+v", rep)
	}
	// Later events continue the chain.
	if err := st.AppendEvents(ctx, incident.Event{IncidentID: ids[1], Type: "verified"}); err != nil {
		t.Fatal(err)
	}
	if got := SealAll(t, st); got != s.pending(1) {
		t.Fatalf("sealed %d, want %d", got, s.pending(1))
	}
	recs = Records(t, st)
	if last := recs[len(recs)-1]; last.Seq != int64(n+1) || last.PrevHash != prev || last.Outcome != "verified" || last.Actor != incident.ActorService {
		t.Errorf("next record: %+v", last)
	}
	if rep := mustVerify(t, st); !rep.Valid {
		t.Errorf("Verify: %+v", rep)
	}
}

func (s suite) auditServiceLevel(t *testing.T) {
	clock := NewClock(t0)
	st := s.open(t, store.WithClock(clock.Now))
	ids := auditFixture(t, st)
	if err := st.AppendAudit(ctx, incident.Event{IncidentID: ids[0], Type: "paused"}); err == nil {
		t.Error("AppendAudit with an IncidentID: no error")
	}
	if err := st.AppendAudit(ctx, incident.Event{Type: "paused", Details: json.RawMessage(`{`)}); err == nil {
		t.Error("AppendAudit with invalid details: no error")
	}
	clock.Advance(time.Minute)
	pause := incident.Event{Type: "paused", Actor: "alice", Reason: "change freeze", CorrelationID: "corr-p",
		Details: json.RawMessage(`{"by":"alice"}`)}
	window := incident.Event{Type: "window-added", Details: json.RawMessage(`{"id":"w1","namespaces":["shop"]}`)}
	if err := st.AppendAudit(ctx, pause, window); err != nil {
		t.Fatal(err)
	}
	SealAll(t, st)
	recs := Records(t, st)
	if len(recs) != 2+2+len(fixtureDetails) {
		t.Fatalf("%d records", len(recs))
	}
	// Service-level records enter the chain at once; the events follow
	// when sealed (or precede them, when sealed as they were written).
	p, w := recs[0], recs[1]
	if s.b.SealsOnWrite {
		p, w = recs[len(recs)-2], recs[len(recs)-1]
	}
	if p.EventID != 0 || p.IncidentID != "" || p.Type != "paused" || p.Actor != "alice" || p.Reason != "change freeze" ||
		p.CorrelationID != "corr-p" || p.Outcome != "paused" || !p.Time.Equal(store.UTC(clock.Now())) {
		t.Errorf("pause record: %+v", p)
	}
	if w.Actor != incident.ActorService || w.Outcome != "window-added" || string(w.Details) != `{"id":"w1","namespaces":["shop"]}` {
		t.Errorf("window record: %+v (details %s)", w, w.Details)
	}
	if rep := mustVerify(t, st); !rep.Valid || rep.Records != int64(len(recs)) {
		t.Errorf("Verify: %+v", rep)
	}
}

// tamper runs stmts on a raw connection, with the audit tables' triggers
// dropped first, as someone with write access to the database could.
func (s suite) tamper(t *testing.T, dsn string, stmts ...string) {
	t.Helper()
	if s.b.Exec == nil {
		t.Skip("backend has no raw Exec")
	}
	for _, q := range append(append([]string(nil), s.b.DropAuditTriggers...), stmts...) {
		if err := s.b.Exec(t, dsn, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// sealedChain makes a store with n sealed records (one incident each).
func (s suite) sealedChain(t *testing.T, n int) (store.Store, string) {
	t.Helper()
	dsn := s.b.NewDSN(t)
	st := s.b.Open(t, dsn)
	t.Cleanup(func() { st.Close() })
	alerts := make([]incident.Alert, n)
	for i := range alerts {
		alerts[i] = Alert(fmt.Sprintf("7a3e%012x", i), incident.StatusFiring, t0)
	}
	mustIngest(t, st, Notification(alerts...))
	if got := SealAll(t, st); got != s.pending(n) {
		t.Fatalf("sealed %d, want %d", got, s.pending(n))
	}
	if state, err := st.AuditState(ctx); err != nil || state.HeadSeq != int64(n) || state.Unsealed != 0 {
		t.Fatalf("audit state: %+v, %v; want %d records", state, err, n)
	}
	return st, dsn
}

// pending is how many of n events just written SealAudit still finds.
func (s suite) pending(n int) int {
	if s.b.SealsOnWrite {
		return 0
	}
	return n
}

// editRecord returns the statement that rewrites record seq's stored
// canonical encoding (the column body) after edit, and with rehash also its
// hash to match.
func editRecord(t *testing.T, st store.Store, seq int64, rehash bool, edit func(*audit.Record)) string {
	t.Helper()
	for _, r := range Records(t, st) {
		if r.Seq == seq {
			edit(&r)
			q := fmt.Sprintf(`UPDATE audit SET body = '%s'`, strings.ReplaceAll(string(audit.Canonical(&r)), "'", "''"))
			if rehash {
				q += fmt.Sprintf(`, hash = '%s'`, audit.Hash(&r))
			}
			return q + fmt.Sprintf(` WHERE seq = %d`, seq)
		}
	}
	t.Fatalf("no record %d", seq)
	return ""
}

func (s suite) auditTamper(t *testing.T) {
	rehash := func(t *testing.T, st store.Store, seq int64, reason string) string {
		return editRecord(t, st, seq, true, func(r *audit.Record) { r.Reason = reason })
	}
	cases := []struct {
		name    string
		stmts   func(t *testing.T, st store.Store) []string
		seq     int64
		problem string
	}{
		{"edit a field", func(t *testing.T, st store.Store) []string {
			return []string{editRecord(t, st, 5, false, func(r *audit.Record) { r.Reason = "nothing to see" })}
		}, 5, audit.ProblemHash},
		{"edit the first record", func(t *testing.T, st store.Store) []string {
			return []string{editRecord(t, st, 1, false, func(r *audit.Record) { r.Actor = "mallory" })}
		}, 1, audit.ProblemHash},
		{"edit prev_hash", func(t *testing.T, st store.Store) []string {
			return []string{editRecord(t, st, 6, false, func(r *audit.Record) { r.PrevHash = audit.GenesisHash })}
		}, 6, audit.ProblemHash},
		{"edit the details", func(t *testing.T, st store.Store) []string {
			return []string{editRecord(t, st, 3, false, func(r *audit.Record) { r.Details = json.RawMessage(`{"x":1}`) })}
		}, 3, audit.ProblemHash},
		{"edit the alertname column", func(*testing.T, store.Store) []string {
			return []string{`UPDATE audit SET alertname = 'Other' WHERE seq = 5`}
		}, 5, audit.ProblemHash},
		{"garble the body", func(*testing.T, store.Store) []string {
			return []string{`UPDATE audit SET body = 'remediator' WHERE seq = 2`}
		}, 2, audit.ProblemHash},
		{"edit and re-hash", func(t *testing.T, st store.Store) []string {
			return []string{rehash(t, st, 4, "rewritten")}
		}, 5, audit.ProblemPrevHash},
		{"delete one", func(*testing.T, store.Store) []string {
			return []string{`DELETE FROM audit WHERE seq = 5`}
		}, 5, audit.ProblemMissing},
		{"delete several", func(*testing.T, store.Store) []string {
			return []string{`DELETE FROM audit WHERE seq >= 3 AND seq <= 6`}
		}, 3, audit.ProblemMissing},
		{"swap two", func(*testing.T, store.Store) []string {
			return []string{`UPDATE audit SET seq = -5 WHERE seq = 5`, `UPDATE audit SET seq = 5 WHERE seq = 8`,
				`UPDATE audit SET seq = 8 WHERE seq = -5`}
		}, 5, audit.ProblemReordered},
		{"move one", func(*testing.T, store.Store) []string {
			return []string{`UPDATE audit SET seq = 100 WHERE seq = 4`}
		}, 4, audit.ProblemReordered},
		{"delete the last", func(*testing.T, store.Store) []string {
			return []string{`DELETE FROM audit WHERE seq = 10`}
		}, 10, audit.ProblemMissing},
		{"edit and re-hash the last", func(t *testing.T, st store.Store) []string {
			return []string{rehash(t, st, 10, "rewritten")}
		}, 10, audit.ProblemHash},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, dsn := s.sealedChain(t, 10)
			if rep := mustVerify(t, st); !rep.Valid {
				t.Fatalf("before tampering: %+v", rep)
			}
			s.tamper(t, dsn, tc.stmts(t, st)...)
			rep := mustVerify(t, st)
			if rep.Valid || rep.Break == nil || rep.Break.Seq != tc.seq || rep.Break.Problem != tc.problem {
				t.Fatalf("Verify after %s: %+v (break %+v), want seq %d %s", tc.name, rep, rep.Break, tc.seq, tc.problem)
			}
			if rep.Records != tc.seq-1 {
				t.Errorf("%d records valid before the break, want %d", rep.Records, tc.seq-1)
			}
			t.Log(rep)
		})
	}
	t.Run("triggers refuse", func(t *testing.T) {
		if s.b.Exec == nil {
			t.Skip("backend has no raw Exec")
		}
		st, dsn := s.sealedChain(t, 3)
		for _, q := range []string{`UPDATE audit SET hash = 'x' WHERE seq = 2`, `UPDATE audit SET body = 'x' WHERE seq = 2`,
			`DELETE FROM audit WHERE seq = 1`} {
			if err := s.b.Exec(t, dsn, q); err == nil {
				t.Errorf("%s: no error", q)
			}
		}
		if rep := mustVerify(t, st); !rep.Valid {
			t.Errorf("after refused changes: %+v", rep)
		}
	})
}

func (s suite) auditCleanup(t *testing.T) {
	clock := NewClock(t0)
	dsn := s.b.NewDSN(t)
	st := s.b.Open(t, dsn, store.WithClock(clock.Now))
	defer st.Close()
	old := Notification(Alert("c1ea000000000001", incident.StatusFiring, t0), Alert("c1ea000000000002", incident.StatusFiring, t0),
		Alert("c1ea000000000003", incident.StatusFiring, t0))
	mustIngest(t, st, old)
	clock.Advance(10 * 24 * time.Hour)
	mustIngest(t, st, Notification(Alert("c1ea000000000004", incident.StatusFiring, t0), Alert("c1ea000000000005", incident.StatusFiring, t0)))
	Settle(t, st)
	before := Records(t, st)
	if len(before) != 5 {
		t.Fatalf("%d records", len(before))
	}
	statsBefore, err := st.AuditStats(ctx)
	if err != nil {
		t.Fatal(err)
	}

	cutoff := t0.Add(5 * 24 * time.Hour)
	res, err := st.CleanupAudit(ctx, cutoff, "tester", "corr-cleanup")
	if err != nil {
		t.Fatal(err)
	}
	if res.Deleted != 3 || res.Checkpoint == nil || res.Checkpoint.Seq != 3 || res.Checkpoint.Hash != before[2].Hash ||
		res.Checkpoint.Deleted != 3 || !res.Checkpoint.Before.Equal(cutoff) || res.Checkpoint.Actor != "tester" {
		t.Fatalf("cleanup: %+v (checkpoint %+v)", res, res.Checkpoint)
	}
	after := Records(t, st)
	if len(after) != 3 || after[0].Seq != 4 || after[0].PrevHash != before[2].Hash {
		t.Fatalf("after cleanup: %+v", after)
	}
	c := after[2]
	var det struct {
		Deleted    int64 `json:"deleted"`
		ThroughSeq int64 `json:"throughSeq"`
	}
	if c.Type != audit.TypeCleanup || c.Actor != "tester" || c.CorrelationID != "corr-cleanup" || c.EventID != 0 ||
		json.Unmarshal(c.Details, &det) != nil || det.Deleted != 3 || det.ThroughSeq != 3 {
		t.Errorf("cleanup record: %+v %s", c, c.Details)
	}
	rep := mustVerify(t, st)
	if !rep.Valid || rep.FromSeq != 4 || rep.Records != 3 || rep.Checkpoint == nil || rep.Checkpoint.Seq != 3 {
		t.Fatalf("Verify after cleanup: %+v", rep)
	}
	stats, err := st.AuditStats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if stats.Records != 3 || stats.ByType["received"] != 2 || stats.ByType[audit.TypeCleanup] != 1 ||
		stats.ByAlertName["TestAlert"] != 2 || stats.ByAlertName[""] != 1 || stats.Bytes >= statsBefore.Bytes ||
		stats.Oldest == nil || !stats.Oldest.Equal(store.UTC(clock.Now())) {
		t.Errorf("stats after cleanup: %+v", stats)
	}
	// The incidents keep their timelines.
	for _, a := range old.Alerts {
		list, err := st.Incidents(ctx, store.IncidentFilter{})
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range list {
			if in.Fingerprint == a.Fingerprint {
				if _, evs := mustIncident(t, st, in.ID); len(evs) != 1 {
					t.Errorf("incident %s lost its timeline: %+v", in.ID, evs)
				}
			}
		}
	}
	// The events of deleted records are not sealed again.
	if k := SealAll(t, st); k != 0 {
		t.Errorf("sealed %d after cleanup, want 0", k)
	}
	// Nothing more to delete: no checkpoint, no record.
	if res, err := st.CleanupAudit(ctx, cutoff, "tester", ""); err != nil || res.Deleted != 0 || res.Checkpoint != nil {
		t.Errorf("second cleanup: %+v, %v", res, err)
	}
	if n := len(Records(t, st)); n != 3 {
		t.Errorf("%d records after an empty cleanup, want 3", n)
	}
	// Everything older than a later cutoff, the cleanup record included.
	clock.Advance(time.Hour)
	res, err = st.CleanupAudit(ctx, store.UTC(clock.Now()), "tester", "")
	if err != nil || res.Deleted != 3 || res.Checkpoint.Seq != 6 {
		t.Fatalf("cleanup of all: %+v, %v", res, err)
	}
	if rep := mustVerify(t, st); !rep.Valid || rep.FromSeq != 7 || rep.Records != 1 {
		t.Fatalf("Verify after cleaning all: %+v", rep)
	}
	// Tampering after a cleanup is detected.
	if s.b.Exec == nil {
		return
	}
	for _, q := range []string{`DELETE FROM audit WHERE seq = 7`, `UPDATE audit_checkpoints SET seq = 7`, `DELETE FROM audit_checkpoints`} {
		if err := s.b.Exec(t, dsn, q); err == nil {
			t.Errorf("%s: no error", q)
		}
	}
	s.tamper(t, dsn, editRecord(t, st, 7, false, func(r *audit.Record) { r.Actor = "mallory" }))
	if rep := mustVerify(t, st); rep.Valid || rep.Break.Seq != 7 || rep.Break.Problem != audit.ProblemHash {
		t.Errorf("Verify after tampering: %+v %+v", rep, rep.Break)
	}
}

func (s suite) auditStats(t *testing.T) {
	clock := NewClock(t0)
	st := s.open(t, store.WithClock(clock.Now))
	if stats, err := st.AuditStats(ctx); err != nil || stats.Records != 0 || stats.Oldest != nil || len(stats.ByType) != 0 {
		t.Fatalf("empty stats: %+v, %v", stats, err)
	}
	auditFixture(t, st)
	clock.Advance(time.Hour)
	if err := st.AppendAudit(ctx, incident.Event{Type: "paused"}); err != nil {
		t.Fatal(err)
	}
	SealAll(t, st)
	recs := Records(t, st)
	want := audit.NewStats()
	var bytes int64
	for _, r := range recs {
		bytes += int64(len(audit.Canonical(&r)))
		want.ByType[r.Type]++
		want.ByAction[r.Action]++
		want.ByOutcome[r.Outcome]++
		want.ByAlertName[r.AlertName]++
		want.ByPriority[r.Priority]++
	}
	got, err := st.AuditStats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got.Records != int64(len(recs)) || got.Bytes != bytes || got.HeadSeq != int64(len(recs)) {
		t.Errorf("records %d bytes %d head %d; want %d %d", got.Records, got.Bytes, got.HeadSeq, len(recs), bytes)
	}
	for name, m := range map[string][2]map[string]int64{"type": {got.ByType, want.ByType}, "action": {got.ByAction, want.ByAction},
		"outcome": {got.ByOutcome, want.ByOutcome}, "alertname": {got.ByAlertName, want.ByAlertName},
		"priority": {got.ByPriority, want.ByPriority}} {
		if fmt.Sprint(m[0]) != fmt.Sprint(m[1]) {
			t.Errorf("by %s: %v, want %v", name, m[0], m[1])
		}
	}
	if got.ByAction["rollback"] != 1 || got.ByPriority["P0"] != 1 || got.ByOutcome["recorded"] != 2 {
		t.Errorf("spot checks: %+v", got)
	}
	if got.Oldest == nil || !got.Oldest.Equal(t0) || got.Newest == nil || !got.Newest.Equal(t0.Add(time.Hour)) {
		t.Errorf("oldest %v newest %v", got.Oldest, got.Newest)
	}
}

func (s suite) auditScanFilter(t *testing.T) {
	clock := NewClock(t0)
	st := s.open(t, store.WithClock(clock.Now))
	day := func(d int) time.Time { return time.Date(2026, 3, 1+d, 0, 0, 0, 0, time.UTC) }
	var evs []incident.Event
	res := mustIngest(t, st, Notification(Alert("f11e000000000001", incident.StatusFiring, t0),
		Alert("f11e000000000002", incident.StatusFiring, t0, "alertname", "Other")))
	a, b := res.Alerts[0].IncidentID, res.Alerts[1].IncidentID
	// Appended out of time order: export is by time, the chain by seq.
	for _, e := range []struct {
		inc string
		at  time.Time
	}{{a, day(2).Add(time.Hour)}, {b, day(1)}, {a, day(1).Add(-time.Microsecond)}, {a, day(3)}, {b, day(2).Add(-time.Microsecond)}} {
		evs = append(evs, incident.Event{IncidentID: e.inc, Time: e.at, Type: "x"})
	}
	if err := st.AppendEvents(ctx, evs...); err != nil {
		t.Fatal(err)
	}
	SealAll(t, st)
	scan := func(f audit.Filter) []string {
		var out []string
		if err := st.ScanAudit(ctx, f, func(r *audit.Record) error {
			out = append(out, r.AlertName+"@"+r.Time.Format(audit.TimeFormat))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	ts := func(t time.Time) string { return t.Format(audit.TimeFormat) }
	cases := []struct {
		name string
		f    audit.Filter
		want []string
	}{
		{"day 1 to 2 by time", audit.Filter{ByTime: true, Since: day(1), Until: day(2)},
			[]string{"Other@" + ts(day(1)), "Other@" + ts(day(2).Add(-time.Microsecond))}},
		{"from day 1", audit.Filter{ByTime: true, Since: day(1)},
			[]string{"Other@" + ts(day(1)), "Other@" + ts(day(2).Add(-time.Microsecond)), "TestAlert@" + ts(day(2).Add(time.Hour)), "TestAlert@" + ts(day(3))}},
		{"one alertname", audit.Filter{ByTime: true, Since: day(0), AlertName: "TestAlert"},
			[]string{"TestAlert@" + ts(t0), "TestAlert@" + ts(day(1).Add(-time.Microsecond)), "TestAlert@" + ts(day(2).Add(time.Hour)), "TestAlert@" + ts(day(3))}},
		{"by seq after 3", audit.Filter{AfterSeq: 3},
			[]string{"Other@" + ts(day(1)), "TestAlert@" + ts(day(1).Add(-time.Microsecond)), "TestAlert@" + ts(day(3)), "Other@" + ts(day(2).Add(-time.Microsecond))}},
		{"nothing", audit.Filter{ByTime: true, Since: day(10)}, nil},
	}
	for _, tc := range cases {
		if got := scan(tc.f); fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("%s: %v\nwant %v", tc.name, got, tc.want)
		}
	}
	stop := errors.New("enough")
	n := 0
	if err := st.ScanAudit(ctx, audit.Filter{}, func(*audit.Record) error { n++; return stop }); !errors.Is(err, stop) || n != 1 {
		t.Errorf("fn error: %v after %d records", err, n)
	}
}

func (s suite) auditScanCancel(t *testing.T) {
	st := s.open(t, store.WithMaxConns(2))
	alerts := make([]incident.Alert, 3000)
	for i := range alerts {
		alerts[i] = Alert(fmt.Sprintf("cafe%012x", i), incident.StatusFiring, t0)
	}
	mustIngest(t, st, Notification(alerts...))
	SealAll(t, st)
	// Warm up the pools, then count goroutines.
	if err := st.ScanAudit(ctx, audit.Filter{}, func(*audit.Record) error { return nil }); err != nil {
		t.Fatal(err)
	}
	base := runtime.NumGoroutine()
	for i := range 10 {
		c, cancel := context.WithCancel(ctx)
		n := 0
		err := st.ScanAudit(c, audit.Filter{ByTime: i%2 == 0}, func(*audit.Record) error {
			n++
			if n == 10 {
				cancel()
			}
			return nil
		})
		cancel()
		if err == nil || n >= len(alerts) {
			t.Fatalf("scan %d: %v after %d records; want it stopped by the cancel", i, err, n)
		}
	}
	// Had a cancelled scan kept its connection, the pool (2) would be dry.
	c, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	n := 0
	if err := st.ScanAudit(c, audit.Filter{}, func(*audit.Record) error { n++; return nil }); err != nil || n != len(alerts) {
		t.Fatalf("scan after cancelled scans: %d records, %v", n, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > base+2 {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("goroutines: %d, were %d\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// auditConcurrent: two stores on one database seal while four writers
// ingest and append; every event ends in the chain exactly once and the
// chain verifies.
func (s suite) auditConcurrent(t *testing.T) {
	dsn := s.b.NewDSN(t)
	a := s.b.Open(t, dsn)
	defer a.Close()
	b := s.b.Open(t, dsn)
	defer b.Close()
	stop := make(chan struct{})
	var sealers, writers sync.WaitGroup
	errs := make(chan error, 16)
	for _, st := range []store.Store{a, b} {
		sealers.Add(1)
		go func() {
			defer sealers.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := st.SealAudit(ctx, 7); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for w := range 4 {
		st := []store.Store{a, b}[w%2]
		writers.Add(1)
		go func() {
			defer writers.Done()
			for i := range 15 {
				r, err := st.Ingest(ctx, Notification(Alert(fmt.Sprintf("c0c0%04x%08x", w, i), incident.StatusFiring, t0)))
				if err != nil {
					errs <- err
					return
				}
				if err := st.AppendEvents(ctx, incident.Event{IncidentID: r.Alerts[0].IncidentID, Type: "diagnosed"}); err != nil {
					errs <- err
					return
				}
				if i%5 == 0 {
					if err := st.AppendAudit(ctx, incident.Event{Type: "paused"}); err != nil {
						errs <- err
						return
					}
				}
			}
		}()
	}
	writers.Wait()
	close(stop)
	sealers.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	Settle(t, a)
	recs := Records(t, a)
	seen := map[int64]int{}
	service := 0
	for _, r := range recs {
		if r.EventID == 0 {
			service++
			continue
		}
		seen[r.EventID]++
	}
	if service != 4*3 || len(seen) != 4*15*2 {
		t.Errorf("%d service-level records, %d events sealed; want 12 and 120", service, len(seen))
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("event %d sealed %d times", id, n)
		}
	}
	if rep := mustVerify(t, b); !rep.Valid || rep.Records != int64(len(recs)) {
		t.Errorf("Verify: %+v %+v", rep, rep.Break)
	}
	stats, err := b.AuditStats(ctx)
	if err != nil || stats.Records != int64(len(recs)) || stats.ByType["paused"] != 12 {
		t.Errorf("stats: %+v, %v", stats, err)
	}
}
