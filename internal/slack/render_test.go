package slack

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/remediator/remediator/internal/incident"
	"github.com/remediator/remediator/internal/notify"
	"github.com/remediator/remediator/internal/notify/notifytest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func fixtureOptions() notify.Options {
	return notify.Options{AlertmanagerURL: notifytest.AlertmanagerURL, ServiceURL: notifytest.ServiceURL}
}

// notification builds the notification of the first event of type typ in
// a fixture timeline.
func notification(t testing.TB, story func() (incident.Incident, []incident.Event), typ string) notify.Notification {
	t.Helper()
	inc, events := story()
	i := notifytest.Find(events, typ)
	if i < 0 {
		t.Fatalf("no %s event in the fixture", typ)
	}
	n, ok := notify.Build(inc, events[:i], events[i], fixtureOptions())
	if !ok {
		t.Fatalf("%s makes no notification", typ)
	}
	return n
}

var testRenderer = Renderer{
	Mentions: map[string]string{"P0": "<!subteam^S0123ABCD>", "P1": "<@U0PRIMARY>"},
	Buttons:  true,
}

// golden compares v, as indented JSON, with testdata/name.json.
func golden(t *testing.T, name string, v any) {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	// Readable: <, > and & as themselves (the same JSON).
	b := strings.NewReplacer(`\u003c`, "<", `\u003e`, ">", `\u0026`, "&").Replace(buf.String())
	buf.Reset()
	buf.WriteString(b)
	path := filepath.Join("testdata", name+".json")
	if *update {
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/slack -run Golden -update)", err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("%s differs from the golden file (review, then -update):\n%s", path, buf.String())
	}
}

// The messages of every step, as a bot posts them: the root message when
// the step changes it (or first creates it) and the thread reply.
func TestGoldenBot(t *testing.T) {
	for _, tc := range []struct {
		name  string
		story func() (incident.Incident, []incident.Event)
		event string
	}{
		{"firing", notifytest.Approved, "received"},
		{"plan", notifytest.Approved, "planned"},
		{"proposal", notifytest.Approved, "proposed"},
		{"blocked", notifytest.Blocked, "blocked"},
		{"applied", notifytest.Approved, "applied"},
		{"verified", notifytest.Approved, "verified"},
		{"failed", notifytest.Failed, "failed"},
		{"escalated-p0", notifytest.Failed, "escalated"},
		{"resolved", notifytest.Approved, "resolved"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := notification(t, tc.story, tc.event)
			out := struct {
				Root  *Message `json:"root,omitempty"`
				Reply *Message `json:"reply,omitempty"`
			}{}
			if n.RootChanged {
				m := testRenderer.Root(n)
				out.Root = &m
			}
			if m, ok := testRenderer.Reply(n); ok {
				out.Reply = &m
			}
			golden(t, tc.name, out)
		})
	}
}

// An incoming webhook gets one message per step: it names its incident
// and has no buttons.
func TestGoldenWebhook(t *testing.T) {
	n := notification(t, notifytest.Approved, "proposed")
	m := testRenderer.Webhook(n)
	golden(t, "webhook-proposal", m)
	if strings.Contains(m.PlainText(), "[Approve]") {
		t.Error("webhook message has buttons")
	}
}

func TestRenderEscapes(t *testing.T) {
	n := notification(t, notifytest.Approved, "diagnosed")
	n.Summary = "<!channel> & <http://evil|click>"
	m, _ := testRenderer.Reply(n)
	txt := m.PlainText()
	if strings.Contains(txt, "<!channel>") || !strings.Contains(txt, "&lt;!channel&gt; &amp; &lt;http://evil|click&gt;") {
		t.Errorf("not escaped: %s", txt)
	}
}

func TestRenderWithoutButtons(t *testing.T) {
	n := notification(t, notifytest.Approved, "proposed")
	m, _ := Renderer{}.Reply(n)
	txt := m.PlainText()
	if strings.Contains(txt, "[Approve]") || !strings.Contains(txt, "POST /api/v1/incidents/"+n.IncidentID+"/approve") {
		t.Errorf("proposal without buttons:\n%s", txt)
	}
	// The escalation mentions on-call only when configured for its priority.
	n = notification(t, notifytest.Blocked, "escalated")
	m, _ = testRenderer.Reply(n)
	if !strings.HasPrefix(m.Text, "<@U0PRIMARY> ") || !m.Broadcast {
		t.Errorf("P1 escalation: %q broadcast %v", m.Text, m.Broadcast)
	}
	m, _ = Renderer{}.Reply(n)
	if strings.Contains(m.Text, "<@") {
		t.Errorf("mention without configuration: %q", m.Text)
	}
}

func TestPlainText(t *testing.T) {
	m := testRenderer.Root(notification(t, notifytest.Approved, "proposed"))
	want := []string{":red_circle: HighErrorRate · prod/platform-service", "*Status*", ":raised_hand: Awaiting approval", "*Change* `rollback platform-service rev 7 → 6"}
	for _, w := range want {
		if !strings.Contains(m.PlainText(), w) {
			t.Errorf("plain text lacks %q:\n%s", w, m.PlainText())
		}
	}
}
