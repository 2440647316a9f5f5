// Command auditbench makes and measures large audit trails for
// docs/benchmarks.md (hack/bench-audit.sh runs it).
//
//	auditbench fill  -store DSN -n N   N timeline events (bulk SQL, spread over 30 days,
//	                                   realistic types and details), then sealed by the
//	                                   store's own sealer; prints the sealing rate
//	auditbench stats -store DSN        GET /audit/stats's store call, 50 times: min/median/max
//	auditbench export -store DSN       an in-process CSV export to /dev/null: rows/s
package main

import (
	"bufio"
	"context"
	"database/sql"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	_ "modernc.org/sqlite"

	"github.com/remediator/remediator/internal/store/audit"
	"github.com/remediator/remediator/internal/store/open"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: auditbench fill|stats|export -store DSN [-n N]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	dsn := fs.String("store", "", "store DSN")
	n := fs.Int("n", 100000, "events to make (fill)")
	prof := fs.String("cpuprofile", "", "write a CPU profile here")
	_ = fs.Parse(os.Args[2:])
	if *prof != "" {
		f, err := os.Create(*prof)
		if err == nil {
			_ = pprof.StartCPUProfile(f)
			defer pprof.StopCPUProfile()
		}
	}
	var err error
	switch os.Args[1] {
	case "fill":
		err = fill(*dsn, *n)
	case "stats":
		err = stats(*dsn)
	case "export":
		err = export(*dsn)
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "auditbench:", err)
		os.Exit(1)
	}
}

// The mix of event types, with details shaped like the stages' (sizes
// from a few bytes to ~1 KB for a diagnosis).
const (
	planned   = `{"mode":"dry-run","decision":{"policy":"high-error-rate","remedy":"rollback-bad-release","step":0,"action":"rollback","escalated":false,"priority":"P1"},"target":{"namespace":"shop","kind":"Deployment","name":"checkout"},"change":{"action":"rollback","target":{"namespace":"shop","kind":"Deployment","name":"checkout"},"summary":"rollback deployment shop/checkout revision 7 → 6 (image registry/checkout:v2.4.1 → registry/checkout:v2.4.0)"}}`
	diagnosed = `{"evidence":[{"probe":"rollout_history","ok":true,"value":{"revisions":[{"revision":7,"image":"registry/checkout:v2.4.1","age":"12m"},{"revision":6,"image":"registry/checkout:v2.4.0","age":"3d"}]}},{"probe":"pod_status","ok":true,"value":{"ready":3,"total":3,"restarts":0,"oomKilled":0}},{"probe":"error_distribution","ok":true,"value":{"5xx":0.071,"top":[{"path":"/api/v1/cart","rate":0.12},{"path":"/api/v1/checkout","rate":0.09}]}},{"probe":"prometheus","ok":true,"value":{"query":"sum(rate(http_requests_total{code=~\"5..\",namespace=\"shop\"}[5m]))","result":4.2}}]}`
	blocked   = `{"guard":"cooldown","action":"restart","mode":"enforce"}`
	applied   = `{"execution":"0193a1b2-0000-7000-8000-000000000001","applied":{"attempts":1,"detail":"patched"},"tookMs":183,"change":{"action":"rollback","target":{"namespace":"shop","kind":"Deployment","name":"checkout"}},"mode":"enforce"}`
	escalated = `{"priority":"P0","action":"escalate","deadline":"0s"}`
)

// typeSQL picks a type and details for event number x (SQL expression
// over x), the same in both dialects.
const typeSQL = `CASE x % 10 WHEN 0 THEN 'received' WHEN 1 THEN 'received' WHEN 2 THEN 'duplicate' WHEN 3 THEN 'matched'
	WHEN 4 THEN 'diagnosed' WHEN 5 THEN 'planned' WHEN 6 THEN 'blocked' WHEN 7 THEN 'applied' WHEN 8 THEN 'verified'
	ELSE 'escalated' END`

const detailsSQL = `CASE x % 10 WHEN 3 THEN '{"policy":"high-error-rate","target":{"namespace":"shop","kind":"Deployment","name":"checkout"}}'
	WHEN 4 THEN '` + diagnosed + `' WHEN 5 THEN '` + planned + `' WHEN 6 THEN '` + blocked + `' WHEN 7 THEN '` + applied + `'
	WHEN 9 THEN '` + escalated + `' ELSE NULL END`

var alertnames = []string{"HighErrorRate", "HighLatency", "HighMemoryUsage", "PodCrashLooping", "DiskSpaceLow",
	"CertificateExpiring", "DatabaseConnections", "QueueBacklog", "NodeNotReady", "TargetDown"}

