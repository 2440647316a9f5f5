package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"k8s.io/client-go/kubernetes"

	"github.com/remediator/remediator/internal/config"
	"github.com/remediator/remediator/internal/escalation"
	"github.com/remediator/remediator/internal/executor"
	"github.com/remediator/remediator/internal/guard"
	"github.com/remediator/remediator/internal/incident"
	"github.com/remediator/remediator/internal/leader"
	"github.com/remediator/remediator/internal/pipeline"
	"github.com/remediator/remediator/internal/planner"
	"github.com/remediator/remediator/internal/policy"
	"github.com/remediator/remediator/internal/server"
	"github.com/remediator/remediator/internal/slack"
	"github.com/remediator/remediator/internal/store"
	"github.com/remediator/remediator/internal/store/audit"
	"github.com/remediator/remediator/internal/store/open"
	"github.com/remediator/remediator/internal/version"
	"github.com/remediator/remediator/internal/worker"
)

// The constructors serve wires together, in the order it calls them.

// buildKube builds the client of the service's own identity and the
// planner on it. Without a client the service still runs: it warns, the
// probes that read the cluster are not configured and plans escalate.
func buildKube(cfg config.Config, reloader *policy.Reloader, log *zap.Logger) (kubernetes.Interface, *planner.Planner) {
	kube, restCfg, err := kubeClient(cfg.Kubeconfig)
	if err != nil {
		log.Warn("no Kubernetes client: probes that read the cluster are not configured and plans escalate",
			zap.Error(err))
	}
	return kube, &planner.Planner{
		Policies: reloader.Current,
		Probes:   probes(kube, cfg.Prometheus.URL),
		Kube:     kube,
		Actions:  actions(kube, restCfg),
	}
}

// openStore opens the store; closeStore closes it, logging a failure.
func openStore(ctx context.Context, dsn string, log *zap.Logger) (st store.Store, closeStore func(), err error) {
	st, err = open.Open(ctx, dsn)
	if err != nil {
		return nil, nil, fmt.Errorf("store: %w", err)
	}
	return st, func() {
		if err := st.Close(); err != nil {
			log.Error("closing store", zap.Error(err))
		}
	}, nil
}

// replicaIdentity is ha.identity, else HOSTNAME-PID: the executions'
// owner and the leader election's identity.
func replicaIdentity(ha config.HAConfig) string {
	hostname, _ := os.Hostname()
	if ha.Identity != "" {
		return ha.Identity
	}
	return fmt.Sprintf("%s-%d", hostname, os.Getpid())
}

// executorConfig is the executor's configuration: mode, guards (parsed
// and validated here), approval priorities, owner and the crash-test hooks.
func executorConfig(cfg config.Config, identity string, log *zap.Logger) (executor.Config, error) {
	guards, err := guardSettings(cfg.Guards)
	if err != nil {
		return executor.Config{}, err
	}
	approvals := make([]policy.Priority, 0, len(cfg.Guards.ApprovalPriorities))
	for _, p := range cfg.Guards.ApprovalPriorities {
		approvals = append(approvals, policy.Priority(p))
	}
	crashAt := crashHook(os.Getenv("REMEDIATOR_TEST_CRASH_AFTER"), log)
	return executor.Config{Mode: cfg.Mode, Guards: guards, ApprovalPriorities: approvals,
		Owner: identity, ApplyTimeout: cfg.Worker.Lease.Duration / 3,
		AfterIntent: crashAt("intent"), AfterApply: crashAt("apply")}, nil
}

// buildElector builds the leader elector when ha.leader_election is on;
// without it (nil elector) this replica always leads.
func buildElector(ha config.HAConfig, identity string, kube kubernetes.Interface, reg prometheus.Registerer, log *zap.Logger) (*leader.Elector, error) {
	if !ha.LeaderElection {
		leader.Gauge(reg).Set(1)
		return nil, nil
	}
	return leader.New(leader.Config{Namespace: ha.LeaseNamespace, Name: ha.LeaseName, Identity: identity,
		LeaseDuration: ha.LeaseDuration.Duration, RenewDeadline: ha.RenewDeadline.Duration, RetryPeriod: ha.RetryPeriod.Duration},
		kube, reg, log.Named("leader"))
}

// remediation is the pipeline's machinery: the executor, the escalator
// and its outbox's delivery loop, and the worker that runs the pipeline.
type remediation struct {
	exec      *executor.Executor
	esc       *escalation.Escalator
	deliverer *escalation.Deliverer
	worker    *worker.Worker
}

// buildRemediation builds the executor, escalation (priorities, deadlines,
// acknowledgements, the outbox and its delivery loop; docs/escalation.md)
// and the worker running load → executor stages.
func buildRemediation(cfg config.Config, ec executor.Config, identity string, st store.Store, planr *planner.Planner,
	reloader *policy.Reloader, kube kubernetes.Interface, reg prometheus.Registerer, log *zap.Logger) remediation {
	exec := &executor.Executor{
		Config:   ec,
		Store:    st,
		Planner:  planr,
		Actions:  planr.Actions,
		Targets:  executor.KubeTargets{Kube: kube},
		Policies: reloader.Current,
		Metrics:  executor.NewMetrics(reg, guard.Names()),
		Log:      log.Named("executor"),
	}
	esc, deliverer := escalationSetup(cfg.Escalation, cfg.ExternalURL, st, reg, log.Named("escalation"), identity+"-"+incident.NewID()[:8])
	exec.Escalation = esc
	wk := worker.New(worker.Options{
		Name:  fmt.Sprintf("%s-%s", identity, incident.NewID()[:8]),
		Queue: st,
		Pipeline: pipeline.Seq{
			pipeline.Load(st),
			exec.Stages(),
		},
		Mode:        cfg.Mode,
		Concurrency: cfg.Worker.Concurrency,
		Lease:       cfg.Worker.Lease.Duration,
		Poll:        cfg.Worker.Poll.Duration,
		Log:         log.Named("worker"),
	})
	return remediation{exec: exec, esc: esc, deliverer: deliverer, worker: wk}
}

