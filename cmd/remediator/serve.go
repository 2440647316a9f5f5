package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/remediator/remediator/internal/action"
	"github.com/remediator/remediator/internal/config"
	"github.com/remediator/remediator/internal/escalation"
	"github.com/remediator/remediator/internal/executor"
	"github.com/remediator/remediator/internal/guard"
	"github.com/remediator/remediator/internal/incident"
	"github.com/remediator/remediator/internal/leader"
	"github.com/remediator/remediator/internal/notify"
	"github.com/remediator/remediator/internal/pipeline"
	"github.com/remediator/remediator/internal/planner"
	"github.com/remediator/remediator/internal/policy"
	"github.com/remediator/remediator/internal/probe"
	"github.com/remediator/remediator/internal/server"
	"github.com/remediator/remediator/internal/slack"
	"github.com/remediator/remediator/internal/store"
	"github.com/remediator/remediator/internal/store/open"
	"github.com/remediator/remediator/internal/version"
	"github.com/remediator/remediator/internal/worker"
)

func newServeCmd() *cobra.Command {
	var configFile string
	flags := config.Default()
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Receive Alertmanager webhooks and run the remediation pipeline",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd, configFile, flags, os.Environ())
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return serve(ctx, cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&configFile, "config", os.Getenv("REMEDIATOR_CONFIG"), "YAML configuration file (env REMEDIATOR_CONFIG)")
	f.StringVar(&flags.Listen, "listen", flags.Listen, "address to listen on")
	f.StringVar(&flags.Store, "store", flags.Store, "store DSN: sqlite://PATH or postgres://USER@HOST:PORT/DB")
	f.StringVar(&flags.Policies, "policies", flags.Policies, "directory of policy files")
	f.StringVar(&flags.Mode, "mode", flags.Mode, "dry-run (record what would be done) or enforce (act)")
	f.StringVar(&flags.Auth.BearerTokenFile, "webhook-token-file", "", "file holding the bearer token Alertmanager must send")
	f.StringVar(&flags.Kubeconfig, "kubeconfig", "", "kubeconfig of the service's identity (default: in-cluster service account)")
	f.StringVar(&flags.Prometheus.URL, "prometheus-url", "", "Prometheus base URL for the prometheus probe")
	return cmd
}

// loadConfig layers defaults, the file, REMEDIATOR_* variables and the flags
// the user actually set, then validates the result.
func loadConfig(cmd *cobra.Command, file string, flags config.Config, environ []string) (config.Config, error) {
	cfg := config.Default()
	if file != "" {
		if err := config.LoadFile(&cfg, file); err != nil {
			return cfg, err
		}
	}
	if err := config.ApplyEnv(&cfg, environ); err != nil {
		return cfg, err
	}
	set := cmd.Flags().Changed
	if set("listen") {
		cfg.Listen = flags.Listen
	}
	if set("store") {
		cfg.Store = flags.Store
	}
	if set("policies") {
		cfg.Policies = flags.Policies
	}
	if set("mode") {
		cfg.Mode = flags.Mode
	}
	if set("webhook-token-file") {
		cfg.Auth.BearerTokenFile = flags.Auth.BearerTokenFile
	}
	if set("kubeconfig") {
		cfg.Kubeconfig = flags.Kubeconfig
	}
	if set("prometheus-url") {
		cfg.Prometheus.URL = flags.Prometheus.URL
	}
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("invalid configuration:\n%w", err)
	}
	return cfg, nil
}

func newLogger(level string) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, err
	}
	zc := zap.NewProductionConfig()
	zc.Level = zap.NewAtomicLevelAt(lvl)
	zc.EncoderConfig.TimeKey = "time"
	zc.EncoderConfig.EncodeTime = zapcore.RFC3339NanoTimeEncoder
	zc.Sampling = nil
	return zc.Build()
}

func buildAuth(cfg config.Config, log *zap.Logger) (*server.Authenticator, error) {
	a := &server.Authenticator{OnSecretError: func(err error) {
		log.Warn("secret file unreadable; keeping the last good value", zap.Error(err))
	}}
	if cfg.Auth.BearerTokenFile != "" {
		s, err := server.NewSecretFile(cfg.Auth.BearerTokenFile)
		if err != nil {
			return nil, fmt.Errorf("auth.bearer_token_file: %w", err)
		}
		a.Bearer = s
	}
	if b := cfg.Auth.BasicAuth; b != nil && b.Username != "" {
		s, err := server.NewSecretFile(b.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("auth.basic_auth.password_file: %w", err)
		}
		a.BasicUser, a.BasicPassword = b.Username, s
	}
	return a, nil
}

