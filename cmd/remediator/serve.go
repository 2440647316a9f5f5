package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

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
	"github.com/remediator/remediator/internal/policy"
	"github.com/remediator/remediator/internal/probe"
	"github.com/remediator/remediator/internal/server"
	"github.com/remediator/remediator/internal/slack"
	"github.com/remediator/remediator/internal/store"
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

// serve is the composition root: it builds the service's parts (wire.go)
// in dependency order, serves until ctx ends, then shuts down in order:
// drain /readyz and stop HTTP, let Slack decisions finish, stop the
// background work, close the Slack log and the store.
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
	kube, planr := buildKube(cfg, reloader, log)
	st, closeStore, err := openStore(ctx, cfg.Store, log)
	if err != nil {
		return err
	}
	defer closeStore()

	// The audit trail: sealer and daily cleanup, and /audit/* (auditserve.go).
	aud, audAuth, err := auditService(cfg, st, log.Named("audit"))
	if err != nil {
		return err
	}
	metrics := server.NewMetrics(reg)
	identity := replicaIdentity(cfg.HA)
	execCfg, err := executorConfig(cfg, identity, log)
	if err != nil {
		return err
	}
	elector, err := buildElector(cfg.HA, identity, kube, reg, log)
	if err != nil {
		return err
	}
	rem := buildRemediation(cfg, execCfg, identity, st, planr, reloader, kube, reg, log)
	sl, feed, closeSlack, err := buildSlack(cfg, st, rem, reg, log)
	if err != nil {
		return err
	}
	defer closeSlack()

	srv := newRoutes(cfg, log, reg, metrics, auth, st, rem, elector, aud, audAuth, sl)
	hs, ln, err := listen(cfg.Listen, tc, srv, metrics, log)
	if err != nil {
		return err
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

	stopBackground := runBackground(elector, rem, feed, reloader, aud)
	err = serveHTTP(ctx, srv, hs, ln, log)
	if sl.Interactions != nil {
		sl.Interactions.Wait() // decisions clicked in Slack finish before the store closes
	}
	stopBackground()
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
