package slack

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/remediator/remediator/internal/notify/notifytest"
	"github.com/remediator/remediator/internal/slack/slacktest"
	"github.com/remediator/remediator/internal/store"
	"github.com/remediator/remediator/internal/store/sqlite"
)

const testSecret = "8f742231b10e8888abcd99yyyzzz85a5"

type decision struct {
	incident, by, reason string
	approve              bool
}

type fakeDecider struct {
	mu    sync.Mutex
	calls []decision
	err   error
	p     store.Proposal
	block chan struct{} // when set, Decide waits for it
}

func (f *fakeDecider) Decide(ctx context.Context, incidentID string, approve bool, by, reason string) (store.Proposal, error) {
	if f.block != nil {
		select {
		case <-f.block:
		case <-ctx.Done():
			return store.Proposal{}, ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, decision{incidentID, by, reason, approve})
	return f.p, f.err
}

func (f *fakeDecider) decisions() []decision {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]decision(nil), f.calls...)
}

type refusal struct{ incident, actor, why string }

type fakeRecorder struct {
	mu   sync.Mutex
	list []refusal
}

func (f *fakeRecorder) Refused(_ context.Context, incidentID, actor, why string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.list = append(f.list, refusal{incidentID, actor, why})
}

func (f *fakeRecorder) refusals() []refusal {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]refusal(nil), f.list...)
}

type kicker struct {
	mu sync.Mutex
	n  int
}

func (k *kicker) Kick() { k.mu.Lock(); k.n++; k.mu.Unlock() }

type harness struct {
	api      *slacktest.Server
	h        *Interactions
	decider  *fakeDecider
	recorder *fakeRecorder
	kicker   *kicker
	blocks   []byte // the proposal message's blocks
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	api := slacktest.New()
	t.Cleanup(api.Close)
	api.SetGroup("S0456EFGH", "U0GROUPIE", "U0OTHER")
	client := &Client{Token: StaticSecret("xoxb-test"), APIURL: api.APIURL()}
	x := &harness{api: api, decider: &fakeDecider{}, recorder: &fakeRecorder{}, kicker: &kicker{}}
	m, _ := testRenderer.Reply(notification(t, notifytest.Approved, "proposed"))
	x.blocks, _ = json.Marshal(m.Blocks)
	x.h = &Interactions{
		SigningSecret: StaticSecret(testSecret),
		Replay:        &MemoryReplay{},
		Approvers:     &Approvers{Users: []string{"U024BE7LH"}, Usergroups: []string{"S0456EFGH"}, Members: client.UserGroupMembers},
		Decider:       x.decider,
		Recorder:      x.recorder,
		Kicker:        x.kicker,
		AllowResponseURL: func(u string) bool {
			return strings.HasPrefix(u, api.URL+"/")
		},
	}
	return x
}

const incidentID = "0193a1b2-0000-7000-8000-000000000001"

// click is the body of a click on a proposal's button.
func (x *harness) click(user, name, actionID string) []byte {
	p := map[string]any{
		"type": "block_actions", "user": map[string]any{"id": user, "username": name, "team_id": "T0001"},
		"team": map[string]any{"id": "T0001"}, "channel": map[string]any{"id": "C0000001"}, "response_url": x.api.ResponseURL(),
		"message": map[string]any{"ts": "1764118800.100005", "blocks": json.RawMessage(x.blocks)},
		"actions": []any{map[string]any{"action_id": actionID, "block_id": BlockDecision, "value": incidentID, "type": "button"}},
	}
	b, _ := json.Marshal(p)
	return form(string(b))
}

func sign(body []byte, ts int64, secret string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(mac, "v0:%d:", ts)
	mac.Write(body)
	return "v0=" + hex.EncodeToString(mac.Sum(nil))
}

func request(body []byte, ts int64, sig string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, InteractionsPath, bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set("X-Slack-Request-Timestamp", strconv.FormatInt(ts, 10))
	r.Header.Set("X-Slack-Signature", sig)
	return r
}

func (x *harness) send(body []byte, ts int64, sig string) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	x.h.ServeHTTP(w, request(body, ts, sig))
	return w
}

func (x *harness) signed(body []byte) *httptest.ResponseRecorder {
	ts := time.Now().Unix()
	return x.send(body, ts, sign(body, ts, testSecret))
}