func tlsConfig(cfg config.TLSConfig) (*tls.Config, error) {
	if cfg.CertFile == "" {
		return nil, nil
	}
	// Load once now so a bad pair fails start-up; re-read on each handshake
	// so certificates rotate without a restart.
	if _, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile); err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	tc := &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			c, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
			return &c, err
		},
	}
	if cfg.ClientCAFile != "" {
		pem, err := os.ReadFile(cfg.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("tls.client_ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls.client_ca_file: no PEM certificates in %s", cfg.ClientCAFile)
		}
		tc.ClientCAs = pool
		tc.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return tc, nil
}

func serve(ctx context.Context, cfg config.Config) error {
	log, err := newLogger(cfg.Log.Level)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()

	auth, err := buildAuth(cfg, log)
	if err != nil {
		return err
	}
	tc, err := tlsConfig(cfg.TLS)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reloader, err := policyReloader(cfg.Policies, reg, log.Named("policy"))
	if err != nil {
		return err
	}
	kube, restCfg, kubeErr := kubeClient(cfg.Kubeconfig)
	if kubeErr != nil {
		log.Warn("no Kubernetes client: probes that read the cluster are not configured and plans escalate",
			zap.Error(kubeErr))
	}
	planr := &planner.Planner{
		Policies: reloader.Current,
		Probes:   probes(kube, cfg.Prometheus.URL),
		Kube:     kube,
		Actions:  actions(kube, restCfg),
	}
	st, err := open.Open(ctx, cfg.Store)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	defer func() {
		if err := st.Close(); err != nil {
			log.Error("closing store", zap.Error(err))
		}
	}()

	// The audit trail: sealer and daily cleanup, and /audit/* (auditserve.go).
	aud, audAuth, err := auditService(cfg, st, log.Named("audit"))
	if err != nil {
		return err
	}

	metrics := server.NewMetrics(reg)
	hostname, _ := os.Hostname()
	identity := cfg.HA.Identity
	if identity == "" {
		identity = fmt.Sprintf("%s-%d", hostname, os.Getpid())
	}
	guards, err := guardSettings(cfg.Guards)
	if err != nil {
		return err
	}
	approvals := make([]policy.Priority, 0, len(cfg.Guards.ApprovalPriorities))
	for _, p := range cfg.Guards.ApprovalPriorities {
		approvals = append(approvals, policy.Priority(p))
	}
	var elector *leader.Elector
	if cfg.HA.LeaderElection {
		elector, err = leader.New(leader.Config{Namespace: cfg.HA.LeaseNamespace, Name: cfg.HA.LeaseName, Identity: identity,
			LeaseDuration: cfg.HA.LeaseDuration.Duration, RenewDeadline: cfg.HA.RenewDeadline.Duration, RetryPeriod: cfg.HA.RetryPeriod.Duration},
			kube, reg, log.Named("leader"))
		if err != nil {
			return err
		}
	} else {
		leader.Gauge(reg).Set(1)
	}
	crashAt := crashHook(os.Getenv("REMEDIATOR_TEST_CRASH_AFTER"), log)
	exec := &executor.Executor{
		Config: executor.Config{Mode: cfg.Mode, Guards: guards, ApprovalPriorities: approvals,
			Owner: identity, ApplyTimeout: cfg.Worker.Lease.Duration / 3,
			AfterIntent: crashAt("intent"), AfterApply: crashAt("apply")},
		Store:    st,
		Planner:  planr,
		Actions:  planr.Actions,
		Targets:  executor.KubeTargets{Kube: kube},
		Policies: reloader.Current,
		Metrics:  executor.NewMetrics(reg, guard.Names()),
		Log:      log.Named("executor"),
	}
	// Escalation: priorities, deadlines, acknowledgements, the outbox and
	// its delivery loop (docs/escalation.md).
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
	// Slack (docs/slack.md): its notifications follow the audit trail (the
	// feed runs on the leader, beside the worker); its buttons are served
	// at /slack/interactions, outside the API's credentials.
	sl, feed, slackLog, err := slackSetup(cfg, st, exec, wk, esc.Metrics, reg, log.Named("slack"))
	if err != nil {
		return err
	}
	if slackLog != nil {
		defer slackLog.Close()
	}
	var mount func(chi.Router)
	if sl.Interactions != nil {
		mount = sl.Interactions.Mount
	}
	loops := []func(context.Context) error{deliverer.Run}
	if feed != nil {
		loops = append(loops, feed.Run)
	}
	srv := server.New(server.Options{
		Store:        st,
		Kicker:       wk,
		Auth:         auth,
		Log:          log.Named("http"),
		Metrics:      metrics,
		Gatherer:     reg,
		MaxBodyBytes: cfg.MaxBodyBytes,
		Mode:         cfg.Mode,
		Version:      version.Version,
		Checks:       []server.HealthCheck{{Name: "worker", Check: workerCheck(wk, elector)}},
		Control:      control{Store: st, exec: exec},
		Leader:       leading(elector),
		Audit:        aud,
		AuditAuth:    audAuth,
		Mount:        mount,
	})
	hs := &http.Server{
		Handler:           srv,
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
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	if tc != nil {
		ln = tls.NewListener(ln, tc)
	}
	if !auth.Enabled() && cfg.TLS.ClientCAFile == "" {
		log.Warn("no authentication configured: listening on loopback only", zap.String("listen", ln.Addr().String()))
	}
	log.Info("remediator serving",
		zap.String("version", version.Version), zap.String("listen", ln.Addr().String()),
		zap.String("mode", cfg.Mode), zap.String("store", redactDSN(cfg.Store)),
		zap.String("policies", cfg.Policies), zap.Int("policyCount", len(reloader.Current().Policies())),
		zap.Bool("kubernetes", kube != nil), zap.String("prometheus", cfg.Prometheus.URL), zap.Bool("tls", tc != nil),
		zap.Strings("namespaces", cfg.Guards.Namespaces), zap.Bool("leaderElection", elector != nil), zap.String("identity", identity),
		zap.String("slack", slackMode(cfg.Slack)), zap.Bool("slackButtons", sl.Interactions != nil))

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
	defer signal.Stop(hup)
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
	serveErr := make(chan error, 1)
	go func() { serveErr <- hs.Serve(ln) }()

	select {
	case err = <-serveErr:
	case <-ctx.Done():
		log.Info("shutting down")
		srv.Drain()
		shutCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		err = hs.Shutdown(shutCtx)
		cancel()
	}
	if sl.Interactions != nil {
		sl.Interactions.Wait() // decisions clicked in Slack finish before the store closes
	}
	stopWorker()
	<-workerDone
	<-reloadDone
	<-auditDone
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// slackSetup builds Slack from the configuration (slack.New) and, when it
// has a Deliverer, the feed that delivers the audit trail's notable events
// to it. With slack.log_file and no credentials, the messages are written
// to that file (make demo); logFile is then the file, to close at the end.
func slackSetup(cfg config.Config, st store.Store, exec *executor.Executor, kick slack.Kicker, em *escalation.Metrics,
	reg prometheus.Registerer, log *zap.Logger) (s slack.Setup, feed *slack.Feed, logFile io.Closer, err error) {
	var logTo io.Writer
	if path := cfg.Slack.LogFile; path != "" && !cfg.Slack.Enabled() {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return s, nil, nil, fmt.Errorf("slack.log_file: %w", err)
		}
		logTo, logFile = f, f
	}
	s, err = slack.New(cfg.Slack, slack.Deps{
		Secret: func(path string) (slack.Secret, error) {
			f, err := server.NewSecretFile(path)
			if err != nil {
				return nil, err
			}
			return f.Value, nil
		},
		Store:    st,
		Decider:  exec,
		Recorder: slack.TimelineRecorder{Store: st, Log: log.Named("interactions")},
		Kicker:   kick,
		Log:      log,
		LogTo:    logTo,
	})
	if err != nil || s.Deliverer == nil {
		if logFile != nil {
			_ = logFile.Close()
		}
		return s, nil, nil, err
	}
	feed = &slack.Feed{Store: st, Deliverer: s.Deliverer, Options: notify.Options{ServiceURL: cfg.ExternalURL},
		Backlog: slack.NewBacklogGauge(reg), Log: log.Named("feed")}
	if em != nil {
		feed.Notifications = em.Notifications
	}
	return s, feed, logFile, nil
}

// slackMode names how Slack is configured, for the start-up log.
func slackMode(c config.SlackConfig) string {
	switch {
	case c.BotTokenFile != "":
		return "bot"
	case c.WebhookURLFile != "":
		return "webhook"
	case c.LogFile != "":
		return "log"
	}
	return "off"
}

// redactDSN hides a password in a store DSN before it is logged.
func redactDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.User == nil {
		return dsn
	}
	return u.Redacted()
}

