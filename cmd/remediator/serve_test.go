package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// buildBinary compiles the real binary once per test.
func buildBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := filepath.Join(t.TempDir(), "remediator")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

type proc struct {
	cmd *exec.Cmd
	out *syncBuffer
}

// syncBuffer is written by the child's output copier and read by the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startServe(t *testing.T, bin string, args ...string) *proc {
	t.Helper()
	out := &syncBuffer{}
	cmd := exec.Command(bin, append([]string{"serve"}, args...)...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = os.Environ()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, out: out}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return p
}

func waitReady(t *testing.T, base string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s not ready", base)
}

func postFile(t *testing.T, base, token, file string) (int, map[string]any) {
	t.Helper()
	body, err := os.ReadFile(filepath.Join("..", "..", "internal", "intake", "testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, base+"/webhook/alertmanager", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &m)
	return resp.StatusCode, m
}

// The real binary: starts from flags, takes a webhook, processes it
// asynchronously, shows it through the CLI, stops cleanly on SIGTERM, and
// after a restart on the same store counts the re-send as a duplicate.
func TestServeEndToEnd(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("tok\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	base := "http://" + addr
	args := []string{"--listen", addr, "--store", "sqlite://" + filepath.Join(dir, "db", "r.db"), "--webhook-token-file", tokenFile,
		"--policies", filepath.Join("..", "..", "policies")}
	p := startServe(t, bin, args...)
	waitReady(t, base)

	code, body := postFile(t, base, "tok", "firing.json")
	if code != 202 || body["new"] != float64(1) {
		t.Fatalf("post: %d %v\n%s", code, body, p.out)
	}
	// The worker records the policy match, diagnosis and plan asynchronously.
	var shown string
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(shown, "planned") {
		if time.Now().After(deadline) {
			t.Fatalf("no planned event:\n%s\n%s", shown, p.out)
		}
		time.Sleep(50 * time.Millisecond)
		list, err := exec.Command(bin, "incidents", "--server", base, "--token-file", tokenFile, "-o", "json").Output()
		if err != nil {
			t.Fatal(err)
		}
		var l struct{ Incidents []struct{ ID string } }
		if err := json.Unmarshal(list, &l); err != nil || len(l.Incidents) != 1 {
			t.Fatalf("incidents: %v %s", err, list)
		}
		out, err := exec.Command(bin, "incidents", l.Incidents[0].ID, "--server", base, "--token-file", tokenFile).CombinedOutput()
		if err != nil {
			t.Fatalf("incidents ID: %v %s", err, out)
		}
		shown = string(out)
	}
	if !strings.Contains(shown, "HighErrorRate") || !strings.Contains(shown, "received") || !strings.Contains(shown, "prod/platform-service") ||
		!strings.Contains(shown, "matched") || !strings.Contains(shown, "diagnosed") || !strings.Contains(shown, "escalate") {
		t.Errorf("incident view:\n%s", shown)
	}
	// Access log is JSON with responseTimeMs and the correlation ID.
	if !strings.Contains(p.out.String(), `"responseTimeMs"`) || !strings.Contains(p.out.String(), `"correlationId"`) {
		t.Errorf("access log lacks fields:\n%s", p.out)
	}

	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := waitExit(p.cmd, 20*time.Second); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, p.out)
	}

	p = startServe(t, bin, args...)
	waitReady(t, base)
	code, body = postFile(t, base, "tok", "firing.json")
	if code != 202 || body["new"] != float64(0) || body["duplicates"] != float64(1) {
		t.Fatalf("after restart: %d %v", code, body)
	}
}

func waitExit(cmd *exec.Cmd, d time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		return fmt.Errorf("did not exit within %s", d)
	}
}

