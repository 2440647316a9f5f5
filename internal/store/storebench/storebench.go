// Package storebench holds the benchmarks every store backend runs, so the
// numbers of SQLite and PostgreSQL compare like for like.
package storebench

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/remediator/remediator/internal/incident"
	"github.com/remediator/remediator/internal/store"
	"github.com/remediator/remediator/internal/store/audit"
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

// SealStore is what IngestAtRate needs to run the audit sealer next to
// intake (every store.Store has it).
type SealStore interface {
	store.Store
	audit.Store
}

// IngestAtRate ingests 10-alert notifications of new episodes open loop at
// rate notifications/s for d per iteration (run it with -benchtime 1x),
// measuring each notification from its scheduled send time, so queueing
// is not hidden. With seal, the audit service's background sealer runs as
// in the service; every seal transaction is timed. It reports the latency
// percentiles (ms), the seal transactions' count and time, and what was
// left unsealed at the end.
func IngestAtRate(b *testing.B, s SealStore, rate int, d time.Duration, seal bool) {
	ctx := context.Background()
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	body := notification("x", 10, start).Body
	timed := &timedSealer{SealStore: s}
	var stop context.CancelFunc = func() {}
	sealerDone := make(chan struct{})
	if seal {
		var sctx context.Context
		sctx, stop = context.WithCancel(ctx)
		svc := audit.NewService(timed, audit.Options{})
		go func() { defer close(sealerDone); svc.Run(sctx) }()
	} else {
		close(sealerDone)
	}
	var (
		mu   sync.Mutex
		lats []time.Duration
		seq  atomic.Int64
	)
	cpu0 := cpuTime()
	for b.Loop() {
		interval := time.Second / time.Duration(rate)
		n := int(d / interval)
		began := time.Now()
		var wg sync.WaitGroup
		for i := range n {
			at := began.Add(time.Duration(i) * interval)
			time.Sleep(time.Until(at))
			wg.Add(1)
			go func() {
				defer wg.Done()
				no := alertsOnly(fmt.Sprintf("r%08x", seq.Add(1)), 10, start)
				no.Body = body
				if _, err := s.Ingest(ctx, no); err != nil {
					b.Error(err)
					return
				}
				l := time.Since(at)
				mu.Lock()
				lats = append(lats, l)
				mu.Unlock()
			}()
		}
		wg.Wait()
	}
	stop()
	<-sealerDone
	if len(lats) > 0 {
		b.ReportMetric(float64(cpuTime()-cpu0)/float64(time.Microsecond)/float64(len(lats)), "cpu-µs/notification")
	}
	slices.Sort(lats)
	pct := func(p float64) float64 {
		if len(lats) == 0 {
			return 0
		}
		return float64(lats[min(len(lats)-1, int(p*float64(len(lats))))]) / float64(time.Millisecond)
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(pct(1), "max-ms")
	b.ReportMetric(float64(timed.calls.Load()), "seal-txs")
	if c := timed.calls.Load(); c > 0 {
		b.ReportMetric(float64(timed.total.Load())/float64(c)/float64(time.Millisecond), "ms/seal-tx")
		b.ReportMetric(float64(timed.maxNs.Load())/float64(time.Millisecond), "max-ms/seal-tx")
	}
	if st, err := s.AuditState(ctx); err == nil {
		b.ReportMetric(float64(st.Unsealed), "unsealed")
	}
}

// timedSealer times SealAudit calls.
type timedSealer struct {
	SealStore
	calls, total, maxNs atomic.Int64
}

func (t *timedSealer) SealAudit(ctx context.Context, max int) (int, error) {
	began := time.Now()
	n, err := t.SealStore.SealAudit(ctx, max)
	d := int64(time.Since(began))
	t.calls.Add(1)
	t.total.Add(d)
	for {
		m := t.maxNs.Load()
		if d <= m || t.maxNs.CompareAndSwap(m, d) {
			break
		}
	}
	return n, err
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// IngestAndSeal ingests one notification of size new alerts per iteration
// and then seals whatever is left unsealed in transactions of 250 records,
// as the background sealer does: the store's whole work per record, intake
// and chain. (A store that seals in the writing transaction finds nothing
// left; one built with remediator_noseal does all the sealing here.)
func IngestAndSeal(b *testing.B, s SealStore, size int) {
	ctx := context.Background()
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b.ReportAllocs()
	sealed := 0
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		n := notification(fmt.Sprintf("s%07x", i), size, start)
		b.StartTimer()
		if _, err := s.Ingest(ctx, n); err != nil {
			b.Fatal(err)
		}
		for {
			k, err := s.SealAudit(ctx, 250)
			if err != nil {
				b.Fatal(err)
			}
			sealed += k
			if k < 250 {
				break
			}
		}
	}
	b.ReportMetric(float64(sealed)/float64(b.N), "sealed-apart/op")
}
