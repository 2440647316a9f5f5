package postgres_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/remediator/remediator/internal/incident"
	"github.com/remediator/remediator/internal/store"
	"github.com/remediator/remediator/internal/store/audit"
	"github.com/remediator/remediator/internal/store/postgres"
	"github.com/remediator/remediator/internal/store/storebench"
	"github.com/remediator/remediator/internal/store/storetest"
	"github.com/remediator/remediator/internal/testbed/pgserver"
)

// EnvDSN names a PostgreSQL server to test against instead of starting one.
// The role must be allowed to create databases.
const EnvDSN = "REMEDIATOR_TEST_POSTGRES_DSN"

var (
	adminDSN string
	dbSeq    atomic.Int64
	runID    = time.Now().UnixNano() % 1_000_000_000
)

func TestMain(m *testing.M) {
	flag.Parse()
	if dsn := os.Getenv(EnvDSN); dsn != "" {
		adminDSN = dsn
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "remediator-pg-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "postgres tests:", err)
		os.Exit(1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	srv, err := pgserver.Start(ctx, dir)
	cancel()
	if err != nil {
		os.RemoveAll(dir)
		if testing.Short() {
			fmt.Fprintf(os.Stderr, "postgres tests SKIPPED (-short): cannot start PostgreSQL: %v\n", err)
			os.Exit(0)
		}
		fmt.Fprintf(os.Stderr, "postgres tests FAILED: cannot start PostgreSQL (set %s to use a running server, or -short to skip): %v\n", EnvDSN, err)
		os.Exit(1)
	}
	adminDSN = srv.DSN()
	code := m.Run()
	if err := srv.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "postgres tests: stop server:", err)
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// newDatabase creates a fresh database for one test (or benchmark).
func newDatabase(tb testing.TB) string {
	tb.Helper()
	name := fmt.Sprintf("remediator_test_%d_%d", runID, dbSeq.Add(1))
	dsn, err := pgserver.CreateDatabase(context.Background(), adminDSN, name)
	if err != nil {
		tb.Fatalf("create database: %v", err)
	}
	return dsn
}

func backend() storetest.Backend {
	return storetest.Backend{
		NewDSN: func(t *testing.T) string { return newDatabase(t) },
		Open: func(t *testing.T, dsn string, opts ...store.Option) store.Store {
			t.Helper()
			s, err := postgres.Open(context.Background(), dsn, opts...)
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		},
		Exec: func(t *testing.T, dsn, query string) error {
			conn, err := pgx.Connect(context.Background(), dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(context.Background())
			_, err = conn.Exec(context.Background(), query)
			return err
		},
		DropAuditTriggers: []string{`DROP TRIGGER audit_append_only ON audit`},
	}
}

func TestStore(t *testing.T) { storetest.Run(t, backend()) }

// TestConcurrentMigrations opens several stores on one new database at
// once: the advisory lock makes exactly one of them migrate.
func TestConcurrentMigrations(t *testing.T) {
	dsn := newDatabase(t)
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			s, err := postgres.Open(context.Background(), dsn)
			if err == nil {
				s.Close()
			}
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

func TestUnavailable(t *testing.T) {
	_, err := postgres.Open(context.Background(), "postgres://postgres@127.0.0.1:1/x?sslmode=disable&connect_timeout=2")
	if err == nil || !strings.Contains(err.Error(), "unavailable") {
		t.Fatalf("open against a closed port: %v, want an ErrUnavailable", err)
	}
}

func openBench(b *testing.B) store.Store {
	s, err := postgres.Open(context.Background(), newDatabase(b))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

func BenchmarkIngest10Alerts(b *testing.B) { storebench.Ingest10Alerts(b, openBench(b)) }

func BenchmarkIngest10000Alerts(b *testing.B) { storebench.IngestLarge(b, openBench(b), 10000) }

// TestOneLeasedJobPerIncident checks the invariant ClaimJobs relies on when
// two replicas' claims race: the database itself refuses a second leased
// job of one incident.
func TestOneLeasedJobPerIncident(t *testing.T) {
	dsn := newDatabase(t)
	s := backend().Open(t, dsn)
	r, err := s.Ingest(context.Background(), storetest.Notification(storetest.Alert("0ne1ea5e00000001", "firing", time.Now())))
	if err != nil {
		t.Fatal(err)
	}
	id := r.Alerts[0].IncidentID
	if err := s.Enqueue(context.Background(), store.NewJob{IncidentID: id, Kind: "verify"}); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(context.Background(), `UPDATE jobs SET state = 'leased', lease_owner = 'x', lease_until = now() WHERE incident_id = $1`, id)
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "23505" || pe.ConstraintName != "jobs_one_leased" {
		t.Fatalf("leasing two jobs of one incident: %v, want a jobs_one_leased violation", err)
	}
}

// TestUpgradeFrom0001 migrates a database that holds data at schema
// version 1: its jobs keep working (with an empty Ref) and the new state
// starts empty.
func TestUpgradeFrom0001(t *testing.T) {
	ctx := context.Background()
	dsn := newDatabase(t)
	v1, err := os.ReadFile("migrations/0001_init.sql")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL)`,
		string(v1),
		`INSERT INTO schema_migrations VALUES (1, '0001_init', now())`,
		`INSERT INTO incidents (id, fingerprint, starts_at, status, first_seen, last_seen) VALUES ('i1', 'f1', now(), 'firing', now(), now())`,
		`INSERT INTO jobs (incident_id, kind, state, attempts, lease_owner, lease_until, not_before, created_at)
			VALUES ('i1', 'firing', 'leased', 1, 'old', now() - interval '1 hour', now(), now()),
			       ('i1', 'resolved', 'pending', 0, NULL, NULL, now(), now())`,
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	conn.Close(ctx)
	s := backend().Open(t, dsn)
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

// TestAuditLateCommit: an event whose transaction commits after events
// with higher ids were sealed is sealed later, with a later seq; the
// sealer's low water never passes it while its transaction is open; the
// chain verifies.
func TestAuditLateCommit(t *testing.T) {
	ctx := context.Background()
	dsn := newDatabase(t)
	s := backend().Open(t, dsn)
	r, err := s.Ingest(ctx, storetest.Notification(storetest.Alert("1a7e000000000001", "firing", time.Now())))
	if err != nil {
		t.Fatal(err)
	}
	id := r.Alerts[0].IncidentID
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var late int64
	if err := tx.QueryRow(ctx, `INSERT INTO events (incident_id, occurred_at, type, actor) VALUES ($1, now(), 'late', 'x')
		RETURNING id`, id).Scan(&late); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendEvents(ctx, incident.Event{IncidentID: id, Type: "after"}); err != nil {
		t.Fatal(err)
	}
	// Passes a second apart: the candidate low water gets its horizon, but
	// the open transaction holds it back.
	for range 4 {
		storetest.SealAll(t, s)
		time.Sleep(600 * time.Millisecond)
	}
	st, err := s.AuditState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.HeadSeq != 2 || st.SealedThrough >= late {
		t.Fatalf("with the late event uncommitted: %+v (late event id %d)", st, late)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if n := storetest.SealAll(t, s); n != 1 {
		t.Fatalf("sealed %d after the late commit, want 1", n)
	}
	storetest.Settle(t, s)
	recs := storetest.Records(t, s)
	if len(recs) != 3 || recs[2].EventID != late || recs[2].Seq != 3 || recs[1].EventID <= late {
		t.Fatalf("records: %+v", recs)
	}
	rep, err := audit.Verify(ctx, s)
	if err != nil || !rep.Valid {
		t.Fatalf("Verify: %+v, %v", rep, err)
	}
}
