package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadFileFullExample(t *testing.T) {
	// The documented example must load and validate as is.
	cfg := Default()
	if err := LoadFile(&cfg, filepath.Join("..", "..", "docs", "config.example.yaml")); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestLoadFileOverridesDefaults(t *testing.T) {
	cfg := Default()
	p := writeFile(t, `
listen: 0.0.0.0:9999
store: postgres://u@127.0.0.1:5432/db
mode: enforce
auth:
  bearer_token_file: /run/secrets/token
  basic_auth:
    username: am
    password_file: /run/secrets/pw
tls:
  cert_file: c.pem
  key_file: k.pem
worker:
  lease: 45s
`)
	if err := LoadFile(&cfg, p); err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "0.0.0.0:9999" || cfg.Mode != ModeEnforce || cfg.Auth.BasicAuth.Username != "am" ||
		cfg.Worker.Lease.Duration != 45*time.Second || cfg.Worker.Concurrency != 4 || cfg.Policies != DefaultPolicies {
		t.Errorf("unexpected config: %+v", cfg)
	}
}

func TestLoadFileErrors(t *testing.T) {
	tests := []struct{ name, body, want string }{
		{"unknown top key", "lisen: x\n", `line 1: unknown field "lisen"`},
		{"unknown nested key", "auth:\n  bearer_token: x\n", `unknown field "auth.bearer_token"`},
		{"wrong type", "listen: x\nmax_body_bytes: lots\n", "line 2: cannot unmarshal"},
		{"bad duration", "worker:\n  lease: soon\n", "soon"},
		{"not yaml", "listen: [\n", "config"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Default()
			err := LoadFile(&cfg, writeFile(t, tt.body))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestApplyEnv(t *testing.T) {
	cfg := Default()
	err := ApplyEnv(&cfg, []string{
		"PATH=/bin", "REMEDIATOR_MODE=enforce", "REMEDIATOR_LISTEN=127.0.0.1:1",
		"REMEDIATOR_WEBHOOK_TOKEN_FILE=/t", "REMEDIATOR_BASIC_AUTH_USERNAME=u",
		"REMEDIATOR_MAX_BODY_BYTES=1024", "REMEDIATOR_CONFIG=/ignored", "REMEDIATOR_TEST_POSTGRES_DSN=x",
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Mode != ModeEnforce || cfg.Listen != "127.0.0.1:1" || cfg.Auth.BearerTokenFile != "/t" ||
		cfg.Auth.BasicAuth.Username != "u" || cfg.MaxBodyBytes != 1024 {
		t.Errorf("unexpected config: %+v", cfg)
	}
	if err := ApplyEnv(&cfg, []string{"REMEDIATOR_MOOD=enforce"}); err == nil || !strings.Contains(err.Error(), "REMEDIATOR_MOOD") {
		t.Errorf("unknown variable: got %v", err)
	}
	if err := ApplyEnv(&cfg, []string{"REMEDIATOR_MAX_BODY_BYTES=big"}); err == nil {
		t.Error("bad number accepted")
	}
	if err := ApplyEnv(&cfg, []string{"REMEDIATOR_AUDIT_TOKEN_FILE=/run/a", "REMEDIATOR_AUDIT_RETENTION_DAYS=30"}); err != nil ||
		cfg.Audit.BearerTokenFile != "/run/a" || cfg.Audit.RetentionDays != 30 {
		t.Errorf("audit variables: %+v, %v", cfg.Audit, err)
	}
	if err := ApplyEnv(&cfg, []string{"REMEDIATOR_AUDIT_RETENTION_DAYS=a month"}); err == nil {
		t.Error("bad retention accepted")
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Config)
		want string // "" means valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"bad mode", func(c *Config) { c.Mode = "yolo" }, `mode: must be "dry-run" or "enforce"`},
		{"all interfaces without auth", func(c *Config) { c.Listen = ":9095" }, "refusing to bind :9095 without authentication"},
		{"public ip without auth", func(c *Config) { c.Listen = "10.1.2.3:9095" }, "refusing to bind"},
		{"public with token", func(c *Config) {
			c.Listen = ":9095"
			c.Auth.BearerTokenFile, c.Audit.BearerTokenFile = "/t", "/a"
		}, ""},
		{"public with mtls", func(c *Config) {
			c.Listen = ":9095"
			c.TLS = TLSConfig{CertFile: "c", KeyFile: "k", ClientCAFile: "ca"}
			c.Audit.BearerTokenFile = "/a"
		}, ""},
		{"public without an audit token", func(c *Config) { c.Listen = ":9095"; c.Auth.BearerTokenFile = "/t" },
			"audit: refusing to serve /audit/* on :9095 without their own credential"},
		{"public with mtls, no audit token", func(c *Config) {
			c.Listen = "10.1.2.3:9095"
			c.TLS = TLSConfig{CertFile: "c", KeyFile: "k", ClientCAFile: "ca"}
		}, "audit: refusing to serve /audit/*"},
		{"audit token is the webhook's", func(c *Config) { c.Auth.BearerTokenFile, c.Audit.BearerTokenFile = "/t", "/t" },
			"audit.bearer_token_file: must not be the webhook's token file"},
		{"loopback without an audit token", func(c *Config) { c.Auth.BearerTokenFile = "/t" }, ""},
		{"negative retention", func(c *Config) { c.Audit.RetentionDays = -1 }, "audit.retention_days"},
		{"keep forever", func(c *Config) { c.Audit.RetentionDays = 0 }, ""},
		{"localhost", func(c *Config) { c.Listen = "localhost:1" }, ""},
		{"ipv6 loopback", func(c *Config) { c.Listen = "[::1]:1" }, ""},
		{"no port", func(c *Config) { c.Listen = "127.0.0.1" }, "not host:port"},
		{"half basic auth", func(c *Config) { c.Auth.BasicAuth = &BasicAuthConfig{Username: "u"} }, "set together"},
		{"half tls", func(c *Config) { c.TLS.CertFile = "c" }, "cert_file and key_file"},
		{"ca without cert", func(c *Config) { c.TLS.ClientCAFile = "ca" }, "client_ca_file"},
		{"empty store", func(c *Config) { c.Store = "" }, "store"},
		{"zero body", func(c *Config) { c.MaxBodyBytes = 0 }, "max_body_bytes"},
		{"bad level", func(c *Config) { c.Log.Level = "loud" }, "log.level"},
		{"short lease", func(c *Config) { c.Worker.Lease.Duration = time.Millisecond }, "worker.lease"},
		{"leader election on sqlite", func(c *Config) {
			c.HA = HAConfig{LeaderElection: true, LeaseNamespace: "ns", LeaseName: "l"}
		}, "ha: leader_election needs a store the replicas share"},
		{"leader election on postgres", func(c *Config) {
			c.HA = HAConfig{LeaderElection: true, LeaseNamespace: "ns", LeaseName: "l"}
			c.Store = "postgres://u@db/r"
		}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Default()
			tt.mod(&cfg)
			err := cfg.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestSlackConfig(t *testing.T) {
	cfg := Default()
	p := writeFile(t, `
external_url: https://remediator.example
slack:
  bot_token_file: /run/secrets/slack/bot-token
  signing_secret_file: /run/secrets/slack/signing-secret
  default_channel: "#incidents"
  channels_by_priority: {P0: "#incidents-p0"}
  channels_by_namespace: {prod: "#prod-alerts"}
  channels_by_label: {team: {payments: "#payments-oncall"}}
  oncall_mentions: {P0: "<!subteam^S0123ABCD>", P1: "<@U0123ABCD>"}
  approvers: {users: [U0123ABCD], usergroups: [S0456EFGH]}
`)
	if err := LoadFile(&cfg, p); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	s := cfg.Slack
	if !s.Enabled() || s.ChannelsByLabel["team"]["payments"] != "#payments-oncall" || s.OncallMentions["P0"] != "<!subteam^S0123ABCD>" ||
		s.Approvers.Usergroups[0] != "S0456EFGH" || cfg.ExternalURL != "https://remediator.example" {
		t.Errorf("slack config: %+v", s)
	}
	if err := ApplyEnv(&cfg, []string{"REMEDIATOR_SLACK_DEFAULT_CHANNEL=C0123", "REMEDIATOR_SLACK_WEBHOOK_URL_FILE=/w"}); err != nil {
		t.Fatal(err)
	}
	if cfg.Slack.DefaultChannel != "C0123" || cfg.Slack.WebhookURLFile != "/w" {
		t.Errorf("env: %+v", cfg.Slack)
	}

	// Log mode (make demo): no credentials, the messages written to a
	// file, routed as configured.
	cfg = Default()
	if err := LoadFile(&cfg, writeFile(t, "slack:\n  log_file: /tmp/a.log\n  default_channel: '#incidents'\n")); err != nil {
		t.Fatal(err)
	}
	if err := ApplyEnv(&cfg, []string{"REMEDIATOR_SLACK_LOG_FILE=/tmp/b.log"}); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil || cfg.Slack.Enabled() || cfg.Slack.LogFile != "/tmp/b.log" {
		t.Errorf("log mode: %v %+v", err, cfg.Slack)
	}
}

func TestSlackConfigErrors(t *testing.T) {
	tests := []struct{ name, body, want string }{
		{"unknown key", "slack:\n  bot_token: x\n", `unknown field "slack.bot_token"`},
		{"unknown approvers key", "slack:\n  approvers:\n    groups: [S1]\n", `unknown field "slack.approvers.groups"`},
		{"no mode", "slack:\n  default_channel: '#x'\n", "slack.bot_token_file (or webhook_url_file): required"},
		{"both modes", "slack:\n  bot_token_file: a\n  webhook_url_file: b\n  default_channel: '#x'\n", "choose one mode"},
		{"no default channel", "slack:\n  bot_token_file: a\n", "slack.default_channel: required"},
		{"webhook buttons", "slack:\n  webhook_url_file: b\n  signing_secret_file: s\n", "cannot carry buttons"},
		{"approvers without secret", "slack:\n  bot_token_file: a\n  default_channel: '#x'\n  approvers: {users: [U0123]}\n", "need signing_secret_file"},
		{"bad priority", "slack:\n  bot_token_file: a\n  default_channel: '#x'\n  channels_by_priority: {critical: '#y'}\n", `"critical" is not P0`},
		{"bad channel", "slack:\n  bot_token_file: a\n  default_channel: '#x'\n  channels_by_namespace: {prod: ''}\n", "slack.channels_by_namespace.prod"},
		{"bad user", "slack:\n  bot_token_file: a\n  signing_secret_file: s\n  default_channel: '#x'\n  approvers: {users: [alice]}\n", `"alice" is not a Slack user id`},
		{"bad group", "slack:\n  bot_token_file: a\n  signing_secret_file: s\n  default_channel: '#x'\n  approvers: {usergroups: [U0123]}\n", `"U0123" is not a Slack user group id`},
		{"bad api url", "slack:\n  bot_token_file: a\n  default_channel: '#x'\n  api_url: http://127.0.0.1:1/api\n", "slack.api_url"},
		{"bad external url", "external_url: remediator.example\n", "external_url"},
		{"log file and a mode", "slack:\n  webhook_url_file: b\n  log_file: /tmp/slack.log\n", "slack.log_file: only without"},
		{"log file and buttons", "slack:\n  log_file: /tmp/slack.log\n  signing_secret_file: s\n", "slack.bot_token_file (or webhook_url_file): required"},
		{"log file, bad channel", "slack:\n  log_file: /tmp/slack.log\n  default_channel: 'two words'\n", "slack.default_channel"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Default()
			err := LoadFile(&cfg, writeFile(t, tc.body))
			if err == nil {
				err = cfg.Validate()
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}
