package server

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are the service's HTTP and intake metrics. The first four carry the
// runbook's names, so its dashboards and queries work on this service too.
type Metrics struct {
	Requests          *prometheus.CounterVec
	Errors            *prometheus.CounterVec
	Duration          *prometheus.HistogramVec
	ActiveConnections prometheus.Gauge

	AlertsReceived         *prometheus.CounterVec
	AlertsDuplicate        prometheus.Counter
	NotificationsDuplicate prometheus.Counter
	NotificationsRejected  *prometheus.CounterVec
}

// NewMetrics creates the metrics and registers them (and the Go and process
// collectors) with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "http_requests_total",
			Help: "HTTP requests served, by method, route pattern and status code.",
		}, []string{"method", "route", "code"}),
		Errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "http_request_errors_total",
			Help: "HTTP requests answered with a 5xx status, by method, route pattern and status code.",
		}, []string{"method", "route", "code"}),
		Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "http_request_duration_seconds",
			Help:    "Time from request start to the last byte of the response.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"method", "route"}),
		ActiveConnections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "active_connections",
			Help: "Open client connections (new, active or idle).",
		}),
		AlertsReceived: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "remediator_alerts_received_total",
			Help: "Alerts received in webhook notifications, by alertname and status.",
		}, []string{"alertname", "status"}),
		AlertsDuplicate: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "remediator_alerts_duplicate_total",
			Help: "Alerts that re-sent an episode already on record (repeat interval, retries, HA peers).",
		}),
		NotificationsDuplicate: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "remediator_notifications_duplicate_total",
			Help: "Notifications in which every alert was a duplicate of an episode already on record.",
		}),
		NotificationsRejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "remediator_notifications_rejected_total",
			Help: "Webhook requests refused before storage, by reason (malformed, too_large, content_type, unauthorized, store_unavailable).",
		}, []string{"reason"}),
	}
	reg.MustRegister(m.Requests, m.Errors, m.Duration, m.ActiveConnections,
		m.AlertsReceived, m.AlertsDuplicate, m.NotificationsDuplicate, m.NotificationsRejected,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}
