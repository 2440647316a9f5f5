package main

import (
	"context"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/remediator/remediator/internal/config"
	"github.com/remediator/remediator/internal/escalation"
	"github.com/remediator/remediator/internal/policy"
	"github.com/remediator/remediator/internal/store"
	"github.com/remediator/remediator/internal/version"
)

// escalationSetup builds the escalator (priorities, deadlines,
// notifications through the outbox) and the outbox's delivery loop from
// the configuration, and registers their metrics.
func escalationSetup(cfg config.EscalationConfig, externalURL string, st store.Store, reg prometheus.Registerer, log *zap.Logger, owner string) (*escalation.Escalator, *escalation.Deliverer) {
	targets := escalationTargets(cfg)
	metrics := escalation.NewMetrics(reg)
	reg.MustRegister(&escalation.StateCollector{Store: st, Log: log})
	d := &escalation.Deliverer{
		Store:       st,
		Senders:     map[string]escalation.Sender{escalation.ChannelWebhook: escalation.NewWebhookSender(targets, "remediator/"+version.Version)},
		Owner:       owner,
		MaxBackoff:  cfg.Delivery.MaxBackoff.Duration,
		GiveUpAfter: cfg.Delivery.GiveUpAfter.Duration,
		Metrics:     metrics,
		Log:         log.Named("outbox"),
	}
	x := &escalation.Escalator{Store: st, Targets: targets, ExternalURL: externalURL, Metrics: metrics,
		Log: log, Kick: d.Kick}
	return x, d
}

func escalationTargets(cfg config.EscalationConfig) escalation.Targets {
	t := escalation.Targets{}
	for p, l := range cfg.Levels() {
		lvl := escalation.Level{Mention: l.Mention}
		for i, w := range l.Webhooks {
			lvl.Webhooks = append(lvl.Webhooks, escalation.Webhook{Name: w.WebhookName(p, i), URL: w.URL,
				BearerTokenFile: w.BearerTokenFile, Timeout: w.Timeout.Duration})
		}
		t[policy.Priority(p)] = lvl
	}
	return t
}

// alongside runs the worker's loop and, each in its own goroutine, the
// delivery loops (the outbox's, the Slack feed) together — all only on the
// leader — until ctx ends. A loop that is stuck (a channel down) never
// holds up the worker.
func alongside(ctx context.Context, run func(context.Context) error, loops ...func(context.Context) error) {
	var wg sync.WaitGroup
	for _, loop := range loops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = loop(ctx)
		}()
	}
	_ = run(ctx)
	wg.Wait()
}
