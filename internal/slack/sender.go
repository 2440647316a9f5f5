package slack

import (
	"context"
	"errors"
	"fmt"
	"sync"

	slackgo "github.com/slack-go/slack"
	"go.uber.org/zap"

	"github.com/remediator/remediator/internal/notify"
	"github.com/remediator/remediator/internal/store"
)

// Sender delivers notifications with a bot token: in each routed channel
// one root message per incident (chat.postMessage, its ts kept in
// Threads), updated in place when the status or priority changes
// (chat.update), and a thread reply per step (thread_ts = the root's ts).
// It implements notify.Deliverer. It never retries or sleeps itself: the
// outbox schedules retries from the typed errors, so delivery never holds
// up remediation.
type Sender struct {
	API      *Client
	Threads  ThreadStore
	Routes   Routes
	Renderer Renderer
	Log      *zap.Logger

	locks keyedMutex
}

var _ notify.Deliverer = (*Sender)(nil)

// Send is Deliver.
func (s *Sender) Send(ctx context.Context, n notify.Notification) error { return s.Deliver(ctx, n) }

// Deliver posts n to every channel Routes chooses for it. Delivery is at
// least once: after a failure in one channel the outbox retries the whole
// notification, and channels that already had it get it again (their root
// is only updated, never posted twice, once it is recorded).
func (s *Sender) Deliver(ctx context.Context, n notify.Notification) error {
	var errs []error
	for _, ch := range s.Routes.Channels(n) {
		if err := s.DeliverTo(ctx, n, ch); err != nil {
			errs = append(errs, fmt.Errorf("channel %s: %w", ch, err))
		}
	}
	return worst(errs)
}

// DeliverTo posts n to one channel (for an outbox that keeps one entry per
// channel: Channels lists them).
func (s *Sender) DeliverTo(ctx context.Context, n notify.Notification, channel string) error {
	// One incident's messages in one channel one at a time in this process,
	// so two steps delivered together cannot both post a root.
	unlock := s.locks.lock(n.IncidentID + "\x00" + channel)
	defer unlock()

	if s.API == nil || s.Threads == nil {
		return &notify.Permanent{Err: errors.New("slack: sender has no API client or thread store")}
	}
	api, err := s.API.client()
	if err != nil {
		return &notify.Permanent{Err: err}
	}
	root, err := s.Threads.RootTS(ctx, n.IncidentID, channel)
	if err != nil {
		return &notify.Retryable{Err: fmt.Errorf("read root message: %w", err)}
	}
	switch {
	case root.TS == "":
		if root, err = s.postRoot(ctx, api, n, channel); err != nil {
			return err
		}
	case n.RootChanged:
		m := s.Renderer.Root(n)
		_, _, _, err := api.UpdateMessageContext(ctx, root.ChannelID, root.TS, options(m)...)
		switch {
		case rootGone(err):
			s.log().Warn("root message gone; posting a new one", zap.String("incident", n.IncidentID),
				zap.String("channel", channel), zap.Error(err))
			if root, err = s.postRoot(ctx, api, n, channel); err != nil {
				return err
			}
		case err != nil:
			return classify(fmt.Errorf("chat.update: %w", err))
		}
	}
	reply, ok := s.Renderer.Reply(n)
	if !ok {
		return nil
	}
	opts := append(options(reply), slackgo.MsgOptionTS(root.TS))
	if reply.Broadcast {
		opts = append(opts, slackgo.MsgOptionBroadcast())
	}
	if _, _, err := api.PostMessageContext(ctx, root.ChannelID, opts...); err != nil {
		return classify(fmt.Errorf("chat.postMessage (reply): %w", err))
	}
	return nil
}

// postRoot posts the incident's root message, as the incident stands at
// n, and records it.
func (s *Sender) postRoot(ctx context.Context, api *slackgo.Client, n notify.Notification, channel string) (store.SlackRoot, error) {
	chID, ts, err := api.PostMessageContext(ctx, channel, options(s.Renderer.Root(n))...)
	if err != nil {
		return store.SlackRoot{}, classify(fmt.Errorf("chat.postMessage (root): %w", err))
	}
	root := store.SlackRoot{ChannelID: chID, TS: ts}
	if root.ChannelID == "" {
		root.ChannelID = channel
	}
	if err := s.Threads.SetRootTS(ctx, n.IncidentID, channel, root); err != nil {
		// Posted but not recorded: a retry posts another root message.
		return store.SlackRoot{}, &notify.Retryable{Err: fmt.Errorf("record root message %s: %w", ts, err)}
	}
	return root, nil
}

func (s *Sender) log() *zap.Logger {
	if s.Log != nil {
		return s.Log
	}
	return zap.NewNop()
}

// options are the chat.postMessage/chat.update options of m: its blocks,
// its fallback text, no link previews (they would dwarf the message).
func options(m Message) []slackgo.MsgOption {
	return []slackgo.MsgOption{
		slackgo.MsgOptionText(m.Text, false),
		slackgo.MsgOptionBlocks(m.Blocks...),
		slackgo.MsgOptionDisableLinkUnfurl(),
		slackgo.MsgOptionDisableMediaUnfurl(),
	}
}

// worst combines per-channel errors so the outbox does the most cautious
// thing: wait the longest Retry-After, retry when any channel may succeed
// later, give up only when every failure is permanent.
func worst(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	joined := errors.Join(errs...)
	var after *notify.RetryAfter
	retry := false
	for _, err := range errs {
		var ra *notify.RetryAfter
		var p *notify.Permanent
		switch {
		case errors.As(err, &ra):
			if after == nil || ra.After > after.After {
				after = ra
			}
		case !errors.As(err, &p):
			retry = true
		}
	}
	switch {
	case after != nil:
		return &notify.RetryAfter{After: after.After, Err: joined}
	case retry:
		return &notify.Retryable{Err: joined}
	}
	return &notify.Permanent{Err: joined}
}

// keyedMutex serialises work per key.
type keyedMutex struct {
	mu sync.Mutex
	m  map[string]*keyed
}

type keyed struct {
	mu   sync.Mutex
	refs int
}

func (k *keyedMutex) lock(key string) (unlock func()) {
	k.mu.Lock()
	if k.m == nil {
		k.m = map[string]*keyed{}
	}
	e := k.m[key]
	if e == nil {
		e = &keyed{}
		k.m[key] = e
	}
	e.refs++
	k.mu.Unlock()
	e.mu.Lock()
	return func() {
		e.mu.Unlock()
		k.mu.Lock()
		if e.refs--; e.refs == 0 {
			delete(k.m, key)
		}
		k.mu.Unlock()
	}
}
