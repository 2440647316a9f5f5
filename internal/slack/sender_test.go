package slack

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/remediator/remediator/internal/incident"
	"github.com/remediator/remediator/internal/notify"
	"github.com/remediator/remediator/internal/notify/notifytest"
	"github.com/remediator/remediator/internal/slack/slacktest"
	"github.com/remediator/remediator/internal/store/sqlite"
)

func newSender(api *slacktest.Server, threads ThreadStore) *Sender {
	return &Sender{
		API:      &Client{Token: StaticSecret("xoxb-test"), APIURL: api.APIURL()},
		Threads:  threads,
		Routes:   Routes{Default: "#incidents", ByPriority: map[string]string{"P0": "#incidents-p0"}},
		Renderer: testRenderer,
	}
}

func deliverAll(t *testing.T, d notify.Deliverer, story func() (incident.Incident, []incident.Event)) []notify.Notification {
	t.Helper()
	inc, events := story()
	ns := notify.Timeline(inc, events, fixtureOptions())
	for _, n := range ns {
		if err := d.Deliver(context.Background(), n); err != nil {
			t.Fatalf("deliver %s: %v", n.Kind, err)
		}
	}
	return ns
}

// A whole incident through the bot: one root per channel, replies in its
// thread, the root updated on every status or priority change.
func TestSenderThreads(t *testing.T) {
	api := slacktest.New()
	defer api.Close()
	threads := &MemoryThreads{}
	ns := deliverAll(t, newSender(api, threads), notifytest.Approved)

	roots := map[string]string{} // channel id → root ts
	rootPosts := 0
	for _, c := range api.Calls("chat.postMessage") {
		if c.Token != "xoxb-test" {
			t.Errorf("token %q", c.Token)
		}
		if c.ThreadTS == "" {
			rootPosts++
			roots[c.Channel] = c.TS
		}
	}
	if rootPosts != 2 || len(roots) != 2 {
		t.Fatalf("%d root messages in %v, want one in #incidents and one in #incidents-p0", rootPosts, roots)
	}
	byName := map[string]string{}
	for _, ch := range []string{"#incidents", "#incidents-p0"} {
		r, _ := threads.RootTS(context.Background(), ns[0].IncidentID, ch)
		if r.TS == "" || roots[ch] != r.TS {
			t.Errorf("%s: root %+v recorded, posted %q", ch, r, roots[ch])
		}
		byName[ch] = r.ChannelID
	}
	// Every reply threads under its channel's root (replies go to the id).
	replies := map[string]int{}
	for _, c := range api.Calls("chat.postMessage") {
		if c.ThreadTS == "" {
			continue
		}
		for name, id := range byName {
			if c.Channel == id {
				replies[name]++
				if c.ThreadTS != roots[name] {
					t.Errorf("reply in %s has thread_ts %s, root is %s", name, c.ThreadTS, roots[name])
				}
			}
		}
		if strings.Contains(c.Blocks, `"type":"header"`) {
			t.Errorf("a reply carries the root card: %s", c.Text)
		}
	}
	// #incidents: every step but firing; #incidents-p0: from the plan on.
	if replies["#incidents"] != len(ns)-1 || replies["#incidents-p0"] != len(ns)-2 {
		t.Errorf("replies %v for %d notifications", replies, len(ns))
	}
	// The root is updated in place on each change of status or priority
	// after it was posted.
	updates := map[string]int{}
	for _, c := range api.Calls("chat.update") {
		for name, id := range byName {
			if c.Channel == id {
				updates[name]++
				if c.TS != roots[name] {
					t.Errorf("chat.update of %s, root is %s", c.TS, roots[name])
				}
			}
		}
	}
	changes := 0
	for _, n := range ns[1:] {
		if n.RootChanged {
			changes++
		}
	}
	if updates["#incidents"] != changes || updates["#incidents-p0"] != changes-1 {
		t.Errorf("updates %v, %d root changes after firing", updates, changes)
	}
	last := api.Calls("chat.update")
	if final := last[len(last)-1]; !strings.Contains(final.Blocks, "Verified") {
		t.Errorf("last root update does not say Verified: %s", final.Text)
	}
}

