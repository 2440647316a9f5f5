package slack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"go.uber.org/zap"

	"github.com/remediator/remediator/internal/config"
	"github.com/remediator/remediator/internal/incident"
	"github.com/remediator/remediator/internal/notify"
	"github.com/remediator/remediator/internal/store"
)

// Deps are what New needs besides the configuration.
type Deps struct {
	// Secret opens a secret file, e.g. server.NewSecretFile(path) and its
	// Value (re-read when the file changes).
	Secret func(path string) (Secret, error)
	// Store keeps root messages and recent interaction signatures
	// (store.Store).
	Store interface {
		ThreadStore
		ReplayStore
	}
	Decider  Decider  // the executor
	Recorder Recorder // e.g. TimelineRecorder
	Kicker   Kicker   // the worker
	Log      *zap.Logger
	// LogTo receives the messages as text when Slack is not configured
	// (make demo); nil: no Deliverer then.
	LogTo io.Writer
}

// Setup is Slack as configured.
type Setup struct {
	// Deliverer is what the Feed calls: a Sender (bot token), a
	// WebhookSender (incoming webhook), a LogSender (not configured, LogTo
	// set) or nil.
	Deliverer notify.Deliverer
	// Interactions serves the buttons (bot token and signing secret); nil
	// otherwise. Mount it outside the API's authentication.
	Interactions *Interactions
}

// New builds Slack from its configuration (config.SlackConfig, validated).
func New(cfg config.SlackConfig, d Deps) (Setup, error) {
	routes := Routes{Default: cfg.DefaultChannel, ByPriority: cfg.ChannelsByPriority,
		ByNamespace: cfg.ChannelsByNamespace, ByLabel: cfg.ChannelsByLabel}
	r := Renderer{Mentions: cfg.OncallMentions}
	if !cfg.Enabled() {
		if d.LogTo == nil {
			return Setup{}, nil
		}
		return Setup{Deliverer: &LogSender{W: d.LogTo, Routes: routes, Renderer: r}}, nil
	}
	if d.Secret == nil {
		return Setup{}, errors.New("slack: no way to read secret files")
	}
	if cfg.WebhookURLFile != "" {
		u, err := d.Secret(cfg.WebhookURLFile)
		if err != nil {
			return Setup{}, fmt.Errorf("slack.webhook_url_file: %w", err)
		}
		return Setup{Deliverer: &WebhookSender{URL: u, Renderer: r}}, nil
	}
	if d.Store == nil {
		return Setup{}, errors.New("slack: a bot token needs a store for its root messages")
	}
	tok, err := d.Secret(cfg.BotTokenFile)
	if err != nil {
		return Setup{}, fmt.Errorf("slack.bot_token_file: %w", err)
	}
	client := &Client{Token: tok, APIURL: cfg.APIURL}
	var s Setup
	if cfg.SigningSecretFile != "" {
		sec, err := d.Secret(cfg.SigningSecretFile)
		if err != nil {
			return Setup{}, fmt.Errorf("slack.signing_secret_file: %w", err)
		}
		if d.Decider == nil {
			return Setup{}, errors.New("slack: the buttons need a Decider")
		}
		approvers := &Approvers{Users: cfg.Approvers.Users, Usergroups: cfg.Approvers.Usergroups, Members: client.UserGroupMembers}
		s.Interactions = &Interactions{SigningSecret: sec, Replay: d.Store, Approvers: approvers,
			Decider: d.Decider, Recorder: d.Recorder, Kicker: d.Kicker, Log: named(d.Log, "interactions")}
		// Buttons only where someone may press them.
		r.Buttons = len(cfg.Approvers.Users)+len(cfg.Approvers.Usergroups) > 0
	}
	s.Deliverer = &Sender{API: client, Threads: d.Store, Routes: routes, Renderer: r, Log: named(d.Log, "sender")}
	return s, nil
}

func named(l *zap.Logger, name string) *zap.Logger {
	if l == nil {
		return nil
	}
	return l.Named(name)
}

// EventApprovalRefused is the timeline event TimelineRecorder writes for a
// refused decision attempt from Slack.
const EventApprovalRefused = "approval-refused"

// EventAppender is the store's AppendEvents.
type EventAppender interface {
	AppendEvents(ctx context.Context, events ...incident.Event) error
}

// TimelineRecorder is a Recorder: it logs every refusal and writes those
// attributed to an incident (an approver check that failed, a replay of
// Slack's own request) on the incident's timeline. Unattributed ones (bad
// signature, stale) are only logged: anyone may send those.
type TimelineRecorder struct {
	Store EventAppender
	Log   *zap.Logger
	Now   func() time.Time
}

// Refused implements Recorder.
func (t TimelineRecorder) Refused(ctx context.Context, incidentID, actor, why string) {
	log := t.Log
	if log == nil {
		log = zap.NewNop()
	}
	log.Warn("slack decision refused", zap.String("incident", incidentID), zap.String("actor", actor), zap.String("why", why))
	if incidentID == "" || t.Store == nil {
		return
	}
	now := time.Now()
	if t.Now != nil {
		now = t.Now()
	}
	ev := incident.Event{IncidentID: incidentID, Time: now.UTC(), Type: EventApprovalRefused, Actor: actor,
		Reason: "decision from Slack refused: " + why}
	if err := t.Store.AppendEvents(ctx, ev); err != nil && !errors.Is(err, store.ErrNotFound) {
		log.Error("could not record a refused decision", zap.String("incident", incidentID), zap.Error(err))
	}
}
