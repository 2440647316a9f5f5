package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

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
