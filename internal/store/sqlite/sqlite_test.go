package sqlite_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/remediator/remediator/internal/store"
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
