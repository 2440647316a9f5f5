package testbed

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"sigs.k8s.io/yaml"
)

// DefaultAlertmanagerBinary is the Debian package's binary; override with
// $REMEDIATOR_ALERTMANAGER_BIN or AlertmanagerOptions.Binary.
const DefaultAlertmanagerBinary = "/usr/bin/prometheus-alertmanager"

// AlertmanagerOptions configure StartAlertmanager.
type AlertmanagerOptions struct {
	Dir             string   // config, storage and log; required
	WebhookURL      string   // receiver URL; required
	BearerTokenFile string   // sent as "Authorization: Bearer <file content>"; optional
	GroupBy         []string // default ["alertname"]; ["..."] groups by all labels
	GroupWait       time.Duration
	GroupInterval   time.Duration
	RepeatInterval  time.Duration
	Binary          string
	KillWithParent  bool
	StartTimeout    time.Duration // default 30s
}

// Alertmanager is a running prometheus-alertmanager.
type Alertmanager struct {
	URL        string // http://127.0.0.1:PORT
	ConfigFile string
	LogFile    string
	proc       *proc
}

// Alert is a postable alert of Alertmanager's API v2.
type Alert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	StartsAt     time.Time         `json:"startsAt,omitzero"`
	EndsAt       time.Time         `json:"endsAt,omitzero"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

func durationString(d, def time.Duration) string {
	if d <= 0 {
		d = def
	}
	// Alertmanager accepts Prometheus durations ("1500ms", "2s", "1h").
	return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
}

// StartAlertmanager writes a config that routes every alert to the webhook
// (send_resolved: true, bearer credentials from a file), starts Alertmanager
// on a free loopback port with clustering off, and waits until it is ready.
func StartAlertmanager(ctx context.Context, o AlertmanagerOptions) (*Alertmanager, error) {
	if o.Dir == "" || o.WebhookURL == "" {
		return nil, errors.New("testbed: AlertmanagerOptions.Dir and WebhookURL are required")
	}
	if o.Binary == "" {
		o.Binary = os.Getenv("REMEDIATOR_ALERTMANAGER_BIN")
	}
	if o.Binary == "" {
		o.Binary = DefaultAlertmanagerBinary
	}
	if o.StartTimeout == 0 {
		o.StartTimeout = 30 * time.Second
	}
	if len(o.GroupBy) == 0 {
		o.GroupBy = []string{"alertname"}
	}
	if err := os.MkdirAll(filepath.Join(o.Dir, "data"), 0o755); err != nil {
		return nil, err
	}
	webhook := map[string]any{"url": o.WebhookURL, "send_resolved": true}
	if o.BearerTokenFile != "" {
		abs, err := filepath.Abs(o.BearerTokenFile)
		if err != nil {
			return nil, err
		}
		webhook["http_config"] = map[string]any{
			"authorization": map[string]any{"type": "Bearer", "credentials_file": abs},
		}
	}
	cfg := map[string]any{
		"route": map[string]any{
			"receiver":        "remediator",
			"group_by":        o.GroupBy,
			"group_wait":      durationString(o.GroupWait, time.Second),
			"group_interval":  durationString(o.GroupInterval, 2*time.Second),
			"repeat_interval": durationString(o.RepeatInterval, time.Hour),
		},
		"receivers": []any{map[string]any{"name": "remediator", "webhook_configs": []any{webhook}}},
	}
	b, err := yaml.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	am := &Alertmanager{ConfigFile: filepath.Join(o.Dir, "alertmanager.yml"), LogFile: filepath.Join(o.Dir, "alertmanager.log")}
	if err := os.WriteFile(am.ConfigFile, b, 0o644); err != nil {
		return nil, err
	}
	ports, err := freePorts(1)
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(ports[0])
	am.URL = "http://" + addr
	am.proc, err = startProc("alertmanager", o.Binary, []string{
		"--config.file=" + am.ConfigFile,
		"--storage.path=" + filepath.Join(o.Dir, "data"),
		"--web.listen-address=" + addr,
		"--web.external-url=" + am.URL,
		"--cluster.listen-address=",
		"--log.level=debug",
	}, am.LogFile, o.KillWithParent)
	if err != nil {
		return nil, err
	}
	httpc := &http.Client{Timeout: 2 * time.Second}
	if err := pollUntil(ctx, o.StartTimeout, []*proc{am.proc}, func(ctx context.Context) (bool, error) {
		return httpOK(ctx, httpc, am.URL+"/-/ready", "")
	}); err != nil {
		err = am.proc.failure(fmt.Errorf("not ready: %w", err))
		_ = am.proc.stop(5 * time.Second)
		return nil, err
	}
	return am, nil
}

// PushAlerts posts alerts to /api/v2/alerts. An alert with EndsAt in the past
// resolves it (see ResolveAlerts).
func (a *Alertmanager) PushAlerts(ctx context.Context, alerts ...Alert) error {
	body, err := json.Marshal(alerts)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.URL+"/api/v2/alerts", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("testbed: POST /api/v2/alerts: %s: %s", resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}

// ResolveAlerts pushes the alerts again with EndsAt one second in the past
// (StartsAt must be what was pushed before, if it was set).
func (a *Alertmanager) ResolveAlerts(ctx context.Context, alerts ...Alert) error {
	now := time.Now().Add(-time.Second)
	res := make([]Alert, len(alerts))
	for i, al := range alerts {
		al.EndsAt = now
		if !al.StartsAt.IsZero() && al.StartsAt.After(now) {
			al.StartsAt = now.Add(-time.Second)
		}
		res[i] = al
	}
	return a.PushAlerts(ctx, res...)
}

// Stop terminates Alertmanager and waits for it to exit.
func (a *Alertmanager) Stop() error {
	if a == nil || a.proc == nil {
		return nil
	}
	return a.proc.stop(10 * time.Second)
}

// PID of the Alertmanager process.
func (a *Alertmanager) PID() int { return a.proc.pid() }