func TestSenderEscalationMentionsOnCall(t *testing.T) {
	api := slacktest.New()
	defer api.Close()
	deliverAll(t, newSender(api, &MemoryThreads{}), notifytest.Failed)
	var esc []slacktest.Call
	for _, c := range api.Calls("chat.postMessage") {
		if strings.Contains(c.Text, "Escalated") {
			esc = append(esc, c)
		}
	}
	if len(esc) != 2 {
		t.Fatalf("%d escalation replies, want one per channel", len(esc))
	}
	for _, c := range esc {
		if !strings.HasPrefix(c.Text, "<!subteam^S0123ABCD> ") || !c.Broadcast || c.ThreadTS == "" {
			t.Errorf("escalation: text %q broadcast %v thread %q", c.Text, c.Broadcast, c.ThreadTS)
		}
	}
}

func TestSenderRetryAfter(t *testing.T) {
	api := slacktest.New()
	defer api.Close()
	s := newSender(api, &MemoryThreads{})
	s.Routes = Routes{Default: "#incidents"}
	inc, events := notifytest.Approved()
	ns := notify.Timeline(inc, events, fixtureOptions())
	ctx := context.Background()

	// The root post is rate limited: RetryAfter, for the outbox.
	api.FailNext("chat.postMessage", slacktest.Failure{Status: 429, RetryAfter: "7"})
	err := s.Deliver(ctx, ns[0])
	var ra *notify.RetryAfter
	if !errors.As(err, &ra) || ra.After != 7*time.Second {
		t.Fatalf("rate limited root: %v, want RetryAfter 7s", err)
	}
	if retry, wait := notify.Next(err); !retry || wait != 7*time.Second {
		t.Fatalf("Next: %v %v", retry, wait)
	}
	if err := s.Deliver(ctx, ns[0]); err != nil {
		t.Fatal(err)
	}
	// The reply is rate limited after the root exists: the retry posts the
	// reply, not a second root.
	api.FailNext("chat.postMessage", slacktest.Failure{Status: 429, RetryAfter: "3"})
	if err := s.Deliver(ctx, ns[1]); !errors.As(err, &ra) || ra.After != 3*time.Second {
		t.Fatalf("rate limited reply: %v", err)
	}
	if err := s.Deliver(ctx, ns[1]); err != nil {
		t.Fatal(err)
	}
	roots := 0
	for _, c := range api.Calls("chat.postMessage") {
		if c.ThreadTS == "" && !strings.Contains(c.Text, "Diagnosis") {
			roots++
		}
	}
	// Two root attempts (the first refused with 429), one recorded.
	if roots != 2 {
		t.Errorf("%d root posts, want 2 (one refused, one posted)", roots)
	}
	// chat.update rate limited too.
	api.FailNext("chat.update", slacktest.Failure{Status: 429, RetryAfter: "11"})
	if err := s.Deliver(ctx, ns[2]); !errors.As(err, &ra) || ra.After != 11*time.Second {
		t.Fatalf("rate limited update: %v", err)
	}
}

func TestSenderErrors(t *testing.T) {
	api := slacktest.New()
	defer api.Close()
	s := newSender(api, &MemoryThreads{})
	s.Routes = Routes{Default: "#incidents"}
	n := notification(t, notifytest.Approved, "received")
	ctx := context.Background()
	for _, tc := range []struct {
		f    slacktest.Failure
		want string
	}{
		{slacktest.Failure{Error: "channel_not_found"}, "permanent"},
		{slacktest.Failure{Error: "invalid_auth"}, "permanent"},
		{slacktest.Failure{Error: "internal_error"}, "retryable"},
		{slacktest.Failure{Status: 503}, "retryable"},
		{slacktest.Failure{Status: 429}, "retryable"}, // no Retry-After: the outbox's backoff
		{slacktest.Failure{Status: 404}, "permanent"},
	} {
		api.FailNext("chat.postMessage", tc.f)
		err := s.Deliver(ctx, n)
		var p *notify.Permanent
		var r *notify.Retryable
		got := map[bool]string{true: "permanent", false: "other"}[errors.As(err, &p)]
		if errors.As(err, &r) {
			got = "retryable"
		}
		if got != tc.want {
			t.Errorf("%+v: %v is %s, want %s", tc.f, err, got, tc.want)
		}
	}
	// Nothing configured for a notification: nothing to do.
	s.Routes = Routes{}
	if err := s.Deliver(ctx, n); err != nil {
		t.Errorf("no route: %v", err)
	}
	// No token: permanent.
	s.Routes = Routes{Default: "#incidents"}
	s.API = &Client{Token: StaticSecret(" "), APIURL: api.APIURL()}
	var p *notify.Permanent
	if err := s.Deliver(ctx, n); !errors.As(err, &p) {
		t.Errorf("empty token: %v", err)
	}
}

