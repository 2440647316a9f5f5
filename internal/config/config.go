// Package config loads the service configuration: defaults, then a YAML
// file, then REMEDIATOR_* environment variables, then command-line flags
// (each later source overrides the earlier ones). Unknown keys in the file
// are errors that name the key.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Modes the service runs in.
const (
	ModeDryRun  = "dry-run"
	ModeEnforce = "enforce"
)

// Defaults.
const (
	DefaultListen       = "127.0.0.1:9095"
	DefaultStore        = "sqlite://./data/remediator.db"
	DefaultPolicies     = "./policies"
	DefaultMaxBodyBytes = 16 << 20
)

// Config is the whole service configuration. Auth and TLS mirror the names
// of Alertmanager's http_config so one secret file can serve both sides.
type Config struct {
	Listen       string       `yaml:"listen"`
	Store        string       `yaml:"store"`
	Policies     string       `yaml:"policies"`
	Mode         string       `yaml:"mode"`
	MaxBodyBytes int64        `yaml:"max_body_bytes"`
	Auth         AuthConfig   `yaml:"auth"`
	TLS          TLSConfig    `yaml:"tls"`
	Worker       WorkerConfig `yaml:"worker"`
	// Kubeconfig is the kubeconfig file of the service's own identity;
	// empty means the in-cluster service account.
	Kubeconfig string           `yaml:"kubeconfig"`
	Prometheus PrometheusConfig `yaml:"prometheus"`
	Log        LogConfig        `yaml:"log"`
	Guards     GuardsConfig     `yaml:"guards"`
	HA         HAConfig         `yaml:"ha"`
	// Escalation says who is told, by priority (docs/escalation.md).
	Escalation EscalationConfig `yaml:"escalation"`
	Audit      AuditConfig      `yaml:"audit"`
	// ExternalURL is where people reach this service; notifications link
	// to the incident under it ("" leaves the link out).
	ExternalURL string      `yaml:"external_url"`
	Slack       SlackConfig `yaml:"slack"`
}

// SlackConfig sets up Slack notifications (docs/slack.md). With neither
// bot_token_file nor webhook_url_file set, Slack is off.
type SlackConfig struct {
	// BotTokenFile holds a bot token (xoxb-…): a root message per incident
	// and channel, updated in place, with the steps as thread replies.
	BotTokenFile string `yaml:"bot_token_file"`
	// SigningSecretFile holds the app's signing secret: it enables the
	// Approve/Reject buttons (POST /slack/interactions).
	SigningSecretFile string `yaml:"signing_secret_file"`
	// WebhookURLFile holds an incoming-webhook URL: one message per step,
	// no threads, no buttons (instead of a bot token).
	WebhookURLFile string `yaml:"webhook_url_file"`
	// APIURL is the Web API's base URL (default https://slack.com/api/).
	APIURL string `yaml:"api_url"`
	// DefaultChannel receives what no namespace or label route claims.
	DefaultChannel      string                       `yaml:"default_channel"`
	ChannelsByPriority  map[string]string            `yaml:"channels_by_priority"`
	ChannelsByNamespace map[string]string            `yaml:"channels_by_namespace"`
	ChannelsByLabel     map[string]map[string]string `yaml:"channels_by_label"`
	// OncallMentions are put in escalations, by priority
	// ("<!subteam^S123>", "<@U123>", "<!here>").
	OncallMentions map[string]string    `yaml:"oncall_mentions"`
	Approvers      SlackApproversConfig `yaml:"approvers"`
	// LogFile, without bot_token_file or webhook_url_file, receives as
	// text the messages the service would send (make demo shows it).
	LogFile string `yaml:"log_file"`
}

// SlackApproversConfig says who may approve or reject from Slack: these
// user ids, and the members of these user groups. Nobody when empty.
type SlackApproversConfig struct {
	Users      []string `yaml:"users"`
	Usergroups []string `yaml:"usergroups"`
}

