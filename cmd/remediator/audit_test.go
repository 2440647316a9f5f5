package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/remediator/remediator/internal/incident"
	"github.com/remediator/remediator/internal/store"
	"github.com/remediator/remediator/internal/store/audit"
	"github.com/remediator/remediator/internal/store/sqlite"
	"github.com/remediator/remediator/internal/store/storetest"
)

func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := newRootCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

// TestAuditCLI runs remediator audit on a SQLite store holding unsealed
// events, as an operator would against a live database.
func TestAuditCLI(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.db")
	clock := storetest.NewClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	st, err := sqlite.Open(context.Background(), path, store.WithClock(clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Ingest(context.Background(), storetest.Notification(
		storetest.Alert("c11a000000000001", incident.StatusFiring, clock.Now()),
		storetest.Alert("c11a000000000002", incident.StatusFiring, clock.Now(), "alertname", "Disk"))); err != nil {
		t.Fatal(err)
	}
	st.Close()
	dsn := "sqlite://" + path

	out, err := runCLI(t, "audit", "verify", "--store", dsn)
	if err != nil || !strings.Contains(out, "audit chain valid: 2 records") {
		t.Fatalf("verify: %v\n%s", err, out)
	}
	out, err = runCLI(t, "audit", "export", "--store", dsn, "--start-date", "2026-03-01", "--end-date", "2026-03-01")
	rows, cerr := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil || cerr != nil || len(rows) != 3 || rows[0][0] != "seq" {
		t.Fatalf("export csv: %v %v\n%s", err, cerr, out)
	}
	file := filepath.Join(t.TempDir(), "a.json")
	if _, err := runCLI(t, "audit", "export", "--store", dsn, "--format", "json", "--start-date", "2026-03-01",
		"--alertname", "Disk", "--out", file); err != nil {
		t.Fatal(err)
	}
	if out, err := runCLI(t, "audit", "export", "--store", dsn, "--start-date", "March"); err == nil ||
		!strings.Contains(err.Error(), "startDate") {
		t.Errorf("bad date: %v %s", err, out)
	}
	out, err = runCLI(t, "audit", "stats", "--store", dsn, "-o", "json")
	var stats audit.Stats
	if err != nil || json.Unmarshal([]byte(out), &stats) != nil || stats.Records != 2 || stats.ByAlertName["Disk"] != 1 {
		t.Fatalf("stats: %v\n%s", err, out)
	}
	if out, err := runCLI(t, "audit", "stats", "--store", dsn); err != nil || !strings.Contains(out, "Records:") ||
		!strings.Contains(out, "ALERTNAME") {
		t.Errorf("stats table: %v\n%s", err, out)
	}
	out, err = runCLI(t, "audit", "cleanup", "--store", dsn, "--retention-days", "30")
	var res audit.CleanupResult
	if err != nil || json.Unmarshal([]byte(out), &res) != nil || res.Deleted != 2 {
		t.Fatalf("cleanup: %v\n%s", err, out)
	}
	if out, err := runCLI(t, "audit", "verify", "--store", dsn); err != nil || !strings.Contains(out, "from the checkpoint at seq 2") {
		t.Fatalf("verify after cleanup: %v\n%s", err, out)
	}
	// Tampered: exit status 1 naming the record.
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`DROP TRIGGER audit_no_update`, `UPDATE audit SET alertname = 'mallory' WHERE seq = 3`} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	out, err = runCLI(t, "audit", "verify", "--store", dsn, "-o", "json")
	var rep audit.Report
	if err == nil || json.Unmarshal([]byte(out), &rep) != nil || rep.Valid || rep.Break.Seq != 3 || rep.Break.Problem != audit.ProblemHash {
		t.Fatalf("verify after tampering: %v\n%s", err, out)
	}
}