func TestInteractionApproves(t *testing.T) {
	x := newHarness(t)
	if w := x.signed(x.click("U024BE7LH", "alice", ActionApprove)); w.Code != http.StatusOK {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	x.h.Wait()
	ds := x.decider.decisions()
	if len(ds) != 1 || ds[0].incident != incidentID || !ds[0].approve || ds[0].by != "slack:U024BE7LH (alice)" ||
		ds[0].reason != "in Slack (listed in slack.approvers.users)" {
		t.Fatalf("decisions: %+v", ds)
	}
	if x.kicker.n != 1 || len(x.recorder.refusals()) != 0 {
		t.Errorf("kicks %d, refusals %+v", x.kicker.n, x.recorder.refusals())
	}
	// The proposal's buttons give way to who approved.
	rs := x.api.Calls("response")
	if len(rs) != 1 {
		t.Fatalf("%d responses", len(rs))
	}
	var msg struct {
		Replace bool              `json:"replace_original"`
		Blocks  []json.RawMessage `json:"blocks"`
	}
	if err := json.Unmarshal(rs[0].Body, &msg); err != nil {
		t.Fatal(err)
	}
	body := unesc(rs[0].Body)
	if !msg.Replace || strings.Contains(body, `"actions"`) || !strings.Contains(body, "Approved by <@U024BE7LH>") ||
		!strings.Contains(body, "Dry-run: proposed, not applied") {
		t.Errorf("response: %s", body)
	}
}

func TestInteractionRejectsAndGroups(t *testing.T) {
	x := newHarness(t)
	x.signed(x.click("U0GROUPIE", "gina", ActionReject))
	x.h.Wait()
	x.signed(x.click("U0OTHER", "otto", ActionApprove))
	x.h.Wait()
	ds := x.decider.decisions()
	if len(ds) != 2 || ds[0].approve || ds[0].by != "slack:U0GROUPIE (gina)" || !strings.Contains(ds[0].reason, "member of user group S0456EFGH") || !ds[1].approve {
		t.Fatalf("decisions: %+v", ds)
	}
	if n := len(x.api.Calls("usergroups.users.list")); n != 1 {
		t.Errorf("user group read %d times, want once (cached)", n)
	}
	if x.kicker.n != 1 {
		t.Errorf("kicks %d: a rejection schedules nothing", x.kicker.n)
	}
}

// Every refusal: nothing decided, the attempt recorded.
func TestInteractionRefusals(t *testing.T) {
	now := time.Now().Unix()
	for _, tc := range []struct {
		name     string
		send     func(x *harness) *httptest.ResponseRecorder
		status   int
		incident string
		actor    string
		why      string
	}{
		{"bad signature", func(x *harness) *httptest.ResponseRecorder {
			body := x.click("U024BE7LH", "alice", ActionApprove)
			return x.send(body, now, sign(body, now, "not-the-secret"))
		}, 401, "", ActorUnverified, "bad signature"},
		{"tampered body", func(x *harness) *httptest.ResponseRecorder {
			body := x.click("U024BE7LH", "alice", ActionApprove)
			sig := sign(body, now, testSecret)
			return x.send(x.click("U0STRANGER", "mallory", ActionApprove), now, sig)
		}, 401, "", ActorUnverified, "bad signature"},
		{"no signature", func(x *harness) *httptest.ResponseRecorder {
			return x.send(x.click("U024BE7LH", "alice", ActionApprove), now, "")
		}, 401, "", ActorUnverified, "bad signature"},
		{"stale timestamp", func(x *harness) *httptest.ResponseRecorder {
			old := now - 6*60
			body := x.click("U024BE7LH", "alice", ActionApprove)
			return x.send(body, old, sign(body, old, testSecret))
		}, 401, "", ActorUnverified, "stale request"},
		{"future timestamp", func(x *harness) *httptest.ResponseRecorder {
			later := now + 6*60
			body := x.click("U024BE7LH", "alice", ActionApprove)
			return x.send(body, later, sign(body, later, testSecret))
		}, 401, "", ActorUnverified, "stale request"},
		{"no timestamp", func(x *harness) *httptest.ResponseRecorder {
			r := request(x.click("U024BE7LH", "alice", ActionApprove), 0, "v0=00")
			r.Header.Del("X-Slack-Request-Timestamp")
			w := httptest.NewRecorder()
			x.h.ServeHTTP(w, r)
			return w
		}, 401, "", ActorUnverified, "X-Slack-Request-Timestamp"},
		{"malformed payload", func(x *harness) *httptest.ResponseRecorder {
			return x.signed(form(`{"type":"block_actions","user":{"id":"nobody"}}`))
		}, 400, "", ActorUnverified, "malformed interaction payload"},
		{"replayed request", func(x *harness) *httptest.ResponseRecorder {
			body := x.click("U024BE7LH", "alice", ActionApprove)
			sig := sign(body, now, testSecret)
			x.send(body, now, sig)
			x.h.Wait()
			x.decider.calls = nil // the original was decided; the replay must not be
			return x.send(body, now, sig)
		}, 401, incidentID, "slack:U024BE7LH (alice)", "replayed request"},
		{"replayed with the signature in upper case", func(x *harness) *httptest.ResponseRecorder {
			body := x.click("U024BE7LH", "alice", ActionApprove)
			sig := sign(body, now, testSecret)
			x.send(body, now, sig)
			x.h.Wait()
			x.decider.calls = nil
			return x.send(body, now, "v0="+strings.ToUpper(strings.TrimPrefix(sig, "v0=")))
		}, 401, incidentID, "slack:U024BE7LH (alice)", "replayed request"},
		{"unauthorised user", func(x *harness) *httptest.ResponseRecorder {
			return x.signed(x.click("U0STRANGER", "mallory", ActionApprove))
		}, 200, incidentID, "slack:U0STRANGER (mallory)", "not allowed to approve or reject from Slack: not in slack.approvers"},
		{"user groups unreadable", func(x *harness) *httptest.ResponseRecorder {
			x.api.FailNext("usergroups.users.list", slacktest.Failure{Status: 500})
			return x.signed(x.click("U0GROUPIE", "gina", ActionApprove))
		}, 200, incidentID, "slack:U0GROUPIE (gina)", "approver check failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := newHarness(t)
			w := tc.send(x)
			x.h.Wait()
			if w.Code != tc.status {
				t.Errorf("status %d, want %d: %s", w.Code, tc.status, w.Body)
			}
			if ds := x.decider.decisions(); len(ds) != 0 {
				t.Errorf("decided: %+v", ds)
			}
			rs := x.recorder.refusals()
			if len(rs) != 1 || rs[0].incident != tc.incident || rs[0].actor != tc.actor || !strings.Contains(rs[0].why, tc.why) {
				t.Fatalf("refusals %+v, want one for %q by %q: %q", rs, tc.incident, tc.actor, tc.why)
			}
		})
	}
}