// loadPolicies loads the policy directory; a set that does not load is a
// start-up error (there is no last good set to fall back on yet).
func loadPolicies(dir string) (*policy.Set, error) {
	set, err := policy.Load(dir, policy.DefaultCatalog())
	if err != nil {
		return nil, policiesError(dir, err)
	}
	return set, nil
}

func policiesError(dir string, err error) error {
	return fmt.Errorf("policies in %s:\n%w", dir, err)
}

// policyReloader loads the policy directory as loadPolicies does and keeps
// it in force: Run reloads it on SIGHUP and when its files change, logging
// each result; a reload that fails keeps the last good set.
func policyReloader(dir string, reg prometheus.Registerer, log *zap.Logger) (*policy.Reloader, error) {
	l, err := policy.NewLoader(policy.DefaultCatalog())
	if err != nil {
		return nil, err
	}
	r, err := policy.NewReloader(dir, l, policy.ReloaderOptions{
		Metrics: policy.NewReloadMetrics(reg),
		OnResult: func(inForce *policy.Set, err error) {
			n := zap.Int("policyCount", len(inForce.Policies()))
			if err == nil {
				log.Info("policies reloaded", zap.String("policies", dir), n)
				return
			}
			msgs := []string{err.Error()}
			var errs policy.Errors
			if errors.As(err, &errs) {
				msgs = msgs[:0]
				for _, e := range errs {
					msgs = append(msgs, e.Error())
				}
			}
			log.Error("policy reload failed; the last good set stays in force",
				zap.String("policies", dir), zap.Strings("errors", msgs), n)
		},
	})
	if err != nil {
		return nil, policiesError(dir, err)
	}
	return r, nil
}

