package sqlite_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/remediator/remediator/internal/incident"
	"github.com/remediator/remediator/internal/store"
	"github.com/remediator/remediator/internal/store/audit"
	"github.com/remediator/remediator/internal/store/sqlite"
	"github.com/remediator/remediator/internal/store/storebench"
	"github.com/remediator/remediator/internal/store/storetest"
)

func backend() storetest.Backend {
	return storetest.Backend{
		NewDSN: func(t *testing.T) string { return filepath.Join(t.TempDir(), "sub", "remediator.db") },
		Open: func(t *testing.T, dsn string, opts ...store.Option) store.Store {
			t.Helper()
			s, err := sqlite.Open(context.Background(), dsn, opts...)
			if err != nil {
				t.Fatalf("open %s: %v", dsn, err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		},
		Exec: func(t *testing.T, dsn, query string) error {
			db, err := sql.Open("sqlite", "file:"+dsn+"?_pragma=busy_timeout(10000)")
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			_, err = db.Exec(query)
			return err
		},
		DropAuditTriggers: []string{`DROP TRIGGER audit_no_update`, `DROP TRIGGER audit_no_delete`},
		SealsOnWrite:      audit.SealingEnabled,
	}
}

func TestStore(t *testing.T) { storetest.Run(t, backend()) }

func TestMigrationsIdempotent(t *testing.T) {
	b := backend()
	dsn := b.NewDSN(t)
	for i := range 3 {
		s := b.Open(t, dsn)
		if err := s.Close(); err != nil {
			t.Fatalf("close %d: %v", i, err)
		}
	}
}

func openBench(b *testing.B) store.Store {
	s, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

func BenchmarkIngest10Alerts(b *testing.B) { storebench.Ingest10Alerts(b, openBench(b)) }

func BenchmarkIngest10000Alerts(b *testing.B) { storebench.IngestLarge(b, openBench(b), 10000) }

// TestOneLeasedJobPerIncident checks the invariant behind ClaimJobs: the
// database itself refuses a second leased job of one incident.
func TestOneLeasedJobPerIncident(t *testing.T) {
	b := backend()
	dsn := b.NewDSN(t)
	s := b.Open(t, dsn)
	r, err := s.Ingest(context.Background(), storetest.Notification(storetest.Alert("0ne1ea5e00000001", "firing", time.Now())))
	if err != nil {
		t.Fatal(err)
	}
	id := r.Alerts[0].IncidentID
	if err := s.Enqueue(context.Background(), store.NewJob{IncidentID: id, Kind: "verify"}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	db, err := sql.Open("sqlite", "file:"+dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_, err = db.Exec(`UPDATE jobs SET state = 'leased', lease_owner = 'x', lease_until = 0 WHERE incident_id = ?`, id)
	if err == nil || !strings.Contains(err.Error(), "UNIQUE constraint failed: jobs.incident_id") {
		t.Fatalf("leasing two jobs of one incident: %v, want a unique constraint violation", err)
	}
}

// TestUpgradeFrom0001 migrates a database that holds data at schema
// version 1: its jobs keep working (with an empty Ref) and the new state
// starts empty.
func TestUpgradeFrom0001(t *testing.T) {
	dsn := filepath.Join(t.TempDir(), "old.db")
	v1, err := os.ReadFile("migrations/0001_init.sql")
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+dsn+"?_pragma=foreign_keys(1)")
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`,
		string(v1),
		`INSERT INTO schema_migrations VALUES (1, '0001_init', 0)`,
		`INSERT INTO incidents (id, fingerprint, starts_at, status, first_seen, last_seen) VALUES ('i1', 'f1', 1, 'firing', 1, 1)`,
		`INSERT INTO jobs (incident_id, kind, state, attempts, lease_owner, lease_until, not_before, created_at)
			VALUES ('i1', 'firing', 'leased', 1, 'old', 1, 1, 1), ('i1', 'resolved', 'pending', 0, NULL, NULL, 1, 1)`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()
	s := backend().Open(t, dsn)
	ctx := context.Background()
	jobs, err := s.ClaimJobs(ctx, "new", 10, time.Minute)
	if err != nil || len(jobs) != 1 || jobs[0].Kind != "firing" || jobs[0].Ref != "" || jobs[0].Attempts != 2 {
		t.Fatalf("claim after upgrade: %+v, %v", jobs, err)
	}
	if err := s.CompleteJobWith(ctx, "new", jobs[0].ID, []store.NewJob{{IncidentID: "i1", Kind: "verify", Ref: "e1"}}); err != nil {
		t.Fatal(err)
	}
	if jobs, err := s.ClaimJobs(ctx, "new", 10, time.Minute); err != nil || len(jobs) != 1 || jobs[0].Kind != "resolved" {
		t.Fatalf("second claim: %+v, %v", jobs, err)
	}
	if p, err := s.Pause(ctx); err != nil || p.Paused {
		t.Errorf("pause after upgrade: %+v, %v", p, err)
	}
	if l, err := s.Executions(ctx, store.ExecutionFilter{}); err != nil || len(l) != 0 {
		t.Errorf("executions after upgrade: %+v, %v", l, err)
	}
}

// BenchmarkIngestAtRate: intake latency at 1,000 notifications/s of 10 new
// alerts, without and with the audit sealer (docs/benchmarks.md).
func BenchmarkIngestAtRate(b *testing.B) {
	for _, seal := range []bool{false, true} {
		b.Run(fmt.Sprintf("seal=%v", seal), func(b *testing.B) {
			s, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "bench.db"))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { s.Close() })
			storebench.IngestAtRate(b, s, 1000, 5*time.Second, seal)
		})
	}
}

// TestAuditSealInline: on SQLite every write transaction that appends
// events seals them, and with them at most inlineSlack (64) older unsealed
// events (a backlog, e.g. written by a build without sealing); SealAudit
// seals the rest. Order, gap-free seq and the chain hold throughout.
func TestAuditSealInline(t *testing.T) {
	if !audit.SealingEnabled {
		t.Skip("built with remediator_noseal")
	}
	ctx := context.Background()
	b := backend()
	dsn := b.NewDSN(t)
	st := b.Open(t, dsn)
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	res, err := st.Ingest(ctx, storetest.Notification(storetest.Alert("5ea1000000000001", incident.StatusFiring, t0)))
	if err != nil {
		t.Fatal(err)
	}
	state := func() audit.State {
		t.Helper()
		s, err := st.AuditState(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if s := state(); s.HeadSeq != 1 || s.Unsealed != 0 {
		t.Fatalf("after ingest: %+v, want 1 record, none unsealed", s)
	}
	// A backlog of 100 events written around the store.
	inc := res.Alerts[0].IncidentID
	if err := b.Exec(t, dsn, `WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 100)
		INSERT INTO events (incident_id, occurred_at, type, actor, details)
		SELECT '`+inc+`', 1772359200000000 + x, 'diagnosed', 'worker-1', '{"x":' || x || '}' FROM n`); err != nil {
		t.Fatal(err)
	}
	if s := state(); s.Unsealed != 100 {
		t.Fatalf("after the backlog: %+v, want 100 unsealed", s)
	}
	if err := st.AppendEvents(ctx, incident.Event{IncidentID: inc, Type: "verified"}); err != nil {
		t.Fatal(err)
	}
	// 1 + 64 sealed inline: the oldest first, so the new event waits.
	if s := state(); s.HeadSeq != 66 || s.Unsealed != 36 {
		t.Fatalf("after one more event: %+v, want 66 records and 36 unsealed", s)
	}
	if n := storetest.SealAll(t, st); n != 36 {
		t.Fatalf("SealAudit sealed %d, want 36", n)
	}
	recs := storetest.Records(t, st)
	for i, r := range recs {
		if r.Seq != int64(i+1) || (i > 0 && r.EventID <= recs[i-1].EventID) {
			t.Fatalf("record %d: seq %d event %d, not in order", i, r.Seq, r.EventID)
		}
	}
	if last := recs[len(recs)-1]; len(recs) != 102 || last.Type != "verified" {
		t.Fatalf("%d records, last %+v", len(recs), last)
	}
	if rep, err := audit.Verify(ctx, st); err != nil || !rep.Valid || rep.Records != 102 {
		t.Fatalf("verify: %+v, %v", rep, err)
	}
}

// TestAuditSealInlineFailureSparesIntake: when sealing fails inside a write
// transaction, the transaction's own writes still commit (the seal's are
// rolled back to its savepoint); the events stay unsealed, SealAudit
// reports the error, and once the cause is gone they are sealed in order.
func TestAuditSealInlineFailureSparesIntake(t *testing.T) {
	if !audit.SealingEnabled {
		t.Skip("built with remediator_noseal")
	}
	ctx := context.Background()
	b := backend()
	dsn := b.NewDSN(t)
	st := b.Open(t, dsn)
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	if _, err := st.Ingest(ctx, storetest.Notification(storetest.Alert("5ea1000000000001", incident.StatusFiring, t0))); err != nil {
		t.Fatal(err)
	}
	// A head that points before record 1: appending seq 1 again conflicts.
	if err := b.Exec(t, dsn, `UPDATE audit_state SET head_seq = 0`); err != nil {
		t.Fatal(err)
	}
	res, err := st.Ingest(ctx, storetest.Notification(storetest.Alert("5ea1000000000002", incident.StatusFiring, t0)))
	if err != nil || res.Count(incident.OutcomeNew) != 1 {
		t.Fatalf("ingest with a broken chain head: %+v, %v; want it stored", res, err)
	}
	if _, _, err := st.Incident(ctx, res.Alerts[0].IncidentID); err != nil {
		t.Fatal(err)
	}
	if s, err := st.AuditState(ctx); err != nil || s.Unsealed != 1 {
		t.Fatalf("audit state: %+v, %v; want the new event unsealed", s, err)
	}
	if _, err := st.SealAudit(ctx, 100); err == nil {
		t.Fatal("SealAudit with a broken chain head: no error")
	}
	if err := b.Exec(t, dsn, `UPDATE audit_state SET head_seq = 1`); err != nil {
		t.Fatal(err)
	}
	if n := storetest.SealAll(t, st); n != 1 {
		t.Fatalf("sealed %d, want 1", n)
	}
	if rep, err := audit.Verify(ctx, st); err != nil || !rep.Valid || rep.Records != 2 {
		t.Fatalf("verify: %+v, %v", rep, err)
	}
}

// TestAuditSealIngestRecords: intake seals its events without reading them
// back (sealIngest builds the records from what it wrote); every record must
// still be exactly its event and incident row, for new, duplicate and
// resolved alerts, several notifications per group commit, and an episode
// that recurs inside one batch.
func TestAuditSealIngestRecords(t *testing.T) {
	ctx := context.Background()
	b := backend()
	st := b.Open(t, b.NewDSN(t))
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 123456789, time.UTC)
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fp := fmt.Sprintf("5ea2%012x", i%7)
			status := incident.StatusFiring
			if i%5 == 4 {
				status = incident.StatusResolved
			}
			n := storetest.Notification(storetest.Alert(fp, status, t0, "alertname", fmt.Sprintf("A%d", i%3), "namespace", fmt.Sprintf("ns%d", i%7)),
				storetest.Alert(fmt.Sprintf("5ea3%012x", i), incident.StatusFiring, t0))
			n.ReceivedAt = t0.Add(time.Duration(i) * time.Millisecond)
			if _, err := st.Ingest(ctx, n); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	storetest.SealAll(t, st)
	recs := storetest.Records(t, st)
	if len(recs) != 80 {
		t.Fatalf("%d records, want 80", len(recs))
	}
	events := map[int64]incident.Event{}
	incidents := map[string]incident.Incident{}
	for _, r := range recs {
		if _, ok := incidents[r.IncidentID]; ok {
			continue
		}
		in, evs, err := st.Incident(ctx, r.IncidentID)
		if err != nil {
			t.Fatal(err)
		}
		incidents[in.ID] = in
		for _, e := range evs {
			events[e.ID] = e
		}
	}
	for i, r := range recs {
		e, ok := events[r.EventID]
		in := incidents[r.IncidentID]
		want := audit.EventRecord(e.ID, e.Time, e.IncidentID, e.CorrelationID, in.AlertName, in.Fingerprint, in.Namespace,
			e.Type, e.Actor, e.Reason, e.Details)
		want.Seq, want.PrevHash, want.Hash = r.Seq, r.PrevHash, r.Hash
		if !ok || r.Seq != int64(i+1) || fmt.Sprintf("%+v", r) != fmt.Sprintf("%+v", want) {
			t.Errorf("record %d:\n got %+v\nwant %+v", r.Seq, r, want)
		}
		if i > 0 && r.EventID <= recs[i-1].EventID {
			t.Errorf("record %d: event %d after %d", r.Seq, r.EventID, recs[i-1].EventID)
		}
	}
	if rep, err := audit.Verify(ctx, st); err != nil || !rep.Valid {
		t.Fatalf("verify: %+v, %v", rep, err)
	}
}

// BenchmarkIngestAndSeal10000: intake plus sealing, per 10,000 new alerts
// (docs/benchmarks.md; compare with -tags remediator_noseal, which seals
// in separate transactions as the background sealer did).
func BenchmarkIngestAndSeal10000(b *testing.B) {
	s, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	storebench.IngestAndSeal(b, s, 10000)
}
