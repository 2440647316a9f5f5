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
// root message and recognises a replayed interaction request.
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
}