// Enabled reports whether Slack notifications are configured.
func (c SlackConfig) Enabled() bool { return c.BotTokenFile != "" || c.WebhookURLFile != "" }

// GuardsConfig are the service-wide guard settings (a policy's guards
// override the per-target ones). Zero values mean the documented defaults;
// an empty namespace allow-list allows no namespace (fail closed).
type GuardsConfig struct {
	Namespaces          []string `yaml:"namespaces"`
	ProtectedLabel      string   `yaml:"protected_label"`
	ProtectedAnnotation string   `yaml:"protected_annotation"`
	Cooldown            Duration `yaml:"cooldown"`
	MaxPerTargetPerHour int      `yaml:"max_actions_per_target_per_hour"`
	MaxPerHour          int      `yaml:"max_actions_per_hour"`
	MinHealthyPercent   int      `yaml:"min_healthy_percent"`
	CircuitBreaker      int      `yaml:"circuit_breaker"`
	// ApprovalPriorities need a person's approval (e.g. [P0]).
	ApprovalPriorities []string `yaml:"approval_priorities"`
	// Maintenance are recurring windows during which nothing is changed.
	Maintenance []MaintenanceWindow `yaml:"maintenance"`
}

// MaintenanceWindow is a recurring window, e.g. Sat 22:00–04:00 Europe/Berlin.
type MaintenanceWindow struct {
	Name       string   `yaml:"name"`
	Days       []string `yaml:"days"`
	Start      string   `yaml:"start"`
	End        string   `yaml:"end"`
	TZ         string   `yaml:"tz"`
	Namespaces []string `yaml:"namespaces"`
}

// HAConfig turns on leader election: several replicas accept webhooks
// (share a PostgreSQL store), only the Lease holder acts.
type HAConfig struct {
	LeaderElection bool     `yaml:"leader_election"`
	LeaseNamespace string   `yaml:"lease_namespace"`
	LeaseName      string   `yaml:"lease_name"`
	Identity       string   `yaml:"identity"` // default: hostname-pid
	LeaseDuration  Duration `yaml:"lease_duration"`
	RenewDeadline  Duration `yaml:"renew_deadline"`
	RetryPeriod    Duration `yaml:"retry_period"`
}

// AuditConfig configures the audit endpoints and the trail's retention
// (docs/audit.md). The endpoints take their own bearer token, never the
// webhook's credentials.
type AuditConfig struct {
	BearerTokenFile string `yaml:"bearer_token_file"`
	// RetentionDays: audit records older than this are deleted daily;
	// 0 keeps them forever.
	RetentionDays int `yaml:"retention_days"`
}

// AuthConfig says which credentials the webhook and API accept. With both
// set, either is accepted.
type AuthConfig struct {
	BearerTokenFile string           `yaml:"bearer_token_file"`
	BasicAuth       *BasicAuthConfig `yaml:"basic_auth,omitempty"`
}

// BasicAuthConfig is HTTP basic auth with the password read from a file.
type BasicAuthConfig struct {
	Username     string `yaml:"username"`
	PasswordFile string `yaml:"password_file"`
}

// TLSConfig enables HTTPS, and mTLS when ClientCAFile is set.
type TLSConfig struct {
	CertFile     string `yaml:"cert_file"`
	KeyFile      string `yaml:"key_file"`
	ClientCAFile string `yaml:"client_ca_file"`
}

// WorkerConfig tunes the asynchronous stage runner.
type WorkerConfig struct {
	Concurrency int      `yaml:"concurrency"`
	Lease       Duration `yaml:"lease"`
	Poll        Duration `yaml:"poll"`
}

// PrometheusConfig is where the prometheus probe sends its queries.
type PrometheusConfig struct {
	URL string `yaml:"url"`
}

// LogConfig sets the log level (debug, info, warn, error).
type LogConfig struct {
	Level string `yaml:"level"`
}

// Duration is a time.Duration written as "30s" in YAML.
type Duration struct{ time.Duration }

