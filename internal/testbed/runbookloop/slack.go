package runbookloop

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// SlackMessage is one message the Slack stand-in (slack.log_file) wrote.
type SlackMessage struct {
	Channel string
	// What: "new root message", "root message updated" or "thread reply".
	What string
	Text string
}

// The kinds of SlackMessage.
const (
	SlackRoot   = "new root message"
	SlackUpdate = "root message updated"
	SlackReply  = "thread reply"
)

func (m SlackMessage) String() string {
	return "slack " + m.Channel + " — " + m.What + "\n  │ " + strings.ReplaceAll(m.Text, "\n", "\n  │ ")
}

// ParseSlackLog splits what the Slack stand-in wrote into messages: a line
// "slack CHANNEL — WHAT", then the text's lines, each indented "  │ ".
func ParseSlackLog(b []byte) []SlackMessage {
	var out []SlackMessage
	for _, line := range strings.Split(string(b), "\n") {
		if text, ok := strings.CutPrefix(line, "  │ "); ok && len(out) > 0 {
			m := &out[len(out)-1]
			if m.Text != "" {
				m.Text += "\n"
			}
			m.Text += text
			continue
		}
		if head, ok := strings.CutPrefix(line, "slack "); ok {
			if ch, what, ok := strings.Cut(head, " — "); ok {
				out = append(out, SlackMessage{Channel: ch, What: what})
			}
		}
	}
	return out
}

// SlackMessages reads what the Slack stand-in has written so far.
func (l *Loop) SlackMessages() []SlackMessage {
	l.t.Helper()
	b, err := os.ReadFile(l.SlackLog)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		l.t.Fatalf("slack: %v", err)
	}
	return ParseSlackLog(b)
}

// CheckSlack waits until the Slack stand-in has written, in this order,
// messages containing each of want (the feed follows the audit trail, about
// a second behind), then checks that they are all one incident's thread in
// SlackChannel: one root message, linking to incident id. It returns the
// messages.
func (l *Loop) CheckSlack(id string, want ...string) []SlackMessage {
	l.t.Helper()
	var msgs []SlackMessage
	err := poll(l.t.Context(), 15*time.Second, func() (bool, error) {
		msgs = l.SlackMessages()
		err := SlackInOrder(msgs, want...)
		return err == nil, err
	})
	if err != nil {
		l.t.Fatalf("slack: %v; messages:\n%s", err, joinMessages(msgs))
	}
	if err := SlackThread(msgs, l.Remediator, id); err != nil {
		l.t.Fatalf("slack: %v; messages:\n%s", err, joinMessages(msgs))
	}
	return msgs
}

// SlackInOrder checks that each of want occurs in the messages after the
// previous one (later in the same message, or in a later message).
func SlackInOrder(msgs []SlackMessage, want ...string) error {
	i, off := 0, 0
	for _, w := range want {
		for ; i < len(msgs); i, off = i+1, 0 {
			if j := strings.Index(msgs[i].Text[off:], w); j >= 0 {
				off += j + len(w)
				break
			}
		}
		if i == len(msgs) {
			return fmt.Errorf("no message with %q (after the previous ones of %q)", w, want)
		}
	}
	return nil
}

// SlackThread checks that msgs are one incident's thread in SlackChannel:
// the first is the only root message and it links to the incident on the
// service at base.
func SlackThread(msgs []SlackMessage, base, id string) error {
	if len(msgs) == 0 {
		return errors.New("no messages")
	}
	link := base + "/api/v1/incidents/" + id
	for i, m := range msgs {
		switch {
		case m.Channel != SlackChannel:
			return fmt.Errorf("message %d in %s, want %s", i, m.Channel, SlackChannel)
		case (i == 0) != (m.What == SlackRoot):
			return fmt.Errorf("message %d is a %s: want one root message, first", i, m.What)
		case i == 0 && !strings.Contains(m.Text, link):
			return fmt.Errorf("the root message does not link to %s", link)
		}
	}
	return nil
}

func joinMessages(msgs []SlackMessage) string {
	parts := make([]string, len(msgs))
	for i, m := range msgs {
		parts[i] = m.String()
	}
	return strings.Join(parts, "\n")
}