// kubeClient builds the client of the service's own identity: from the
// kubeconfig file when one is given, else the in-cluster service account.
func kubeClient(kubeconfig string) (kubernetes.Interface, *rest.Config, error) {
	var rc *rest.Config
	var err error
	if kubeconfig != "" {
		rc, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
	} else {
		rc, err = rest.InClusterConfig()
	}
	if err != nil {
		return nil, nil, err
	}
	rc.UserAgent = "remediator/" + version.Version
	// One request never hangs longer than this; Apply retries within its
	// own budget.
	rc.Timeout = 10 * time.Second
	kube, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, nil, err
	}
	return kube, rc, nil
}

// actions are the remediation actions; none without a cluster client.
func actions(kube kubernetes.Interface, rc *rest.Config) map[string]action.Action {
	if kube == nil {
		return nil
	}
	return action.NewWithConfig(kube, rc)
}

// guardSettings turns the configuration's guards into the guards' global
// settings (recurring maintenance windows parsed once, here).
func guardSettings(c config.GuardsConfig) (guard.Settings, error) {
	s := guard.Settings{
		Namespaces: c.Namespaces, ProtectedLabel: c.ProtectedLabel, ProtectedAnnotation: c.ProtectedAnnotation,
		Cooldown: c.Cooldown.Duration, MaxPerTargetPerHour: c.MaxPerTargetPerHour, MaxGlobalPerHour: c.MaxPerHour,
		MinHealthyPercent: c.MinHealthyPercent, BreakerFailures: c.CircuitBreaker,
	}
	for i, m := range c.Maintenance {
		r, err := guard.ParseRecurring(guard.Recurring{Name: m.Name, Days: m.Days, Start: m.Start, End: m.End, TZ: m.TZ, Namespaces: m.Namespaces})
		if err != nil {
			return guard.Settings{}, fmt.Errorf("guards.maintenance[%d]: %w", i, err)
		}
		s.Schedule = append(s.Schedule, r)
	}
	s = s.WithDefaults()
	if err := s.Validate(); err != nil && len(s.Namespaces) > 0 {
		return guard.Settings{}, fmt.Errorf("guards: %w", err)
	}
	return s, nil
}

