package slack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	slackgo "github.com/slack-go/slack"

	"github.com/remediator/remediator/internal/notify"
)

// WebhookSender delivers notifications to an incoming webhook: one message
// per step, naming its incident (a webhook cannot thread or update), no
// buttons. The webhook's URL fixes the channel. It implements
// notify.Deliverer.
type WebhookSender struct {
	// URL is the incoming-webhook URL (a secret: whoever has it can post).
	URL      Secret
	HTTP     *http.Client // default: 10 s timeout
	Renderer Renderer
}

var _ notify.Deliverer = (*WebhookSender)(nil)

// Send is Deliver.
func (s *WebhookSender) Send(ctx context.Context, n notify.Notification) error {
	return s.Deliver(ctx, n)
}

// Deliver posts n's message.
func (s *WebhookSender) Deliver(ctx context.Context, n notify.Notification) error {
	if s.URL == nil {
		return &notify.Permanent{Err: errors.New("slack: no webhook URL configured")}
	}
	raw, err := s.URL()
	u := strings.TrimSpace(string(raw))
	if u == "" {
		if err == nil {
			err = errors.New("slack: the webhook URL is empty")
		}
		return &notify.Permanent{Err: err}
	}
	if p, perr := url.Parse(u); perr != nil || (p.Scheme != "https" && p.Scheme != "http") || p.Host == "" {
		return &notify.Permanent{Err: errors.New("slack: the webhook URL is not an http(s) URL")}
	}
	hc := s.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	m := s.Renderer.Webhook(n)
	no := false
	msg := &slackgo.WebhookMessage{Text: m.Text, Blocks: &slackgo.Blocks{BlockSet: m.Blocks}, UnfurlLinks: &no, UnfurlMedia: &no}
	if err := slackgo.PostWebhookCustomHTTPContext(ctx, u, hc, msg); err != nil {
		// Never log or return the URL itself: it is the credential.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = fmt.Errorf("post to the webhook: %s: %w", ue.Op, ue.Err)
		}
		return classify(err)
	}
	return nil
}

// LogSender writes the messages it would send, as text, to W: what `make
// demo` shows when no Slack credentials are configured. Like Sender, it
// routes (when Routes has channels) and posts a root message once per
// incident and channel, then updates and replies.
type LogSender struct {
	W        io.Writer
	Routes   Routes
	Renderer Renderer

	mu    sync.Mutex
	roots map[string]bool
}

var _ notify.Deliverer = (*LogSender)(nil)

// Send is Deliver.
func (s *LogSender) Send(ctx context.Context, n notify.Notification) error { return s.Deliver(ctx, n) }

// Deliver writes n's messages.
func (s *LogSender) Deliver(_ context.Context, n notify.Notification) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.roots == nil {
		s.roots = map[string]bool{}
	}
	channels := s.Routes.Channels(n)
	if len(channels) == 0 {
		channels = []string{"(slack)"}
	}
	var b strings.Builder
	for _, ch := range channels {
		key := n.IncidentID + "\x00" + ch
		switch {
		case !s.roots[key]:
			s.roots[key] = true
			write(&b, ch, "new root message", s.Renderer.Root(n).PlainText())
		case n.RootChanged:
			// The status line is what changed.
			for _, l := range strings.Split(s.Renderer.Root(n).PlainText(), "\n") {
				if strings.HasPrefix(l, "*Status*") {
					write(&b, ch, "root message updated", l)
				}
			}
		}
		if m, ok := s.Renderer.Reply(n); ok {
			write(&b, ch, "thread reply", m.PlainText())
		}
	}
	_, err := io.WriteString(s.W, b.String())
	return err
}

func write(b *strings.Builder, channel, what, text string) {
	fmt.Fprintf(b, "slack %s — %s\n", channel, what)
	for _, l := range strings.Split(terminal(text), "\n") {
		b.WriteString("  │ " + l + "\n")
	}
}

// Slack's markup as a terminal shows it: dates and links by their labels,
// the escaped characters as themselves.
var (
	slackDate = regexp.MustCompile(`<!date\^[^|>]*\|([^>]*)>`)
	slackLink = regexp.MustCompile(`<(https?://[^|>]*)\|([^>]*)>`)
	unescape  = strings.NewReplacer("&lt;", "<", "&gt;", ">", "&amp;", "&")
)

func terminal(s string) string {
	s = slackDate.ReplaceAllString(s, "$1")
	s = slackLink.ReplaceAllString(s, "$2 ($1)")
	return unescape.Replace(s)
}
