// Package e2e holds end-to-end tests that drive the service through real
// outside components (the real Alertmanager binary).
package e2e

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/remediator/remediator/internal/incident"
	"github.com/remediator/remediator/internal/pipeline"
	"github.com/remediator/remediator/internal/planner"
	"github.com/remediator/remediator/internal/policy"
	"github.com/remediator/remediator/internal/probe"
	"github.com/remediator/remediator/internal/server"
	"github.com/remediator/remediator/internal/store"
	"github.com/remediator/remediator/internal/store/open"
	"github.com/remediator/remediator/internal/testbed"
	"github.com/remediator/remediator/internal/worker"
)

type service struct {
	store store.Store
	url   string
	token string
}

// startService runs the service in-process on a real SQLite store, with its
// worker, behind a real HTTP listener with bearer auth.
func startService(t *testing.T) *service {
	t.Helper()
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("e2e-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	policies, err := policy.Load(filepath.Join("..", "..", "policies"), policy.DefaultCatalog())
	if err != nil {
		t.Fatal(err)
	}
	st, err := open.Open(context.Background(), "sqlite://"+filepath.Join(dir, "r.db"))
	if err != nil {
		t.Fatal(err)
	}
	bearer, err := server.NewSecretFile(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	log := zap.NewNop()
	wk := worker.New(worker.Options{Name: "e2e", Queue: st, Mode: "dry-run", Concurrency: 2,
		Pipeline: pipeline.Seq{pipeline.Load(st), pipeline.Triage(), planner.Stage(&planner.Planner{
			Policies: func() *policy.Set { return policies },
			Probes:   probe.New(probe.Config{}), // no cluster: cluster probes fail, conditions are false
		})},
		Lease: 10 * time.Second, Poll: 100 * time.Millisecond, Log: log})
	reg := prometheus.NewRegistry()
	srv := server.New(server.Options{Store: st, Kicker: wk, Auth: &server.Authenticator{Bearer: bearer},
		Log: log, Metrics: server.NewMetrics(reg), Gatherer: reg, Mode: "dry-run"})
	hs := httptest.NewServer(srv)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = wk.Run(ctx); close(done) }()
	t.Cleanup(func() { hs.Close(); cancel(); <-done; _ = st.Close() })
	return &service{store: st, url: hs.URL + "/webhook/alertmanager", token: tokenFile}
}

func (s *service) waitFor(t *testing.T, what string, ok func([]incident.Incident) bool) []incident.Incident {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		list, err := s.store.Incidents(context.Background(), store.IncidentFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if ok(list) {
			return list
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; incidents: %+v", what, list)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// An alert pushed into the real Alertmanager reaches the webhook with the
// bearer token and becomes one incident; Alertmanager's re-sends (repeat
// interval) and a second, unclustered Alertmanager sending the same alert
// (at-least-once HA delivery) stay that one incident; resolving the alert in
// Alertmanager closes it.
func TestAlertmanagerEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the real Alertmanager")
	}
	svc := startService(t)
	opts := testbed.AlertmanagerOptions{WebhookURL: svc.url, BearerTokenFile: svc.token,
		GroupWait: 200 * time.Millisecond, GroupInterval: time.Second, RepeatInterval: 2 * time.Second}
	am1 := testbed.StartTestAlertmanager(t, opts)
	am2 := testbed.StartTestAlertmanager(t, opts)

	alert := testbed.Alert{
		Labels:      map[string]string{"alertname": "HighErrorRate", "namespace": "prod", "deployment": "platform-service", "severity": "critical"},
		Annotations: map[string]string{"summary": "5xx above 5%"},
		StartsAt:    time.Now().UTC().Add(-time.Minute).Truncate(time.Second),
	}
	ctx := context.Background()
	if err := am1.PushAlerts(ctx, alert); err != nil {
		t.Fatal(err)
	}
	list := svc.waitFor(t, "the incident", func(l []incident.Incident) bool { return len(l) > 0 })
	id := list[0].ID
	if list[0].AlertName != "HighErrorRate" || list[0].Namespace != "prod" || list[0].Status != incident.StatusFiring {
		t.Fatalf("incident %+v", list[0])
	}

	if err := am2.PushAlerts(ctx, alert); err != nil {
		t.Fatal(err)
	}
	list = svc.waitFor(t, "re-sends from both Alertmanagers", func(l []incident.Incident) bool {
		return len(l) == 1 && l[0].Duplicates >= 3
	})
	if len(list) != 1 || list[0].ID != id {
		t.Fatalf("re-sends made new incidents: %+v", list)
	}

	if err := am1.ResolveAlerts(ctx, alert); err != nil {
		t.Fatal(err)
	}
	if err := am2.ResolveAlerts(ctx, alert); err != nil {
		t.Fatal(err)
	}
	list = svc.waitFor(t, "the resolve", func(l []incident.Incident) bool {
		return len(l) == 1 && l[0].Status == incident.StatusResolved
	})
	_, events, err := svc.store.Incident(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, e := range events {
		counts[e.Type]++
	}
	if counts[incident.EventReceived] != 1 || counts[incident.EventResolved] != 1 ||
		counts[planner.EventMatched] != 1 || counts[planner.EventDiagnosed] != 1 || counts[planner.EventPlanned] != 1 {
		t.Fatalf("timeline counts %v", counts)
	}
	if list[0].ResolvedAt == nil {
		t.Fatal("resolvedAt not set")
	}
}
