package executor

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the executor's Prometheus metrics.
type Metrics struct {
	Actions        *prometheus.CounterVec   // remediator_actions_total{action,outcome,mode}
	GuardBlocks    *prometheus.CounterVec   // remediator_guard_blocks_total{guard}
	ActionDuration *prometheus.HistogramVec // remediator_action_duration_seconds{action}
	TimeToRemedy   prometheus.Histogram     // remediator_time_to_remediate_seconds
}

// NewMetrics registers the executor's metrics on reg (nil: unregistered,
// for tests).
func NewMetrics(reg prometheus.Registerer, guards []string) *Metrics {
	m := &Metrics{
		Actions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "remediator_actions_total",
			Help: "Remediation actions by action, outcome (proposed, blocked, applied, failed, verified, ineffective, escalated) and mode.",
		}, []string{"action", "outcome", "mode"}),
		GuardBlocks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "remediator_guard_blocks_total",
			Help: "Plans blocked, by the guard that blocked them.",
		}, []string{"guard"}),
		ActionDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "remediator_action_duration_seconds",
			Help:    "Time Apply took, until the API server acknowledged the change.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"action"}),
		TimeToRemedy: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "remediator_time_to_remediate_seconds",
			Help:    "From the webhook that opened the incident to the change acknowledged by the API server (automatic actions only).",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}),
	}
	for _, g := range guards {
		m.GuardBlocks.WithLabelValues(g)
	}
	if reg != nil {
		reg.MustRegister(m.Actions, m.GuardBlocks, m.ActionDuration, m.TimeToRemedy)
	}
	return m
}