// control is the operator API: the store's pause and windows, the
// executor's approve/reject path.
type control struct {
	store.Store
	exec *executor.Executor
}

// SetPause switches the kill switch and puts it on the audit trail.
func (c control) SetPause(ctx context.Context, p store.PauseState, _ ...incident.Event) error {
	if err := c.Store.SetPause(ctx, p); err != nil {
		return err
	}
	typ, verb := "resumed", "resumed"
	if p.Paused {
		typ, verb = "paused", "paused"
	}
	return c.audit(ctx, p.At, typ, p.By, fmt.Sprintf("%s all remediation: %s", verb, p.Reason), map[string]any{"paused": p.Paused})
}

// AddWindow adds an ad-hoc maintenance window and puts it on the audit trail.
func (c control) AddWindow(ctx context.Context, w store.Window) error {
	if err := c.Store.AddWindow(ctx, w); err != nil {
		return err
	}
	return c.audit(ctx, w.CreatedAt, "maintenance-window-added", w.By,
		fmt.Sprintf("maintenance window %s – %s: %s", w.Start.Format(time.RFC3339), w.End.Format(time.RFC3339), w.Reason), w)
}

// DeleteWindow removes a maintenance window and puts it on the audit trail.
func (c control) DeleteWindow(ctx context.Context, id string) error {
	if err := c.Store.DeleteWindow(ctx, id); err != nil {
		return err
	}
	return c.audit(ctx, time.Now(), "maintenance-window-deleted", "operator", "maintenance window "+id+" deleted", map[string]string{"window": id})
}

func (c control) audit(ctx context.Context, at time.Time, typ, actor, reason string, details any) error {
	raw, err := json.Marshal(details)
	if err != nil {
		return err
	}
	return c.Store.AppendAudit(ctx, incident.Event{Time: at.UTC(), Type: typ, Actor: actor, Reason: reason, Details: raw})
}

func (c control) Decide(ctx context.Context, incidentID string, approve bool, by, reason string) (store.Proposal, error) {
	return c.exec.Decide(ctx, incidentID, approve, by, reason)
}

// crashHook is for crash tests only: with REMEDIATOR_TEST_CRASH_AFTER set to
// "intent" or "apply", the process logs "crash point reached" and then
// hangs at that point of the first execution, so the test can kill -9 it
// exactly between intent and outcome.
func crashHook(at string, log *zap.Logger) func(point string) func(string) {
	return func(point string) func(string) {
		if at != point {
			return nil
		}
		return func(id string) {
			log.Warn("crash point reached", zap.String("point", point), zap.String("execution", id))
			select {}
		}
	}
}

// leading reports leadership for /readyz (always, without election).
func leading(e *leader.Elector) func() bool {
	if e == nil {
		return func() bool { return true }
	}
	return e.IsLeader
}

// workerCheck is the worker's health check; a replica that does not lead
// runs no worker and is healthy.
func workerCheck(wk *worker.Worker, e *leader.Elector) func(context.Context) error {
	return func(ctx context.Context) error {
		if e != nil && !e.IsLeader() {
			return nil
		}
		return wk.Check(ctx)
	}
}

// probes wires the probes to their sources. Without a Kubernetes client only
// the probes that do not read the cluster are offered; without a Prometheus
// URL the prometheus probe is not offered. A policy step whose probe is not
// offered records "not configured" and its conditions are false.
func probes(kube kubernetes.Interface, prometheusURL string) map[string]probe.Probe {
	all := probe.New(probe.Config{Kube: kube, PrometheusURL: prometheusURL})
	out := map[string]probe.Probe{}
	for name, p := range all {
		switch {
		case name == "prometheus" && prometheusURL == "":
		case kube == nil && name != "prometheus" && name != "dependencies":
		default:
			out[name] = p
		}
	}
	return out
}