// UnmarshalYAML accepts a Go duration string such as "30s".
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil || n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: %q is not a duration like \"30s\"", n.Line, n.Value)
	}
	d.Duration = v
	return nil
}

// MarshalYAML writes the duration as a string.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// Default returns the configuration used when nothing is set.
func Default() Config {
	return Config{
		Listen:       DefaultListen,
		Store:        DefaultStore,
		Policies:     DefaultPolicies,
		Mode:         ModeDryRun,
		MaxBodyBytes: DefaultMaxBodyBytes,
		Worker: WorkerConfig{
			Concurrency: 4,
			Lease:       Duration{30 * time.Second},
			Poll:        Duration{500 * time.Millisecond},
		},
		Log:   LogConfig{Level: "info"},
		HA:    HAConfig{LeaseName: "remediator-leader"},
		Audit: AuditConfig{RetentionDays: DefaultAuditRetentionDays},
	}
}

// DefaultAuditRetentionDays is how long audit records are kept by default.
const DefaultAuditRetentionDays = 90

// LoadFile merges the YAML file at path over cfg. Unknown keys are errors.
func LoadFile(cfg *Config, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("config %s: %s", path, cleanYAMLError(err))
	}
	return nil
}

// sections names the YAML section each config type is read from, so an
// unknown key is reported with its full path.
var sections = map[string]string{
	"config.Config":            "",
	"config.AuthConfig":        "auth.",
	"config.BasicAuthConfig":   "auth.basic_auth.",
	"config.TLSConfig":         "tls.",
	"config.WorkerConfig":      "worker.",
	"config.LogConfig":         "log.",
	"config.PrometheusConfig":  "prometheus.",
	"config.GuardsConfig":      "guards.",
	"config.MaintenanceWindow": "guards.maintenance[].",
	"config.HAConfig":          "ha.",
	// escalation (see EscalationConfig)
	"config.EscalationConfig":     "escalation.",
	"config.EscalationLevel":      "escalation.<priority>.",
	"config.EscalationWebhook":    "escalation.<priority>.webhooks[].",
	"config.DeliveryConfig":       "escalation.delivery.",
	"config.AuditConfig":          "audit.",
	"config.SlackConfig":          "slack.",
	"config.SlackApproversConfig": "slack.approvers.",
}

var unknownFieldRE = regexp.MustCompile(`line (\d+): field (\S+) not found in type (\S+)`)

func cleanYAMLError(err error) string {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	msg = strings.TrimPrefix(msg, "unmarshal errors:\n  ")
	return unknownFieldRE.ReplaceAllStringFunc(msg, func(m string) string {
		p := unknownFieldRE.FindStringSubmatch(m)
		return fmt.Sprintf("line %s: unknown field %q", p[1], sections[p[3]]+p[2])
	})
}

// EnvPrefix is the prefix of environment overrides.
const EnvPrefix = "REMEDIATOR_"