// buildSlack builds Slack (docs/slack.md, slackSetup): its notifications
// follow the audit trail (the feed runs on the leader, beside the worker);
// its buttons are served at /slack/interactions, outside the API's
// credentials. closeSlack closes slack.log_file, if one was opened.
func buildSlack(cfg config.Config, st store.Store, rem remediation, reg prometheus.Registerer, log *zap.Logger) (sl slack.Setup, feed *slack.Feed, closeSlack func(), err error) {
	sl, feed, logFile, err := slackSetup(cfg, st, rem.exec, rem.worker, rem.esc.Metrics, reg, log.Named("slack"))
	if err != nil {
		return sl, nil, nil, err
	}
	closeSlack = func() {}
	if logFile != nil {
		closeSlack = func() { _ = logFile.Close() }
	}
	return sl, feed, closeSlack, nil
}

// newRoutes builds the HTTP handler: the webhook, the operator API,
// health and metrics, /audit/* with its own credential and, when Slack's
// buttons are on, /slack/interactions.
func newRoutes(cfg config.Config, log *zap.Logger, reg *prometheus.Registry, metrics *server.Metrics, auth *server.Authenticator,
	st store.Store, rem remediation, elector *leader.Elector, aud *audit.Service, audAuth *server.Authenticator, sl slack.Setup) *server.Server {
	var mount func(chi.Router)
	if sl.Interactions != nil {
		mount = sl.Interactions.Mount
	}
	return server.New(server.Options{
		Store:        st,
		Kicker:       rem.worker,
		Auth:         auth,
		Log:          log.Named("http"),
		Metrics:      metrics,
		Gatherer:     reg,
		MaxBodyBytes: cfg.MaxBodyBytes,
		Mode:         cfg.Mode,
		Version:      version.Version,
		Checks:       []server.HealthCheck{{Name: "worker", Check: workerCheck(rem.worker, elector)}},
		Control:      control{Store: st, exec: rem.exec},
		Leader:       leading(elector),
		Audit:        aud,
		AuditAuth:    audAuth,
		Mount:        mount,
	})
}

// listen builds the HTTP server around handler and opens its listener
// (TLS when tc is set), counting connections in metrics.
func listen(addr string, tc *tls.Config, handler http.Handler, metrics *server.Metrics, log *zap.Logger) (*http.Server, net.Listener, error) {
	hs := &http.Server{
		Handler:           handler,
		TLSConfig:         tc,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          zap.NewStdLog(log.Named("http")),
		ConnState: func(_ net.Conn, s http.ConnState) {
			switch s {
			case http.StateNew:
				metrics.ActiveConnections.Inc()
			case http.StateHijacked, http.StateClosed:
				metrics.ActiveConnections.Dec()
			}
		},
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	if tc != nil {
		ln = tls.NewListener(ln, tc)
	}
	return hs, ln, nil
}

// runBackground starts the background work: the worker and the delivery
// loops (the outbox's and, when set, the Slack feed) under leader election
// when elector is set, policy reloads (on SIGHUP and file changes) and the
// audit sealer. stop ends them all and waits for them; the sealer seals
// once more when stopped, so stop must come before the store closes.
func runBackground(elector *leader.Elector, rem remediation, feed *slack.Feed,
	reloader *policy.Reloader, aud *audit.Service) (stop func()) {
	wk := rem.worker
	loops := []func(context.Context) error{rem.deliverer.Run}
	if feed != nil {
		loops = append(loops, feed.Run)
	}
	workerCtx, stopWorker := context.WithCancel(context.Background())
	workerDone := make(chan struct{})
	go func() {
		defer close(workerDone)
		if elector == nil {
			alongside(workerCtx, wk.Run, loops...)
			return
		}
		elector.Run(workerCtx, func(lctx context.Context) { alongside(lctx, wk.Run, loops...) })
	}()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	reloadDone := make(chan struct{})
	go func() {
		defer close(reloadDone)
		reloader.Run(workerCtx, hup)
	}()
	auditDone := make(chan struct{})
	go func() {
		defer close(auditDone)
		aud.Run(workerCtx) // seals once more when stopped, before the store closes
	}()
	return func() {
		stopWorker()
		<-workerDone
		<-reloadDone
		<-auditDone
		signal.Stop(hup)
	}
}

// serveHTTP serves on ln until the server fails or ctx ends; then it
// drains /readyz and shuts the server down, waiting up to 15s for the
// requests in flight. A server closed by the shutdown is not an error.
func serveHTTP(ctx context.Context, srv *server.Server, hs *http.Server, ln net.Listener, log *zap.Logger) error {
	serveErr := make(chan error, 1)
	go func() { serveErr <- hs.Serve(ln) }()

	var err error
	select {
	case err = <-serveErr:
	case <-ctx.Done():
		log.Info("shutting down")
		srv.Drain()
		shutCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		err = hs.Shutdown(shutCtx)
		cancel()
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}