// The unauthorised user is told, privately.
func TestInteractionNotAllowedIsEphemeral(t *testing.T) {
	x := newHarness(t)
	x.signed(x.click("U0STRANGER", "mallory", ActionApprove))
	x.h.Wait()
	rs := x.api.Calls("response")
	if len(rs) != 1 || !strings.Contains(unesc(rs[0].Body), `"response_type":"ephemeral"`) ||
		!strings.Contains(unesc(rs[0].Body), "not allowed") || !strings.Contains(unesc(rs[0].Body), "<!subteam^S0456EFGH>") ||
		strings.Contains(unesc(rs[0].Body), `"replace_original":true`) {
		t.Errorf("responses: %+v", rs)
	}
}

// Slack gets its answer at once, whatever Decide takes.
func TestInteractionAcksBeforeDeciding(t *testing.T) {
	x := newHarness(t)
	x.decider.block = make(chan struct{})
	start := time.Now()
	w := x.signed(x.click("U024BE7LH", "alice", ActionApprove))
	if took := time.Since(start); w.Code != 200 || took > time.Second {
		t.Fatalf("answered %d after %s", w.Code, took)
	}
	if len(x.decider.decisions()) != 0 {
		t.Fatal("decided before answering")
	}
	close(x.decider.block)
	x.h.Wait()
	if len(x.decider.decisions()) != 1 {
		t.Fatal("not decided after answering")
	}
}

