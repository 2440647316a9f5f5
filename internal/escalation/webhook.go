package escalation

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/remediator/remediator/internal/store"
)

// SendError is a failed delivery attempt, classified for the delivery loop.
type SendError struct {
	// Status is the HTTP status (0: no response).
	Status int
	// RetryAfter is what the receiver asked for (429 or 503 with
	// Retry-After); 0 when it did not say.
	RetryAfter time.Duration
	// Permanent: trying again cannot help (a 4xx other than 408, 425 and
	// 429; a target that is no longer configured).
	Permanent bool
	Err       error
}

func (e *SendError) Error() string { return e.Err.Error() }

func (e *SendError) Unwrap() error { return e.Err }

// Sender delivers outbox messages of one channel. A nil error means
// delivered; otherwise the error should be a *SendError (any other error
// is retried).
type Sender interface {
	Send(ctx context.Context, m store.OutboxMessage) error
}

// WebhookSender POSTs a message's payload, as is, to its target's URL.
type WebhookSender struct {
	// Targets by name: the targets as configured now. A message for a
	// target no longer configured fails permanently.
	Targets map[string]Webhook
	// Client defaults to a client that does not follow redirects.
	Client    *http.Client
	UserAgent string
	// Now is the clock Retry-After dates are read against.
	Now func() time.Time
}

// NewWebhookSender indexes the webhooks of every level by name.
func NewWebhookSender(t Targets, userAgent string) *WebhookSender {
	s := &WebhookSender{Targets: map[string]Webhook{}, UserAgent: userAgent}
	for _, l := range t {
		for _, w := range l.Webhooks {
			s.Targets[w.Name] = w
		}
	}
	return s
}

var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// Send implements Sender.
func (s *WebhookSender) Send(ctx context.Context, m store.OutboxMessage) error {
	wh, ok := s.Targets[m.Target]
	if !ok {
		return &SendError{Permanent: true, Err: fmt.Errorf("webhook target %q is not configured (any more)", m.Target)}
	}
	timeout := wh.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, wh.URL, bytes.NewReader(m.Payload))
	if err != nil {
		return &SendError{Permanent: true, Err: fmt.Errorf("webhook %s: %w", m.Target, err)}
	}
	req.Header.Set("Content-Type", "application/json")
	if s.UserAgent != "" {
		req.Header.Set("User-Agent", s.UserAgent)
	}
	// The same on every attempt: receivers may deduplicate on it.
	req.Header.Set("Idempotency-Key", fmt.Sprintf("%s/%s", m.EscalationID, m.Target))
	if wh.BearerTokenFile != "" {
		b, err := os.ReadFile(wh.BearerTokenFile)
		if err != nil {
			return &SendError{Err: fmt.Errorf("webhook %s: bearer token: %w", m.Target, err)}
		}
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(b)))
	}
	client := s.Client
	if client == nil {
		client = noRedirects
	}
	resp, err := client.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("no response within %s: %w", timeout, err)
		}
		return &SendError{Err: fmt.Errorf("webhook %s: %w", m.Target, err)}
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // let the connection be reused
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	se := &SendError{Status: resp.StatusCode,
		Err: fmt.Errorf("webhook %s: HTTP %d: %s", m.Target, resp.StatusCode, strings.TrimSpace(string(snippet)))}
	switch c := resp.StatusCode; {
	case c == http.StatusTooManyRequests || c == http.StatusServiceUnavailable:
		se.RetryAfter = retryAfter(resp.Header.Get("Retry-After"), s.now())
	case c == http.StatusRequestTimeout || c == http.StatusTooEarly || c >= 500:
	default: // other 4xx, and 3xx (redirects are not followed: a POST must not turn into a GET)
		se.Permanent = true
	}
	return se
}

func (s *WebhookSender) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// retryAfter reads a Retry-After header: seconds, or an HTTP date.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil {
		if n < 0 {
			return 0
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}