func fill(dsn string, n int) error {
	ctx := context.Background()
	st, err := open.Open(ctx, dsn) // creates the schema
	if err != nil {
		return err
	}
	defer st.Close()
	const incidents = 1000
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	span := 30 * 24 * time.Hour
	began := time.Now()
	an := "CASE x % 10 " + func() string {
		var b strings.Builder
		for i, a := range alertnames {
			fmt.Fprintf(&b, "WHEN %d THEN '%s' ", i, a)
		}
		return b.String()
	}() + "END"
	scheme, path, _ := strings.Cut(dsn, "://")
	switch scheme {
	case "sqlite", "sqlite3":
		db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)")
		if err != nil {
			return err
		}
		defer db.Close()
		for _, q := range []string{
			fmt.Sprintf(`WITH RECURSIVE g(x) AS (SELECT 0 UNION ALL SELECT x+1 FROM g WHERE x < %d)
				INSERT INTO incidents (id, fingerprint, starts_at, alertname, namespace, status, first_seen, last_seen)
				SELECT printf('inc-%%06d', x), printf('%%016x', x), %d, %s, 'shop', 'firing', %d, %d FROM g`,
				incidents-1, base.UnixMicro(), an, base.UnixMicro(), base.UnixMicro()),
			fmt.Sprintf(`WITH RECURSIVE g(x) AS (SELECT 0 UNION ALL SELECT x+1 FROM g WHERE x < %d)
				INSERT INTO events (incident_id, occurred_at, type, correlation_id, actor, reason, details)
				SELECT printf('inc-%%06d', x %% %d), %d + x * %d, %s, printf('corr-%%08d', x / 10), 'remediator',
					'reason of event ' || x, %s FROM g`,
				n-1, incidents, base.UnixMicro(), span.Microseconds()/int64(n), typeSQL, detailsSQL),
		} {
			if _, err := db.ExecContext(ctx, q); err != nil {
				return err
			}
		}
	case "postgres", "postgresql":
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		for _, q := range []string{
			fmt.Sprintf(`INSERT INTO incidents (id, fingerprint, starts_at, alertname, namespace, status, first_seen, last_seen)
				SELECT format('inc-%%s', lpad(x::text, 6, '0')), lpad(to_hex(x), 16, '0'), $1, %s, 'shop', 'firing', $1, $1
				FROM generate_series(0, %d) x`, an, incidents-1),
			fmt.Sprintf(`INSERT INTO events (incident_id, occurred_at, type, correlation_id, actor, reason, details)
				SELECT format('inc-%%s', lpad((x %% %d)::text, 6, '0')), $1::timestamptz + x * interval '%d microseconds', %s,
					format('corr-%%s', lpad((x / 10)::text, 8, '0')), 'remediator', 'reason of event ' || x, (%s)::jsonb
				FROM generate_series(0, %d) x`, incidents, span.Microseconds()/int64(n), typeSQL, detailsSQL, n-1),
		} {
			if _, err := conn.Exec(ctx, q, base); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("unknown scheme %q", scheme)
	}
	inserted := time.Since(began)
	began = time.Now()
	total := 0
	for {
		k, err := st.SealAudit(ctx, 10000)
		if err != nil {
			return err
		}
		total += k
		if k == 0 {
			break
		}
	}
	took := time.Since(began)
	fmt.Printf(`{"events": %d, "insertSeconds": %.1f, "sealed": %d, "sealSeconds": %.1f, "sealedPerSecond": %.0f}`+"\n",
		n, inserted.Seconds(), total, took.Seconds(), float64(total)/took.Seconds())
	return nil
}

func stats(dsn string) error {
	ctx := context.Background()
	st, err := open.Open(ctx, dsn)
	if err != nil {
		return err
	}
	defer st.Close()
	var ds []time.Duration
	var s audit.Stats
	for range 50 {
		t := time.Now()
		if s, err = st.AuditStats(ctx); err != nil {
			return err
		}
		ds = append(ds, time.Since(t))
	}
	slices.Sort(ds)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	fmt.Printf(`{"records": %d, "statsMsMin": %.2f, "statsMsMedian": %.2f, "statsMsMax": %.2f}`+"\n",
		s.Records, ms(ds[0]), ms(ds[len(ds)/2]), ms(ds[len(ds)-1]))
	return nil
}

func export(dsn string) error {
	ctx := context.Background()
	st, err := open.Open(ctx, dsn)
	if err != nil {
		return err
	}
	defer st.Close()
	bw := bufio.NewWriterSize(io.Discard, 64<<10)
	enc, err := audit.NewEncoder(bw, audit.FormatCSV)
	if err != nil {
		return err
	}
	n := 0
	t := time.Now()
	err = st.ScanAudit(ctx, audit.Filter{ByTime: true, Since: time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)},
		func(r *audit.Record) error { n++; return enc.Encode(r) })
	if err != nil {
		return err
	}
	_ = enc.Close()
	_ = bw.Flush()
	took := time.Since(t)
	fmt.Printf(`{"records": %d, "exportSeconds": %.2f, "rowsPerSecond": %.0f}`+"\n", n, took.Seconds(), float64(n)/took.Seconds())
	return nil
}
