package postgres_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/remediator/remediator/internal/store"
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
