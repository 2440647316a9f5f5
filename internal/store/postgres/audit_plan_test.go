package postgres_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/remediator/remediator/internal/store/postgres"
)

// TestAuditStatsUnanalyzed: right after a bulk fill, before autovacuum
// analyzed the events table, the stats (and AuditState) must not count
// the unsealed events with a scan of the whole table. A one-sided
// "id > bound" was estimated at a third of the rows and counted by a
// parallel sequential scan (69 ms at 1M events, every call, until the
// table was analyzed).
func TestAuditStatsUnanalyzed(t *testing.T) {
	ctx := context.Background()
	dsn := newDatabase(t)
	s := backend().Open(t, dsn) // the schema
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	const n = 200000
	for _, q := range []string{
		`ALTER TABLE events SET (autovacuum_enabled = false)`,
		`INSERT INTO events (incident_id, occurred_at, type, actor, reason)
			SELECT 'inc-' || (x % 100), now(), 'received', 'remediator', 'reason of event ' || x FROM generate_series(1, 200000) x`,
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	var analyzed bool
	if err := conn.QueryRow(ctx, `SELECT last_analyze IS NOT NULL OR last_autoanalyze IS NOT NULL
		FROM pg_stat_user_tables WHERE relname = 'events'`).Scan(&analyzed); err != nil {
		t.Fatal(err)
	}
	if analyzed {
		t.Skip("events was analyzed")
	}
	var top int64
	if err := conn.QueryRow(ctx, `SELECT max(id) FROM events`).Scan(&top); err != nil {
		t.Fatal(err)
	}
	plan := func(q string, args ...any) string {
		t.Helper()
		var lines []string
		rows, err := conn.Query(ctx, "EXPLAIN "+q, append([]any{pgx.QueryExecModeSimpleProtocol}, args...)...)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var l string
			if err := rows.Scan(&l); err != nil {
				t.Fatal(err)
			}
			lines = append(lines, l)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return strings.Join(lines, "\n")
	}
	t.Logf("the one-sided form (before the fix):\n%s", plan(`SELECT count(*) FROM events WHERE id > $1`, top-10))
	// A small backlog and a large one: events_pkey either way.
	for _, bound := range []int64{top - 10, top - n/10} {
		p := plan(postgres.UnsealedCount, bound, top)
		if strings.Contains(p, "Seq Scan") || !strings.Contains(p, "events_pkey") {
			t.Errorf("unsealed count (%d, %d] on an unanalyzed table:\n%s", bound, top, p)
		}
	}
	// The store's call: the right count, and no scan of the table.
	start := time.Now()
	st, err := s.AuditState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Unsealed != n {
		t.Fatalf("unsealed %d, want %d", st.Unsealed, n)
	}
	t.Logf("AuditState with %d unsealed: %v", n, time.Since(start))
}