// envSetters maps each supported environment variable (after the prefix) to
// the field it sets.
func envSetters(cfg *Config) map[string]func(string) error {
	str := func(p *string) func(string) error { return func(v string) error { *p = v; return nil } }
	return map[string]func(string) error{
		"LISTEN":             str(&cfg.Listen),
		"STORE":              str(&cfg.Store),
		"POLICIES":           str(&cfg.Policies),
		"MODE":               str(&cfg.Mode),
		"WEBHOOK_TOKEN_FILE": str(&cfg.Auth.BearerTokenFile),
		"BASIC_AUTH_USERNAME": func(v string) error {
			cfg.basic().Username = v
			return nil
		},
		"BASIC_AUTH_PASSWORD_FILE": func(v string) error {
			cfg.basic().PasswordFile = v
			return nil
		},
		"TLS_CERT_FILE":      str(&cfg.TLS.CertFile),
		"TLS_KEY_FILE":       str(&cfg.TLS.KeyFile),
		"TLS_CLIENT_CA_FILE": str(&cfg.TLS.ClientCAFile),
		"LOG_LEVEL":          str(&cfg.Log.Level),
		"KUBECONFIG":         str(&cfg.Kubeconfig),
		"PROMETHEUS_URL":     str(&cfg.Prometheus.URL),
		"GUARDS_NAMESPACES": func(v string) error {
			cfg.Guards.Namespaces = nil
			for _, ns := range strings.Split(v, ",") {
				if ns = strings.TrimSpace(ns); ns != "" {
					cfg.Guards.Namespaces = append(cfg.Guards.Namespaces, ns)
				}
			}
			return nil
		},
		"LEADER_ELECTION": func(v string) error {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return fmt.Errorf("not a boolean: %q", v)
			}
			cfg.HA.LeaderElection = b
			return nil
		},
		"LEASE_NAMESPACE":  str(&cfg.HA.LeaseNamespace),
		"HA_IDENTITY":      str(&cfg.HA.Identity),
		"AUDIT_TOKEN_FILE": str(&cfg.Audit.BearerTokenFile),
		"AUDIT_RETENTION_DAYS": func(v string) error {
			n, err := strconv.Atoi(v)
			if err != nil {
				return fmt.Errorf("not a number of days: %q", v)
			}
			cfg.Audit.RetentionDays = n
			return nil
		},
		"EXTERNAL_URL":              str(&cfg.ExternalURL),
		"SLACK_BOT_TOKEN_FILE":      str(&cfg.Slack.BotTokenFile),
		"SLACK_SIGNING_SECRET_FILE": str(&cfg.Slack.SigningSecretFile),
		"SLACK_WEBHOOK_URL_FILE":    str(&cfg.Slack.WebhookURLFile),
		"SLACK_DEFAULT_CHANNEL":     str(&cfg.Slack.DefaultChannel),
		"SLACK_LOG_FILE":            str(&cfg.Slack.LogFile),
		"MAX_BODY_BYTES": func(v string) error {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return fmt.Errorf("not a number of bytes: %q", v)
			}
			cfg.MaxBodyBytes = n
			return nil
		},
	}
}

func (c *Config) basic() *BasicAuthConfig {
	if c.Auth.BasicAuth == nil {
		c.Auth.BasicAuth = &BasicAuthConfig{}
	}
	return c.Auth.BasicAuth
}

// ApplyEnv applies REMEDIATOR_* variables from environ (os.Environ format).
// An unknown REMEDIATOR_ variable is an error naming it, like an unknown key.
func ApplyEnv(cfg *Config, environ []string) error {
	setters := envSetters(cfg)
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(k, EnvPrefix) {
			continue
		}
		name := strings.TrimPrefix(k, EnvPrefix)
		if name == "CONFIG" || strings.HasPrefix(name, "TEST") {
			continue // read by the CLI itself / by test helpers
		}
		set, ok := setters[name]
		if !ok {
			return fmt.Errorf("environment: unknown variable %s", k)
		}
		if err := set(v); err != nil {
			return fmt.Errorf("environment %s: %w", k, err)
		}
	}
	return nil
}