// A root message someone deleted is posted again, and the thread goes on
// under the new one.
func TestSenderRootDeleted(t *testing.T) {
	api := slacktest.New()
	defer api.Close()
	threads := &MemoryThreads{}
	s := newSender(api, threads)
	s.Routes = Routes{Default: "#incidents"}
	inc, events := notifytest.Approved()
	ns := notify.Timeline(inc, events, fixtureOptions())
	ctx := context.Background()
	if err := s.Deliver(ctx, ns[0]); err != nil {
		t.Fatal(err)
	}
	old, _ := threads.RootTS(ctx, inc.ID, "#incidents")
	api.Delete(old.ChannelID, old.TS)
	if err := s.Deliver(ctx, ns[2]); err != nil { // the plan: priority changes → update
		t.Fatal(err)
	}
	now, _ := threads.RootTS(ctx, inc.ID, "#incidents")
	calls := api.Calls("chat.postMessage")
	if now.TS == old.TS || calls[len(calls)-1].ThreadTS != now.TS {
		t.Errorf("root %s → %s, reply in thread %s", old.TS, now.TS, calls[len(calls)-1].ThreadTS)
	}
}

// The store keeps the roots: a new Sender (a restart, another replica)
// threads under the same root.
func TestSenderWithStore(t *testing.T) {
	api := slacktest.New()
	defer api.Close()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "r.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	inc, events := notifytest.Approved()
	ns := notify.Timeline(inc, events, fixtureOptions())
	if err := newSender(api, st).Deliver(context.Background(), ns[0]); err != nil {
		t.Fatal(err)
	}
	if err := newSender(api, st).Deliver(context.Background(), ns[1]); err != nil {
		t.Fatal(err)
	}
	calls := api.Calls("chat.postMessage")
	if len(calls) != 2 || calls[0].ThreadTS != "" || calls[1].ThreadTS != calls[0].TS {
		t.Fatalf("calls: %+v", calls)
	}
}

func TestWebhookSender(t *testing.T) {
	api := slacktest.New()
	defer api.Close()
	w := &WebhookSender{URL: StaticSecret(api.WebhookURL()), Renderer: testRenderer}
	ns := deliverAll(t, w, notifytest.Approved)
	calls := api.Calls()
	if len(calls) != len(ns) {
		t.Fatalf("%d webhook posts for %d notifications", len(calls), len(ns))
	}
	for _, c := range calls {
		if c.Method != "webhook" || bytes.Contains(c.Body, []byte(`"thread_ts"`)) || bytes.Contains(c.Body, []byte(`"type":"actions"`)) ||
			!bytes.Contains(c.Body, []byte("HighErrorRate")) {
			t.Errorf("webhook message: %s", c.Body)
		}
	}
	api.FailNext("webhook", slacktest.Failure{Status: 429, RetryAfter: "30"})
	var ra *notify.RetryAfter
	if err := w.Deliver(context.Background(), ns[0]); !errors.As(err, &ra) || ra.After != 30*time.Second {
		t.Errorf("rate limited webhook: %v", err)
	}
	api.FailNext("webhook", slacktest.Failure{Status: 404})
	var p *notify.Permanent
	err := w.Deliver(context.Background(), ns[0])
	if !errors.As(err, &p) || strings.Contains(err.Error(), "secret") {
		t.Errorf("gone webhook: %v", err)
	}
	// A network failure does not reveal the URL (it is the credential).
	w.URL = StaticSecret("http://127.0.0.1:1/services/T/B/secret-token")
	if err := w.Deliver(context.Background(), ns[0]); err == nil || strings.Contains(err.Error(), "secret-token") {
		t.Errorf("unreachable webhook: %v", err)
	}
}

func TestLogSender(t *testing.T) {
	var buf bytes.Buffer
	deliverAll(t, &LogSender{W: &buf, Routes: Routes{Default: "#incidents"}, Renderer: testRenderer}, notifytest.Approved)
	out := buf.String()
	for _, want := range []string{
		"slack #incidents — new root message\n  │ HighErrorRate · prod\n",
		"slack #incidents — thread reply\n  │ :clipboard: *Plan (P0)*",
		"[Approve] [Reject]",
		"slack #incidents — root message updated\n  │ *Status* :white_check_mark: Verified | *Priority* :red_circle: P0",
		"*Started* 2026-11-26 01:00 UTC",
		"Alertmanager (http://alertmanager.example:9093/#/alerts",
		`_because rolloutHistory.newestRolloutAge < duration('30m') && errorDistribution.total > 0_`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if strings.Count(out, "new root message") != 1 {
		t.Errorf("root posted more than once:\n%s", out)
	}
}
