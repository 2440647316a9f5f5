package escalation

import (
	"context"
	"encoding/json"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/remediator/remediator/internal/store"
)

// Metrics are escalation's counters. The gauges (open incidents by
// priority, outbox depth) are read from the store at scrape time by
// StateCollector, so every replica reports the same numbers.
type Metrics struct {
	Escalations   *prometheus.CounterVec // remediator_escalations_total{priority,reason}
	Notifications *prometheus.CounterVec // remediator_notifications_total{channel,outcome}
}

// NewMetrics registers the counters on reg (nil: unregistered, for tests).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Escalations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "remediator_escalations_total",
			Help: "Escalations recorded, by the priority handed over at and the reason (deadline, failed, blocked, ineffective, no-remedy, p0).",
		}, []string{"priority", "reason"}),
		Notifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "remediator_notifications_total",
			Help: "Notification delivery attempts, by channel (webhook: escalation webhooks; slack: the Slack feed) and outcome (sent, retry, failed; slack also gave_up).",
		}, []string{"channel", "outcome"}),
	}
	for _, p := range store.Priorities {
		for _, r := range Reasons {
			m.Escalations.WithLabelValues(p, r)
		}
	}
	for _, o := range []string{"sent", "retry", "failed"} {
		m.Notifications.WithLabelValues(ChannelWebhook, o)
	}
	if reg != nil {
		reg.MustRegister(m.Escalations, m.Notifications)
	}
	return m
}

// StateReader is what StateCollector reads.
type StateReader interface {
	OpenIncidents(ctx context.Context) (map[string]int, error)
	OutboxDepth(ctx context.Context) (int, error)
}

// StateCollector exports remediator_incidents_open{priority} and
// remediator_outbox_depth, read from the store (two index-only counts) at
// each scrape. When the store does not answer, the gauges are left out of
// that scrape.
type StateCollector struct {
	Store   StateReader
	Timeout time.Duration // per scrape; default 2s
	Log     *zap.Logger
}

var (
	openDesc = prometheus.NewDesc("remediator_incidents_open",
		"Firing incidents by priority (none: not planned, e.g. no policy matches).", []string{"priority"}, nil)
	depthDesc = prometheus.NewDesc("remediator_outbox_depth",
		"Escalation notifications waiting to be delivered (pending or being sent).", nil, nil)
)

// Describe implements prometheus.Collector.
func (c *StateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- openDesc
	ch <- depthDesc
}

// Collect implements prometheus.Collector.
func (c *StateCollector) Collect(ch chan<- prometheus.Metric) {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if open, err := c.Store.OpenIncidents(ctx); err != nil {
		c.warn("open incidents", err)
	} else {
		for _, p := range append(append([]string(nil), store.Priorities...), "") {
			label := p
			if label == "" {
				label = "none"
			}
			ch <- prometheus.MustNewConstMetric(openDesc, prometheus.GaugeValue, float64(open[p]), label)
		}
	}
	if n, err := c.Store.OutboxDepth(ctx); err != nil {
		c.warn("outbox depth", err)
	} else {
		ch <- prometheus.MustNewConstMetric(depthDesc, prometheus.GaugeValue, float64(n))
	}
}

func (c *StateCollector) warn(what string, err error) {
	if c.Log != nil {
		c.Log.Warn("metrics: cannot read "+what, zap.Error(err))
	}
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		b, _ = json.Marshal(map[string]string{"marshalError": err.Error()})
	}
	return b
}
