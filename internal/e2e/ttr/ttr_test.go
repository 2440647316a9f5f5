// Package ttr measures time to remediate: from the webhook that opens an
// incident to the change acknowledged by the Kubernetes API server, through
// the whole service (HTTP intake, SQLite store, worker, planner, guards,
// intent, Apply) against the test bed's real control plane.
//
//	go test ./internal/e2e/ttr -run '^$' -bench TimeToRemediate -benchtime 40x
package ttr

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/remediator/remediator/internal/action"
	"github.com/remediator/remediator/internal/executor"
	"github.com/remediator/remediator/internal/guard"
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

func TestMain(m *testing.M) { testbed.Main(m) }

type service struct {
	st    store.Store
	url   string
	token string
}

func start(b *testing.B, ns string) *service {
	env := testbed.Get(b)
	kube := env.RemediatorClient()
	dir := b.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("ttr\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	set, err := policy.Load("testdata", policy.DefaultCatalog())
	if err != nil {
		b.Fatal(err)
	}
	st, err := open.Open(context.Background(), "sqlite://"+filepath.Join(dir, "r.db"))
	if err != nil {
		b.Fatal(err)
	}
	acts := action.NewWithConfig(kube, env.RemediatorConfig())
	var all []action.Action
	for _, a := range acts {
		all = append(all, a)
	}
	env.GrantRemediator(ns, append(probe.AllRules(), action.Rules(all...)...)...)
	planr := &planner.Planner{Policies: func() *policy.Set { return set }, Probes: probe.New(probe.Config{Kube: kube}),
		Kube: kube, Actions: acts}
	g := guard.Settings{Namespaces: []string{ns}, MaxGlobalPerHour: 1_000_000}.WithDefaults()
	exec := &executor.Executor{
		Config: executor.Config{Mode: "dry-run", Guards: g, Owner: "ttr", VerifyPoll: 200 * time.Millisecond},
		Store:  st, Planner: planr, Actions: acts, Targets: executor.KubeTargets{Kube: kube},
		Policies: func() *policy.Set { return set }, Metrics: executor.NewMetrics(nil, guard.Names()), Log: zap.NewNop(),
	}
	wk := worker.New(worker.Options{Name: "ttr", Queue: st, Mode: "dry-run", Concurrency: 4,
		Pipeline: pipeline.Seq{pipeline.Load(st), exec.Stages()},
		Lease:    30 * time.Second, Poll: 200 * time.Millisecond, Log: zap.NewNop()})
	bearer, err := server.NewSecretFile(tokenFile)
	if err != nil {
		b.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	hs := httptest.NewServer(server.New(server.Options{Store: st, Kicker: wk, Auth: &server.Authenticator{Bearer: bearer},
		Log: zap.NewNop(), Metrics: server.NewMetrics(reg), Gatherer: reg, Mode: "dry-run"}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = wk.Run(ctx); close(done) }()
	b.Cleanup(func() { hs.Close(); cancel(); <-done; _ = st.Close() })
	return &service{st: st, url: hs.URL + "/webhook/alertmanager", token: "ttr"}
}

func (s *service) post(b *testing.B, status, alertname, ns, fp string, startsAt time.Time) {
	body, _ := json.Marshal(map[string]any{
		"version": "4", "groupKey": "{}:{alertname=\"" + alertname + "\"}", "status": status, "receiver": "remediator",
		"groupLabels": map[string]string{"alertname": alertname}, "commonLabels": map[string]string{}, "commonAnnotations": map[string]string{},
		"externalURL": "http://alertmanager.invalid",
		"alerts": []map[string]any{{
			"status": status, "fingerprint": fp, "startsAt": startsAt, "endsAt": map[bool]any{true: startsAt.Add(time.Second), false: "0001-01-01T00:00:00Z"}[status == "resolved"],
			"labels": map[string]string{"alertname": alertname, "namespace": ns, "deployment": testbed.DemoDeployment},
		}},
	})
	req, _ := http.NewRequest(http.MethodPost, s.url, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		msg, _ := io.ReadAll(resp.Body)
		b.Fatalf("webhook: %d %s", resp.StatusCode, msg)
	}
}

// waitEvent polls the incident of fingerprint fp until an event of type typ
// appears (or a failure), and returns it.
func (s *service) waitEvent(b *testing.B, fp, typ string) incident.Event {
	ctx := context.Background()
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		list, err := s.st.Incidents(ctx, store.IncidentFilter{Limit: 5})
		if err != nil {
			b.Fatal(err)
		}
		for _, inc := range list {
			if inc.Fingerprint != fp {
				continue
			}
			_, evs, err := s.st.Incident(ctx, inc.ID)
			if err != nil {
				b.Fatal(err)
			}
			for _, e := range evs {
				if e.Type == typ {
					return e
				}
				if e.Type == executor.EventBlocked || e.Type == executor.EventFailed || e.Type == executor.EventEscalated {
					b.Fatalf("incident %s: %s: %s", inc.ID, e.Type, e.Reason)
				}
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	b.Fatalf("no %s event for %s", typ, fp)
	return incident.Event{}
}

// BenchmarkTimeToRemediate reports, per alert, the service's own measure
// (incident first seen → Apply acknowledged, recorded on the applied event
// and in remediator_time_to_remediate_seconds) as p50/p99. Between
// iterations (timer stopped) the alert resolves and the restart's rollout
// completes, so every iteration starts from a settled Deployment.
func BenchmarkTimeToRemediate(b *testing.B) {
	for _, bc := range []struct{ name, alert string }{
		{"no-diagnosis", "BenchRestart"},
		{"with-diagnosis", "BenchDiagnosed"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			env := testbed.Get(b)
			ns := env.NewNamespace()
			env.ApplyDemo(ns)
			svc := start(b, ns)
			var ttr []float64
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				fp := fmt.Sprintf("%016x", uint64(time.Now().UnixNano())+uint64(i))
				at := time.Now().UTC().Truncate(time.Millisecond)
				svc.post(b, "firing", bc.alert, ns, fp, at)
				ev := svc.waitEvent(b, fp, executor.EventApplied)
				b.StopTimer()
				var d struct {
					TTR int64 `json:"timeToRemediateMs"`
				}
				_ = json.Unmarshal(ev.Details, &d)
				ttr = append(ttr, float64(d.TTR))
				svc.waitEvent(b, fp, executor.EventRolledOut)
				svc.post(b, "resolved", bc.alert, ns, fp, at)
				svc.waitEvent(b, fp, executor.EventVerified)
				b.StartTimer()
			}
			b.StopTimer()
			slices.Sort(ttr)
			q := func(p float64) float64 { return ttr[min(len(ttr)-1, int(p*float64(len(ttr))))] }
			b.ReportMetric(q(0.50), "p50-ms")
			b.ReportMetric(q(0.99), "p99-ms")
			b.ReportMetric(ttr[len(ttr)-1], "max-ms")
		})
	}
}
