package pgserver

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestStartCreateStop(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL server")
	}
	ctx := context.Background()
	s, err := Start(ctx, t.TempDir())
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	dsn, err := s.CreateDatabase(ctx, "remediator_test")
	if err != nil {
		s.Stop()
		t.Fatalf("CreateDatabase: %v", err)
	}
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		s.Stop()
		t.Fatalf("connect %s: %v", dsn, err)
	}
	var db string
	if err := c.QueryRow(ctx, "SELECT current_database()").Scan(&db); err != nil || db != "remediator_test" {
		t.Errorf("current_database = %q, %v", db, err)
	}
	c.Close(ctx)
	if err := s.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if _, err := pgx.Connect(ctx, s.DSN()); err == nil {
		t.Errorf("server still answers after Stop")
	}
}
