package config

import (
	"strings"
	"testing"
	"time"
)

func TestEscalationConfig(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		wantErr    string // substring; "" valid
		check      func(t *testing.T, c Config)
	}{
		{name: "levels", yaml: `
escalation:
  P0:
    mention: "@oncall-lead"
    webhooks:
      - url: https://events.pagerduty.example/v2/enqueue
        bearer_token_file: /run/secrets/pd
      - name: opsgenie
        url: http://opsgenie.internal/hook
        timeout: 5s
  P2:
    webhooks:
      - url: https://chat.example/hooks/team
  delivery:
    max_backoff: 2m
    give_up_after: 12h
`, check: func(t *testing.T, c Config) {
			e := c.Escalation
			if len(e.P0.Webhooks) != 2 || e.P0.Mention != "@oncall-lead" || e.P0.Webhooks[0].BearerTokenFile != "/run/secrets/pd" ||
				e.P0.Webhooks[1].Timeout.Duration != 5*time.Second || len(e.P2.Webhooks) != 1 || len(e.P1.Webhooks) != 0 ||
				e.Delivery.MaxBackoff.Duration != 2*time.Minute || e.Delivery.GiveUpAfter.Duration != 12*time.Hour {
				t.Errorf("escalation %+v", e)
			}
			if n := e.P0.Webhooks[0].WebhookName("P0", 0); n != "P0-webhook-1" {
				t.Errorf("default name %q", n)
			}
			if n := e.P0.Webhooks[1].WebhookName("P0", 1); n != "opsgenie" {
				t.Errorf("name %q", n)
			}
		}},
		{name: "unknown key", yaml: "escalation:\n  P1:\n    webhook: []\n", wantErr: `unknown field "escalation.<priority>.webhook"`},
		{name: "unknown priority", yaml: "escalation:\n  P4: {}\n", wantErr: `unknown field "escalation.P4"`},
		{name: "no url", yaml: "escalation:\n  P1:\n    webhooks:\n      - name: x\n", wantErr: "escalation.P1.webhooks[0].url: required"},
		{name: "not http", yaml: "escalation:\n  P1:\n    webhooks:\n      - url: ftp://x/y\n", wantErr: "not an http(s) URL"},
		{name: "duplicate names", yaml: "escalation:\n  P0:\n    webhooks:\n      - {name: a, url: http://x/1}\n  P1:\n    webhooks:\n      - {name: a, url: http://x/2}\n",
			wantErr: `"a" is also the name of escalation.P0.webhooks[0]`},
		// One external_url for every link (top level); the escalation
		// section once had its own, which nothing read.
		{name: "external url belongs at the top", yaml: "escalation:\n  external_url: https://r.example\n", wantErr: `unknown field "escalation.external_url"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Default()
			err := LoadFile(&cfg, writeFile(t, tc.yaml))
			if err == nil {
				err = cfg.Validate()
			}
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatal(err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			}
			if tc.check != nil {
				tc.check(t, cfg)
			}
		})
	}
}
