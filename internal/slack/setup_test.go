package slack

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/remediator/remediator/internal/config"
	"github.com/remediator/remediator/internal/executor"
	"github.com/remediator/remediator/internal/incident"
	"github.com/remediator/remediator/internal/notify"
	"github.com/remediator/remediator/internal/notify/notifytest"
	"github.com/remediator/remediator/internal/store"
	"github.com/remediator/remediator/internal/store/sqlite"
)

func fileSecret(path string) (Secret, error) {
	if _, err := os.ReadFile(path); err != nil {
		return nil, err
	}
	return func() ([]byte, error) { return os.ReadFile(path) }, nil
}

func TestNew(t *testing.T) {
	dir := t.TempDir()
	for name, v := range map[string]string{"token": "xoxb-1", "secret": testSecret, "webhook": "https://hooks.slack.com/services/T/B/x"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "r.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	deps := Deps{Secret: fileSecret, Store: st, Decider: &fakeDecider{}, Recorder: &fakeRecorder{}}

	s, err := New(config.SlackConfig{BotTokenFile: filepath.Join(dir, "token"), SigningSecretFile: filepath.Join(dir, "secret"),
		DefaultChannel: "#incidents", Approvers: config.SlackApproversConfig{Users: []string{"U0123"}},
		OncallMentions: map[string]string{"P0": "<!here>"}}, deps)
	if err != nil {
		t.Fatal(err)
	}
	snd, ok := s.Deliverer.(*Sender)
	if !ok || s.Interactions == nil || !snd.Renderer.Buttons || snd.Renderer.Mentions["P0"] != "<!here>" || snd.Routes.Default != "#incidents" {
		t.Fatalf("bot setup: %+v", s)
	}
	if sec, _ := s.Interactions.secret(); sec != testSecret {
		t.Errorf("signing secret %q", sec)
	}

	s, err = New(config.SlackConfig{WebhookURLFile: filepath.Join(dir, "webhook")}, deps)
	if _, ok := s.Deliverer.(*WebhookSender); err != nil || !ok || s.Interactions != nil {
		t.Fatalf("webhook setup: %+v %v", s, err)
	}
	if _, err := New(config.SlackConfig{BotTokenFile: filepath.Join(dir, "missing"), DefaultChannel: "#x"}, deps); err == nil ||
		!strings.Contains(err.Error(), "slack.bot_token_file") {
		t.Errorf("missing token file: %v", err)
	}
	var buf bytes.Buffer
	deps.LogTo = &buf
	s, _ = New(config.SlackConfig{}, deps)
	if _, ok := s.Deliverer.(*LogSender); !ok {
		t.Fatalf("unconfigured with LogTo: %+v", s)
	}
	deps.LogTo = nil
	if s, _ = New(config.SlackConfig{}, deps); s.Deliverer != nil || s.Interactions != nil {
		t.Fatalf("unconfigured: %+v", s)
	}
}

func TestTimelineRecorder(t *testing.T) {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "r.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	n := notifytest.Incident("x", "firing")
	res, err := st.Ingest(context.Background(), &incident.Notification{ID: "n1", ReceivedAt: notifytest.T0, Status: "firing", Body: []byte("{}"),
		Alerts: []incident.Alert{{Status: "firing", Fingerprint: n.Fingerprint, StartsAt: n.StartsAt, Labels: n.Labels, Annotations: n.Annotations}}})
	if err != nil {
		t.Fatal(err)
	}
	id := res.Alerts[0].IncidentID
	r := TimelineRecorder{Store: st}
	r.Refused(context.Background(), id, "slack:U0STRANGER (mallory)", "not an approver")
	r.Refused(context.Background(), "", ActorUnverified, "bad signature")     // only logged
	r.Refused(context.Background(), "no-such-incident", "slack:U1", "replay") // only logged
	_, events, err := st.Incident(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	last := events[len(events)-1]
	if last.Type != EventApprovalRefused || last.Actor != "slack:U0STRANGER (mallory)" || !strings.Contains(last.Reason, "not an approver") {
		t.Errorf("timeline: %+v", events)
	}
}

// What the lead wires satisfies these interfaces as it is.
var (
	_ Decider       = (*executor.Executor)(nil)
	_ ThreadStore   = store.Store(nil)
	_ ReplayStore   = store.Store(nil)
	_ EventAppender = store.Store(nil)
	_ notify.Source = store.Store(nil)
)
