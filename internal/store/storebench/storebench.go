// Package storebench holds the benchmarks every store backend runs, so the
// numbers of SQLite and PostgreSQL compare like for like.
package storebench

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/remediator/remediator/internal/incident"
	"github.com/remediator/remediator/internal/store"
)

// notification builds a realistic notification: size alerts with the label
// and annotation sets Alertmanager sends, and a raw body of matching size.
func notification(prefix string, size int, startsAt time.Time) *incident.Notification {
	n := alertsOnly(prefix, size, startsAt)
	n.Body, _ = json.Marshal(map[string]any{"version": "4", "status": "firing", "receiver": "web\\.hook", "alerts": n.Alerts})
	return n
}

func alertsOnly(prefix string, size int, startsAt time.Time) *incident.Notification {
	alerts := make([]incident.Alert, size)
	for i := range alerts {
		alerts[i] = incident.Alert{
			Status:      incident.StatusFiring,
			Fingerprint: fmt.Sprintf("%s%08x", prefix, i),
			StartsAt:    startsAt,
			Labels: map[string]string{
				"alertname": "HighErrorRate", "namespace": "shop", "service": "checkout",
				"pod": fmt.Sprintf("checkout-7d9f8-%05d", i), "severity": "critical", "job": "kubernetes-pods",
			},
			Annotations: map[string]string{
				"summary":     "High 5xx rate on checkout",
				"description": "More than 5% of requests to checkout failed in the last 5 minutes.",
				"runbook_url": "https://runbooks.example.com/HighErrorRate",
			},
			GeneratorURL: "http://prometheus:9090/graph?g0.expr=rate%28http_requests_total%7Bcode%3D~%225..%22%7D%5B5m%5D%29",
		}
	}
	return &incident.Notification{
		ID:            incident.NewID(),
		CorrelationID: incident.NewID(),
		Receiver:      "web\\.hook",
		GroupKey:      `{}:{alertname="HighErrorRate"}`,
		Status:        incident.StatusFiring,
		ExternalURL:   "http://alertmanager:9093",
		Alerts:        alerts,
	}
}

// Ingest10Alerts ingests 10-alert notifications from many goroutines
// (b.SetParallelism(64): 64×GOMAXPROCS concurrent clients), half new
// episodes and half re-sends, and reports notifications/s.
func Ingest10Alerts(b *testing.B, s store.Store) {
	ctx := context.Background()
	var seq atomic.Int64
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	body := notification("x", 10, start).Body // a realistic body, shared: the store does not parse it
	b.ReportAllocs()
	b.SetParallelism(64)
	b.ResetTimer()
	began := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		var prev *incident.Notification
		for pb.Next() {
			i := seq.Add(1)
			var n *incident.Notification
			if i%2 == 0 && prev != nil {
				n = alertsOnly("", 0, start) // fresh ID, same alerts: an HA re-send
				n.Alerts = prev.Alerts
			} else {
				n = alertsOnly(fmt.Sprintf("%08x", i), 10, start)
				prev = n
			}
			n.Body = body
			if _, err := s.Ingest(ctx, n); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(began).Seconds(), "notifications/s")
}

// IngestLarge ingests one notification of size new alerts per iteration.
func IngestLarge(b *testing.B, s store.Store, size int) {
	ctx := context.Background()
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		n := notification(fmt.Sprintf("%08x", i), size, start)
		b.StartTimer()
		r, err := s.Ingest(ctx, n)
		if err != nil {
			b.Fatal(err)
		}
		if r.Count(incident.OutcomeNew) != size {
			b.Fatalf("%d new, want %d", r.Count(incident.OutcomeNew), size)
		}
	}
}
