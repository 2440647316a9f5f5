package auditcli_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/remediator/remediator/internal/incident"
	"github.com/remediator/remediator/internal/store/audit"
	"github.com/remediator/remediator/internal/store/audit/auditcli"
	"github.com/remediator/remediator/internal/store/sqlite"
	"github.com/remediator/remediator/internal/store/storetest"
)

// TestLeanCommand runs the command tree as remediator-audit does (the
// tree at the root, the store from the default). cmd/remediator's
// TestAuditCLI covers the same commands under `remediator audit`.
func TestLeanCommand(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "r.db")
	st, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	if _, err := st.Ingest(ctx, storetest.Notification(storetest.Alert("1ea0000000000001", incident.StatusFiring, t0),
		storetest.Alert("1ea0000000000002", incident.StatusFiring, t0, "alertname", "Disk"))); err != nil {
		t.Fatal(err)
	}
	st.Close()
	run := func(args ...string) (string, error) {
		cmd := auditcli.Command("remediator-audit", "sqlite://"+path)
		var out bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetErr(&out)
		cmd.SetArgs(args)
		err := cmd.ExecuteContext(ctx)
		return out.String(), err
	}
	if out, err := run("verify"); err != nil || !strings.Contains(out, "audit chain valid: 2 records") {
		t.Fatalf("verify: %v\n%s", err, out)
	}
	out, err := run("export", "--start-date", "2026-03-01")
	rows, cerr := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil || cerr != nil || len(rows) != 3 || rows[0][0] != "seq" {
		t.Fatalf("export: %v %v\n%s", err, cerr, out)
	}
	out, err = run("stats", "-o", "json")
	var stats audit.Stats
	if err != nil || json.Unmarshal([]byte(out), &stats) != nil || stats.Records != 2 || stats.ByAlertName["Disk"] != 1 {
		t.Fatalf("stats: %v\n%s", err, out)
	}
}