func TestServeRefusesUnsafeConfig(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(cfg, []byte("listen: 127.0.0.1:0\nauth:\n  bearer_token: x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		env  []string
		want string
	}{
		{"public without auth", []string{"--listen", "0.0.0.0:0"}, nil, "refusing to bind 0.0.0.0:0 without authentication"},
		{"bad mode", []string{"--mode", "yes"}, nil, `mode: must be "dry-run" or "enforce"`},
		{"unknown config key", []string{"--config", cfg}, nil, `line 3: unknown field "auth.bearer_token"`},
		{"unknown env", nil, []string{"REMEDIATOR_LISTN=x"}, "unknown variable REMEDIATOR_LISTN"},
		{"missing token file", []string{"--webhook-token-file", filepath.Join(dir, "nope")}, nil, "no such file"},
		{"bad store scheme", []string{"--store", "mysql://x"}, nil, "mysql"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, append([]string{"serve", "--store", "sqlite://" + filepath.Join(dir, "r.db"),
				"--policies", filepath.Join("..", "..", "policies")}, tt.args...)...)
			cmd.Env = append(os.Environ(), tt.env...)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("started; output:\n%s", out)
			}
			if !strings.Contains(string(out), tt.want) {
				t.Errorf("output %q lacks %q", out, tt.want)
			}
		})
	}
}

func TestVersionCommand(t *testing.T) {
	var b bytes.Buffer
	cmd := newRootCmd()
	cmd.SetOut(&b)
	cmd.SetArgs([]string{"version"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(b.String(), "remediator ") {
		t.Errorf("version output %q", b.String())
	}
}

// kill -9 of the real process right after it answered 202 (while its worker
// may be mid-job): after a restart on the same store every incident is
// processed exactly once — one unmatched event each, none lost, none twice.
func TestKill9ThenRestartProcessesEachIncidentOnce(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	cfg := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(tokenFile, []byte("tok\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A short lease so jobs leased by the killed process are taken over fast.
	if err := os.WriteFile(cfg, []byte("worker:\n  lease: 2s\n  poll: 100ms\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	base := "http://" + addr
	args := []string{"--config", cfg, "--listen", addr, "--store", "sqlite://" + filepath.Join(dir, "r.db"), "--webhook-token-file", tokenFile,
		"--policies", filepath.Join("..", "..", "policies")}

	const rounds, perRound = 3, 20
	for round := range rounds {
		p := startServe(t, bin, args...)
		waitReady(t, base)
		for i := range perRound {
			body := fmt.Sprintf(`{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"alertname":"Crash","round":"%d","i":"%d"},"startsAt":"2026-11-26T01:00:00Z"}]}`, round, i)
			req, _ := http.NewRequest(http.MethodPost, base+"/webhook/alertmanager", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer tok")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusAccepted {
				t.Fatalf("round %d: status %d", round, resp.StatusCode)
			}
		}
		if err := p.cmd.Process.Kill(); err != nil { // SIGKILL: no shutdown path runs
			t.Fatal(err)
		}
		_ = p.cmd.Wait()
	}

	p := startServe(t, bin, args...)
	waitReady(t, base)
	client := apiClient{base: base, token: "tok", http: http.DefaultClient}
	deadline := time.Now().Add(60 * time.Second)
	for {
		var list struct{ Incidents []struct{ ID string } }
		if err := client.get(context.Background(), "/api/v1/incidents?limit=1000", &list); err != nil {
			t.Fatal(err)
		}
		if len(list.Incidents) != rounds*perRound {
			t.Fatalf("%d incidents, want %d", len(list.Incidents), rounds*perRound)
		}
		done, twice := 0, 0
		for _, inc := range list.Incidents {
			var one struct{ Timeline []struct{ Type string } }
			if err := client.get(context.Background(), "/api/v1/incidents/"+inc.ID, &one); err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, e := range one.Timeline {
				if e.Type == "unmatched" {
					n++
				}
			}
			if n == 1 {
				done++
			}
			if n > 1 {
				twice++
			}
		}
		if twice > 0 {
			t.Fatalf("%d incidents processed more than once", twice)
		}
		if done == rounds*perRound {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d incidents processed after restart\n%s", done, rounds*perRound, p.out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
