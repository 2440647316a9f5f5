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