// Validate checks the configuration is usable and safe.
func (c *Config) Validate() error {
	var errs []error
	if c.Mode != ModeDryRun && c.Mode != ModeEnforce {
		errs = append(errs, fmt.Errorf("mode: must be %q or %q, got %q", ModeDryRun, ModeEnforce, c.Mode))
	}
	if c.Store == "" {
		errs = append(errs, errors.New("store: a DSN is required (sqlite://PATH or postgres://...)"))
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		errs = append(errs, fmt.Errorf("listen: %q is not host:port: %v", c.Listen, err))
	} else if !c.HasAuth() && !IsLoopback(c.Listen) {
		errs = append(errs, fmt.Errorf("listen: refusing to bind %s without authentication: set auth.bearer_token_file, auth.basic_auth or tls.client_ca_file, or listen on 127.0.0.1", c.Listen))
	}
	if c.MaxBodyBytes <= 0 {
		errs = append(errs, fmt.Errorf("max_body_bytes: must be positive, got %d", c.MaxBodyBytes))
	}
	if b := c.Auth.BasicAuth; b != nil && (b.Username == "") != (b.PasswordFile == "") {
		errs = append(errs, errors.New("auth.basic_auth: username and password_file must be set together"))
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		errs = append(errs, errors.New("tls: cert_file and key_file must be set together"))
	}
	if c.TLS.ClientCAFile != "" && c.TLS.CertFile == "" {
		errs = append(errs, errors.New("tls.client_ca_file: needs tls.cert_file and tls.key_file"))
	}
	if c.Worker.Concurrency < 1 {
		errs = append(errs, fmt.Errorf("worker.concurrency: must be at least 1, got %d", c.Worker.Concurrency))
	}
	if c.Worker.Lease.Duration < time.Second {
		errs = append(errs, fmt.Errorf("worker.lease: must be at least 1s, got %s", c.Worker.Lease))
	}
	if c.Worker.Poll.Duration <= 0 {
		errs = append(errs, fmt.Errorf("worker.poll: must be positive, got %s", c.Worker.Poll))
	}
	for _, p := range c.Guards.ApprovalPriorities {
		switch p {
		case "P0", "P1", "P2", "P3":
		default:
			errs = append(errs, fmt.Errorf("guards.approval_priorities: %q is not P0, P1, P2 or P3", p))
		}
	}
	for k, v := range map[string]int{"max_actions_per_target_per_hour": c.Guards.MaxPerTargetPerHour,
		"max_actions_per_hour": c.Guards.MaxPerHour, "circuit_breaker": c.Guards.CircuitBreaker} {
		if v < 0 {
			errs = append(errs, fmt.Errorf("guards.%s: must not be negative, got %d", k, v))
		}
	}
	if p := c.Guards.MinHealthyPercent; p < 0 || p > 100 {
		errs = append(errs, fmt.Errorf("guards.min_healthy_percent: must be between 0 and 100, got %d", p))
	}
	errs = append(errs, c.Escalation.validate()...)
	if c.HA.LeaderElection && (c.HA.LeaseNamespace == "" || c.HA.LeaseName == "") {
		errs = append(errs, errors.New("ha: leader_election needs lease_namespace and lease_name"))
	}
	if c.HA.LeaderElection && strings.HasPrefix(c.Store, "sqlite:") {
		// Each replica would open its own SQLite file: the Lease would pick
		// one to act, but the others would take no part in dedup, and a new
		// leader would not see the old one's intents, so it could act again.
		errs = append(errs, errors.New("ha: leader_election needs a store the replicas share (postgres://…); with SQLite each replica has its own database"))
	}
	errs = append(errs, c.validateAudit()...)
	if c.ExternalURL != "" {
		if u, err := url.Parse(c.ExternalURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("external_url: %q is not an http(s) URL", c.ExternalURL))
		}
	}
	errs = append(errs, c.Slack.validate()...)
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log.level: must be debug, info, warn or error, got %q", c.Log.Level))
	}
	return errors.Join(errs...)
}

// validateAudit mirrors the webhook rule for the audit endpoints: without
// their own token they are served only on loopback.
func (c *Config) validateAudit() []error {
	var errs []error
	if c.Audit.RetentionDays < 0 {
		errs = append(errs, fmt.Errorf("audit.retention_days: must be 0 (keep forever) or more, got %d", c.Audit.RetentionDays))
	}
	if _, _, err := net.SplitHostPort(c.Listen); err == nil && c.Audit.BearerTokenFile == "" && !IsLoopback(c.Listen) {
		errs = append(errs, fmt.Errorf("audit: refusing to serve /audit/* on %s without their own credential: set audit.bearer_token_file (REMEDIATOR_AUDIT_TOKEN_FILE), or listen on 127.0.0.1", c.Listen))
	}
	if f := c.Audit.BearerTokenFile; f != "" && f == c.Auth.BearerTokenFile {
		errs = append(errs, errors.New("audit.bearer_token_file: must not be the webhook's token file (auth.bearer_token_file): the audit endpoints take their own credential"))
	}
	return errs
}

