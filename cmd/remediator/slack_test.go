package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

const slackTestSecret = "8f742231b10e8888abcd99yyyzzz85a5"

// slackRequest posts to /slack/interactions as Slack would: no bearer
// token, a timestamp and, when secret is set, Slack's signature.
func slackRequest(t *testing.T, base string, body []byte, ts int64, sig string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/slack/interactions", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if ts != 0 {
		req.Header.Set("X-Slack-Request-Timestamp", strconv.FormatInt(ts, 10))
	}
	if sig != "" {
		req.Header.Set("X-Slack-Signature", sig)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func slackSign(body []byte, ts int64, secret string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(mac, "v0:%d:", ts)
	mac.Write(body)
	return "v0=" + hex.EncodeToString(mac.Sum(nil))
}

// The real binary in bot mode: POST /slack/interactions is reachable
// without the API's bearer token, and refuses what Slack did not sign
// (401, no decision); a request Slack signed is acknowledged at once and
// its replay refused; the API still wants its token.
func TestServeSlackInteractions(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tokenFile := write("token", "tok\n")
	addr := freeAddr(t)
	base := "http://" + addr
	cfg := write("config.yaml", fmt.Sprintf(`listen: %q
store: %q
policies: %q
auth:
  bearer_token_file: %q
slack:
  bot_token_file: %q
  signing_secret_file: %q
  default_channel: "#incidents"
  api_url: http://127.0.0.1:1/api/   # nothing is posted in this test
  approvers: {users: [U024BE7LH]}
`, addr, "sqlite://"+filepath.Join(dir, "r.db"), filepath.Join("..", "..", "policies"), tokenFile,
		write("bot-token", "xoxb-test\n"), write("signing-secret", slackTestSecret+"\n")))
	p := startServe(t, bin, "--config", cfg)
	waitReady(t, base)

	now := time.Now().Unix()
	payload, _ := json.Marshal(map[string]any{
		"type": "block_actions", "user": map[string]any{"id": "U024BE7LH", "username": "alice", "team_id": "T0001"},
		"team": map[string]any{"id": "T0001"}, "channel": map[string]any{"id": "C0000001"},
		// Not on slack.com: the service will not post the answer anywhere.
		"response_url": "https://example.invalid/actions/1",
		"message":      map[string]any{"ts": "1764118800.100005"},
		"actions": []any{map[string]any{"action_id": "remediator_approve", "block_id": "remediator_decision",
			"value": "0193a1b2-0000-7000-8000-000000000001", "type": "button"}},
	})
	body := []byte(url.Values{"payload": {string(payload)}}.Encode())

	if code, msg := slackRequest(t, base, body, 0, ""); code != http.StatusUnauthorized || !strings.Contains(msg, "X-Slack-Request-Timestamp") {
		t.Errorf("unsigned, no timestamp: %d %q", code, msg)
	}
	if code, msg := slackRequest(t, base, body, now, slackSign(body, now, "not-the-secret")); code != http.StatusUnauthorized ||
		!strings.Contains(msg, "bad signature") {
		t.Errorf("bad signature: %d %q", code, msg)
	}
	if code, msg := slackRequest(t, base, body, now-3600, slackSign(body, now-3600, slackTestSecret)); code != http.StatusUnauthorized ||
		!strings.Contains(msg, "stale") {
		t.Errorf("stale: %d %q", code, msg)
	}
	sig := slackSign(body, now, slackTestSecret)
	if code, msg := slackRequest(t, base, body, now, sig); code != http.StatusOK {
		t.Errorf("signed by Slack: %d %q", code, msg)
	}
	if code, msg := slackRequest(t, base, body, now, sig); code != http.StatusUnauthorized || !strings.Contains(msg, "replayed") {
		t.Errorf("replay: %d %q", code, msg)
	}
	// The API keeps its credentials.
	resp, err := http.Get(base + "/api/v1/incidents")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("API without token: %d", resp.StatusCode)
	}
	// The signed click reached the executor (no such proposal), and the
	// refusals were logged.
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(p.out.String(), "response_url refused") {
		if time.Now().After(deadline) {
			t.Fatalf("the signed click was not decided:\n%s", p.out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if out := p.out.String(); !strings.Contains(out, `"slack":"bot"`) || !strings.Contains(out, `"slackButtons":true`) ||
		strings.Count(out, "slack interaction refused") < 4 {
		t.Errorf("log:\n%s", out)
	}
}

// The real binary without Slack credentials but with slack.log_file: the
// feed follows the audit trail and writes the messages it would send.
func TestServeSlackLogFile(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("tok\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	logFile := filepath.Join(dir, "slack.log")
	addr := freeAddr(t)
	base := "http://" + addr
	// Set through the environment, as a container would.
	t.Setenv("REMEDIATOR_SLACK_LOG_FILE", logFile)
	t.Setenv("REMEDIATOR_EXTERNAL_URL", "https://remediator.example")
	p := startServe(t, bin, "--listen", addr, "--store", "sqlite://"+filepath.Join(dir, "r.db"), "--webhook-token-file", tokenFile,
		"--policies", filepath.Join("..", "..", "policies"))
	waitReady(t, base)
	if code, body := postFile(t, base, "tok", "firing.json"); code != http.StatusAccepted {
		t.Fatalf("post: %d %v", code, body)
	}
	var shown string
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(shown, "Plan") {
		if time.Now().After(deadline) {
			t.Fatalf("slack log:\n%s\nservice:\n%s", shown, p.out)
		}
		time.Sleep(100 * time.Millisecond)
		b, _ := os.ReadFile(logFile)
		shown = string(b)
	}
	// P1: database:5432 and redis:6379 do not resolve here, and the shipped
	// policy gives an unreachable dependency P1, whatever the severity.
	for _, want := range []string{"new root message", "HighErrorRate · prod", "Plan (P1)", "thread reply", "https://remediator.example/api/v1/incidents/"} {
		if !strings.Contains(shown, want) {
			t.Errorf("slack log lacks %q:\n%s", want, shown)
		}
	}
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(m), `remediator_notifications_total{channel="slack",outcome="sent"}`) ||
		!strings.Contains(string(m), "remediator_slack_backlog") {
		t.Errorf("metrics lack the slack feed's:\n%s", m)
	}
	if strings.Contains(string(m), `remediator_notifications_total{channel="slack",outcome="sent"} 0`) {
		t.Errorf("nothing counted as sent")
	}
}
