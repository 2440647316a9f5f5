package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/remediator/remediator/internal/config"
)

// Precedence: defaults < file < REMEDIATOR_* < flags the user set.
func TestLoadConfigPrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(file, []byte("listen: 127.0.0.1:1001\nmode: enforce\nstore: sqlite://file.db\npolicies: /file/policies\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		env   []string
		args  []string
		check func(config.Config) bool
	}{
		{"file over defaults", nil, nil, func(c config.Config) bool {
			return c.Listen == "127.0.0.1:1001" && c.Mode == "enforce" && c.Store == "sqlite://file.db" && c.Worker.Concurrency == 4
		}},
		{"env over file", []string{"REMEDIATOR_LISTEN=127.0.0.1:1002", "REMEDIATOR_MODE=dry-run"}, nil, func(c config.Config) bool {
			return c.Listen == "127.0.0.1:1002" && c.Mode == "dry-run" && c.Store == "sqlite://file.db"
		}},
		{"flags over env", []string{"REMEDIATOR_LISTEN=127.0.0.1:1002"}, []string{"--listen", "127.0.0.1:1003", "--policies", "/flag"}, func(c config.Config) bool {
			return c.Listen == "127.0.0.1:1003" && c.Policies == "/flag" && c.Mode == "enforce"
		}},
		{"unset flags do not override", nil, []string{"--store", "sqlite://flag.db"}, func(c config.Config) bool {
			return c.Store == "sqlite://flag.db" && c.Listen == "127.0.0.1:1001"
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := newServeCmd()
			if err := cmd.Flags().Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			// Read the flag values the way RunE does.
			flags := config.Default()
			flags.Listen, _ = cmd.Flags().GetString("listen")
			flags.Store, _ = cmd.Flags().GetString("store")
			flags.Policies, _ = cmd.Flags().GetString("policies")
			flags.Mode, _ = cmd.Flags().GetString("mode")
			cfg, err := loadConfig(cmd, file, flags, tt.env)
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(cfg) {
				t.Fatalf("config %+v", cfg)
			}
		})
	}
}
