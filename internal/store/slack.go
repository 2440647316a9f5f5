package store

import (
	"context"
	"time"
)

// SlackRoot is an incident's root message in one Slack channel: the
// message that is updated in place as the incident moves, and that its
// step-by-step replies thread under.
type SlackRoot struct {
	// ChannelID is the channel as Slack answered chat.postMessage (C…):
	// chat.update needs the id, while routes may name a channel (#name).
	ChannelID string
	// TS is the message's timestamp, its id within the channel.
	TS string
}

// SlackState is what the Slack notifier (internal/slack) keeps in the
// store, so that every replica (and the next leader) threads under the same
// root message, recognises a replayed interaction request and continues
// the notifications where the last leader left off.
type SlackState interface {
	// RootTS returns the root message of an incident in a channel (as
	// routed); the zero SlackRoot, and no error, when there is none yet.
	RootTS(ctx context.Context, incidentID, channel string) (SlackRoot, error)
	// SetRootTS records (or replaces) the root message of an incident in a
	// channel.
	SetRootTS(ctx context.Context, incidentID, channel string, root SlackRoot) error
	// RememberSignature records the signature of an interaction request
	// received at at, kept until at+keep, and reports whether it is new:
	// false means a request with this signature was already seen within
	// its keep (a replay). Expired signatures are forgotten on the way.
	RememberSignature(ctx context.Context, signature string, at time.Time, keep time.Duration) (bool, error)
	// NotifyCursor returns how far the notification feed name has read
	// the audit trail: the seq of the last record it handled. ok is false
	// (and seq 0) when the feed never recorded one.
	NotifyCursor(ctx context.Context, name string) (seq int64, ok bool, err error)
	// SetNotifyCursor records (or replaces) the feed's cursor.
	SetNotifyCursor(ctx context.Context, name string, seq int64) error
}