func TestInteractionDecideOutcomes(t *testing.T) {
	for _, tc := range []struct {
		err  error
		p    store.Proposal
		want string
	}{
		{fmt.Errorf("%w: the proposal of incident x is approved", store.ErrConflict), store.Proposal{State: "approved", DecidedBy: "bob"}, "already approved (by bob)"},
		{store.ErrExpired, store.Proposal{State: "pending"}, "expired"},
		{store.ErrNotFound, store.Proposal{}, "no proposal"},
		{store.ErrUnavailable, store.Proposal{}, "could not be recorded"},
	} {
		x := newHarness(t)
		x.decider.err, x.decider.p = tc.err, tc.p
		x.signed(x.click("U024BE7LH", "alice", ActionApprove))
		x.h.Wait()
		rs := x.api.Calls("response")
		if len(rs) != 1 || !strings.Contains(unesc(rs[0].Body), tc.want) || x.kicker.n != 0 {
			t.Errorf("%v: responses %+v kicks %d", tc.err, rs, x.kicker.n)
		}
	}
}

func TestInteractionIgnoresOtherActions(t *testing.T) {
	x := newHarness(t)
	if w := x.signed(x.click("U024BE7LH", "alice", "some_other_button")); w.Code != 200 {
		t.Fatalf("status %d", w.Code)
	}
	x.h.Wait()
	if len(x.decider.decisions())+len(x.recorder.refusals()) != 0 {
		t.Error("another app's button was acted on")
	}
}

func TestInteractionWithoutSecret(t *testing.T) {
	x := newHarness(t)
	x.h.SigningSecret = StaticSecret("")
	if w := x.signed(x.click("U024BE7LH", "alice", ActionApprove)); w.Code != http.StatusServiceUnavailable {
		t.Fatalf("status %d", w.Code)
	}
	x.h.Wait()
	if len(x.decider.decisions()) != 0 {
		t.Error("decided without a signing secret")
	}
}

// Mounted on a chi router and reached over loopback HTTP, as in the
// service; the replay protection can be the store's.
func TestInteractionMounted(t *testing.T) {
	x := newHarness(t)
	r := chi.NewRouter()
	x.h.Mount(r)
	srv := httptest.NewServer(r)
	defer srv.Close()
	body := x.click("U024BE7LH", "alice", ActionApprove)
	ts := time.Now().Unix()
	req, _ := http.NewRequest(http.MethodPost, srv.URL+InteractionsPath, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Slack-Request-Timestamp", strconv.FormatInt(ts, 10))
	req.Header.Set("X-Slack-Signature", sign(body, ts, testSecret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	x.h.Wait()
	if resp.StatusCode != 200 || len(x.decider.decisions()) != 1 {
		t.Fatalf("status %d, decisions %+v", resp.StatusCode, x.decider.decisions())
	}
}

func TestSlackResponseURL(t *testing.T) {
	for u, want := range map[string]bool{
		"https://hooks.slack.com/actions/T/1/x": true,
		"http://hooks.slack.com/actions/T/1/x":  false,
		"https://hooks.slack.com.evil.example/": false,
		"https://127.0.0.1/x":                   false,
	} {
		if slackResponseURL(u) != want {
			t.Errorf("%s: %v", u, !want)
		}
	}
}

// unesc undoes encoding/json's HTML escaping, for reading bodies.
func unesc(b []byte) string {
	return strings.NewReplacer(`\u003c`, "<", `\u003e`, ">", `\u0026`, "&").Replace(string(b))
}

// Two replicas sharing the store: a request replayed to the other replica
// is refused too.
func TestInteractionReplayAcrossReplicas(t *testing.T) {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "r.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	a, b := newHarness(t), newHarness(t)
	a.h.Replay, b.h.Replay = st, st
	body := a.click("U024BE7LH", "alice", ActionApprove)
	ts := time.Now().Unix()
	sig := sign(body, ts, testSecret)
	if w := a.send(body, ts, sig); w.Code != 200 {
		t.Fatalf("first: %d %s", w.Code, w.Body)
	}
	if w := b.send(body, ts, sig); w.Code != http.StatusUnauthorized {
		t.Fatalf("replay to the other replica: %d", w.Code)
	}
	a.h.Wait()
	b.h.Wait()
	if len(a.decider.decisions()) != 1 || len(b.decider.decisions()) != 0 || len(b.recorder.refusals()) != 1 {
		t.Errorf("decisions %d/%d, refusals %+v", len(a.decider.decisions()), len(b.decider.decisions()), b.recorder.refusals())
	}
}