// HasAuth reports whether any client authentication is configured.
func (c *Config) HasAuth() bool {
	return c.Auth.BearerTokenFile != "" ||
		(c.Auth.BasicAuth != nil && c.Auth.BasicAuth.Username != "") ||
		c.TLS.ClientCAFile != ""
}

// IsLoopback reports whether a listen address binds only loopback.
// An empty host (":9095") binds every interface and is not loopback.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Escalation (docs/escalation.md).

// EscalationConfig says who is told when an incident escalates, by
// priority, and how notifications are delivered.
type EscalationConfig struct {
	P0       EscalationLevel `yaml:"P0"`
	P1       EscalationLevel `yaml:"P1"`
	P2       EscalationLevel `yaml:"P2"`
	P3       EscalationLevel `yaml:"P3"`
	Delivery DeliveryConfig  `yaml:"delivery"`
}

// EscalationLevel is who is told at one priority.
type EscalationLevel struct {
	Webhooks []EscalationWebhook `yaml:"webhooks"`
	// Mention is passed in the notification (e.g. "@oncall-lead").
	Mention string `yaml:"mention"`
}

// EscalationWebhook is an outgoing webhook: the notification's JSON is
// POSTed to URL.
type EscalationWebhook struct {
	// Name identifies the target on the timeline; default "P1-webhook-1"
	// (priority and position). Unique.
	Name            string   `yaml:"name"`
	URL             string   `yaml:"url"`
	BearerTokenFile string   `yaml:"bearer_token_file"`
	Timeout         Duration `yaml:"timeout"` // per request; default 10s
}

// DeliveryConfig tunes the delivery of notifications.
type DeliveryConfig struct {
	MaxBackoff  Duration `yaml:"max_backoff"`   // longest wait between two attempts; default 5m
	GiveUpAfter Duration `yaml:"give_up_after"` // a notification still failing this long after its escalation is given up; default 24h
}

// Levels returns the levels by priority name.
func (e EscalationConfig) Levels() map[string]EscalationLevel {
	return map[string]EscalationLevel{"P0": e.P0, "P1": e.P1, "P2": e.P2, "P3": e.P3}
}

// WebhookName is the name of webhook i (0-based) of priority p.
func (w EscalationWebhook) WebhookName(p string, i int) string {
	if w.Name != "" {
		return w.Name
	}
	return fmt.Sprintf("%s-webhook-%d", p, i+1)
}

func (e EscalationConfig) validate() []error {
	var errs []error
	names := map[string]string{}
	for _, p := range []string{"P0", "P1", "P2", "P3"} {
		for i, w := range e.Levels()[p].Webhooks {
			where := fmt.Sprintf("escalation.%s.webhooks[%d]", p, i)
			u, err := url.Parse(w.URL)
			switch {
			case w.URL == "":
				errs = append(errs, fmt.Errorf("%s.url: required", where))
			case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
				errs = append(errs, fmt.Errorf("%s.url: %q is not an http(s) URL", where, w.URL))
			}
			if w.Timeout.Duration < 0 {
				errs = append(errs, fmt.Errorf("%s.timeout: must not be negative", where))
			}
			name := w.WebhookName(p, i)
			if other, dup := names[name]; dup {
				errs = append(errs, fmt.Errorf("%s.name: %q is also the name of %s", where, name, other))
			}
			names[name] = where
		}
	}
	if e.Delivery.MaxBackoff.Duration < 0 || e.Delivery.GiveUpAfter.Duration < 0 {
		errs = append(errs, errors.New("escalation.delivery: durations must not be negative"))
	}
	return errs
}

