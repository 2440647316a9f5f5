package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/remediator/remediator/internal/store/audit"
)

// TestServeAudit: the real binary seals the events it stores within about
// a second, serves /audit/* with the audit token only, and its trail
// verifies after a clean stop.
func TestServeAudit(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	tokenFile, auditFile := filepath.Join(dir, "token"), filepath.Join(dir, "audit-token")
	if err := os.WriteFile(tokenFile, []byte("tok\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(auditFile, []byte("audit-tok\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("REMEDIATOR_AUDIT_TOKEN_FILE", auditFile)
	addr := freeAddr(t)
	base := "http://" + addr
	dsn := "sqlite://" + filepath.Join(dir, "r.db")
	p := startServe(t, bin, "--listen", addr, "--store", dsn, "--webhook-token-file", tokenFile,
		"--policies", filepath.Join("..", "..", "policies"))
	waitReady(t, base)
	if code, body := postFile(t, base, "tok", "firing.json"); code != 202 {
		t.Fatalf("post: %d %v", code, body)
	}
	get := func(path, tok string) (int, []byte) {
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	if code, _ := get("/audit/stats", "tok"); code != 401 {
		t.Errorf("/audit/stats with the webhook token: %d", code)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		code, b := get("/audit/stats", "audit-tok")
		var st audit.Stats
		if code == 200 && json.Unmarshal(b, &st) == nil && st.ByType["received"] == 1 && st.ByType["planned"] == 1 && st.Unsealed == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stats: %d %s\n%s", code, b, p.out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	code, b := get("/audit/export?format=ndjson&startDate="+time.Now().UTC().AddDate(0, 0, -1).Format(audit.DateLayout), "audit-tok")
	if code != 200 || !strings.Contains(string(b), `"type":"planned"`) || !strings.Contains(string(b), `"alertname":"HighErrorRate"`) {
		t.Errorf("export: %d %s", code, b)
	}
	if code, b := get("/audit/retention", "audit-tok"); code != 200 || !strings.Contains(string(b), `"days":90`) {
		t.Errorf("retention: %d %s", code, b)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := waitExit(p.cmd, 20*time.Second); err != nil {
		t.Fatalf("exit: %v\n%s", err, p.out)
	}
	out, err := exec.Command(bin, "audit", "verify", "--store", dsn).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "audit chain valid") {
		t.Errorf("verify: %v %s", err, out)
	}
}

func TestServeRefusesUnsafeAudit(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	tokenFile, same := filepath.Join(dir, "token"), filepath.Join(dir, "same")
	for _, f := range []string{tokenFile, same} {
		if err := os.WriteFile(f, []byte("tok\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range []struct {
		name string
		args []string
		env  []string
		want string
	}{
		{"public without an audit token", []string{"--listen", "0.0.0.0:0", "--webhook-token-file", tokenFile}, nil,
			"audit: refusing to serve /audit/* on 0.0.0.0:0"},
		{"the webhook's token as the audit token", []string{"--listen", "127.0.0.1:0", "--webhook-token-file", tokenFile},
			[]string{"REMEDIATOR_AUDIT_TOKEN_FILE=" + same}, "holds the webhook's token"},
		{"negative retention", nil, []string{"REMEDIATOR_AUDIT_RETENTION_DAYS=-1"}, "audit.retention_days"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, append([]string{"serve", "--store", "sqlite://" + filepath.Join(dir, "r.db"),
				"--policies", filepath.Join("..", "..", "policies")}, tt.args...)...)
			cmd.Env = append(os.Environ(), tt.env...)
			out, err := cmd.CombinedOutput()
			if err == nil || !strings.Contains(string(out), tt.want) {
				t.Errorf("%v, output %q lacks %q", err, out, tt.want)
			}
		})
	}
}