var (
	slackUserRE  = regexp.MustCompile(`^[UW][A-Z0-9]{2,}$`)
	slackGroupRE = regexp.MustCompile(`^S[A-Z0-9]{2,}$`)
)

func (c SlackConfig) validate() []error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf("slack."+format, a...)) }
	priority := func(key, p string) {
		switch p {
		case "P0", "P1", "P2", "P3":
		default:
			bad("%s: %q is not P0, P1, P2 or P3", key, p)
		}
	}
	channel := func(key, ch string) {
		if strings.TrimSpace(ch) == "" || strings.ContainsAny(ch, " \t\n") {
			bad("%s: %q is not a channel (#name or an id such as C0123)", key, ch)
		}
	}
	routes := c.DefaultChannel != "" || len(c.ChannelsByPriority)+len(c.ChannelsByNamespace)+len(c.ChannelsByLabel) > 0
	switch {
	case !c.Enabled() && (c.SigningSecretFile != "" || len(c.Approvers.Users)+len(c.Approvers.Usergroups) > 0 || routes && c.LogFile == ""):
		bad("bot_token_file (or webhook_url_file): required by the other slack settings")
		return errs
	case !c.Enabled() && c.LogFile == "":
		return errs
	case c.Enabled() && c.LogFile != "":
		bad("log_file: only without bot_token_file and webhook_url_file (it shows what would be sent instead)")
	}
	if c.BotTokenFile != "" && c.WebhookURLFile != "" {
		bad("bot_token_file and webhook_url_file: choose one mode")
	}
	if c.WebhookURLFile != "" && (c.SigningSecretFile != "" || len(c.Approvers.Users)+len(c.Approvers.Usergroups) > 0) {
		bad("webhook_url_file: an incoming webhook cannot carry buttons; approvals need bot_token_file and signing_secret_file")
	}
	if c.BotTokenFile != "" && c.DefaultChannel == "" {
		bad("default_channel: required with bot_token_file (it receives what no namespace or label route claims)")
	}
	if c.DefaultChannel != "" {
		channel("default_channel", c.DefaultChannel)
	}
	if len(c.Approvers.Users)+len(c.Approvers.Usergroups) > 0 && c.SigningSecretFile == "" {
		bad("approvers: need signing_secret_file to verify that button clicks come from Slack")
	}
	if c.APIURL != "" {
		if u, err := url.Parse(c.APIURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || !strings.HasSuffix(u.Path, "/") {
			bad("api_url: %q is not an http(s) URL ending in /", c.APIURL)
		}
	}
	for _, p := range slices.Sorted(maps.Keys(c.ChannelsByPriority)) {
		priority("channels_by_priority", p)
		channel("channels_by_priority."+p, c.ChannelsByPriority[p])
	}
	for _, ns := range slices.Sorted(maps.Keys(c.ChannelsByNamespace)) {
		channel("channels_by_namespace."+ns, c.ChannelsByNamespace[ns])
	}
	for _, label := range slices.Sorted(maps.Keys(c.ChannelsByLabel)) {
		for _, v := range slices.Sorted(maps.Keys(c.ChannelsByLabel[label])) {
			channel("channels_by_label."+label+"."+v, c.ChannelsByLabel[label][v])
		}
	}
	for _, p := range slices.Sorted(maps.Keys(c.OncallMentions)) {
		priority("oncall_mentions", p)
		if strings.TrimSpace(c.OncallMentions[p]) == "" {
			bad("oncall_mentions.%s: empty", p)
		}
	}
	for _, u := range c.Approvers.Users {
		if !slackUserRE.MatchString(u) {
			bad("approvers.users: %q is not a Slack user id (U… or W…)", u)
		}
	}
	for _, g := range c.Approvers.Usergroups {
		if !slackGroupRE.MatchString(g) {
			bad("approvers.usergroups: %q is not a Slack user group id (S…)", g)
		}
	}
	return errs
}
