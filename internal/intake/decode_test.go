package intake

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/remediator/remediator/internal/incident"
)

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodeRealShapedPayloads(t *testing.T) {
	type want struct {
		receiver, status, reason string
		alerts                   []incident.Alert
	}
	tests := []struct {
		file string
		want want
	}{
		{"firing.json", want{
			receiver: "remediator", status: "firing",
			alerts: []incident.Alert{{
				Status: "firing", Fingerprint: "a1b2c3d4e5f60718",
				StartsAt: time.Date(2026, 11, 26, 1, 0, 0, 123456789, time.UTC),
				Labels:   map[string]string{"alertname": "HighErrorRate", "namespace": "prod", "deployment": "platform-service", "severity": "critical"},
			}},
		}},
		{"resolved.json", want{
			receiver: "remediator", status: "resolved", reason: "all alerts resolved",
			alerts: []incident.Alert{{
				Status: "resolved", Fingerprint: "a1b2c3d4e5f60718",
				StartsAt: time.Date(2026, 11, 26, 1, 0, 0, 123456789, time.UTC),
				EndsAt:   time.Date(2026, 11, 26, 1, 12, 0, 0, time.UTC),
			}},
		}},
		{"mixed.json", want{
			receiver: `web\.hook`, status: "firing", reason: "new alerts added to the group",
			alerts: []incident.Alert{
				{Status: "firing", Fingerprint: "00000000000000ff", StartsAt: time.Date(2026, 11, 26, 1, 5, 0, 0, time.UTC),
					EndsAt: time.Date(2026, 11, 26, 1, 25, 0, 0, time.UTC)},
				// +01:00 offsets are normalised to UTC so the episode key is stable.
				{Status: "resolved", Fingerprint: "1234abcd1234abcd", StartsAt: time.Date(2026, 11, 25, 23, 40, 0, 0, time.UTC),
					EndsAt: time.Date(2026, 11, 25, 23, 58, 0, 0, time.UTC)},
			},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			body := readTestdata(t, tt.file)
			n, err := Decode(body)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if n.Receiver != tt.want.receiver || n.Status != tt.want.status || n.Reason != tt.want.reason {
				t.Errorf("got receiver=%q status=%q reason=%q", n.Receiver, n.Status, n.Reason)
			}
			if string(n.Body) != string(body) {
				t.Error("raw body not kept as received")
			}
			if len(n.Alerts) != len(tt.want.alerts) {
				t.Fatalf("got %d alerts, want %d", len(n.Alerts), len(tt.want.alerts))
			}
			for i, w := range tt.want.alerts {
				g := n.Alerts[i]
				if g.Status != w.Status || g.Fingerprint != w.Fingerprint || !g.StartsAt.Equal(w.StartsAt) || !g.EndsAt.Equal(w.EndsAt) {
					t.Errorf("alert %d: got %+v", i, g)
				}
				if g.StartsAt.Location() != time.UTC {
					t.Errorf("alert %d: startsAt not UTC", i)
				}
				if g.Annotations == nil {
					t.Errorf("alert %d: nil annotations", i)
				}
				for k, v := range w.Labels {
					if g.Labels[k] != v {
						t.Errorf("alert %d: label %s=%q, want %q", i, k, g.Labels[k], v)
					}
				}
			}
		})
	}
}

func TestDecodeZeroEndsAtIsZero(t *testing.T) {
	n, err := Decode(readTestdata(t, "firing.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !n.Alerts[0].EndsAt.IsZero() {
		t.Errorf("endsAt %v, want zero", n.Alerts[0].EndsAt)
	}
}

func TestDecodeComputesMissingFingerprint(t *testing.T) {
	body := `{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"alertname":"A","job":"x"},"startsAt":"2026-11-26T01:00:00Z"}]}`
	n, err := Decode([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	fp := n.Alerts[0].Fingerprint
	if len(fp) != 16 {
		t.Fatalf("fingerprint %q", fp)
	}
	// Same labels in another order → same fingerprint.
	body2 := `{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"job":"x","alertname":"A"},"startsAt":"2026-11-26T01:00:00Z"}]}`
	n2, err := Decode([]byte(body2))
	if err != nil {
		t.Fatal(err)
	}
	if n2.Alerts[0].Fingerprint != fp {
		t.Errorf("fingerprint depends on label order: %s vs %s", fp, n2.Alerts[0].Fingerprint)
	}
}

func TestDecodeErrors(t *testing.T) {
	firing := string(readTestdata(t, "firing.json"))
	tests := []struct {
		name, body, wantSubstr string
	}{
		{"empty", "", "empty body"},
		{"whitespace", "  \n", "empty body"},
		{"not json", "hello", "malformed JSON at byte 1"},
		{"truncated", firing[:len(firing)/2], "truncated"},
		{"array", `[1,2]`, "expected intake.envelope"},
		{"no version", `{"status":"firing","alerts":[]}`, "version: missing"},
		{"wrong version", `{"version":"3","alerts":[]}`, `version: unsupported "3"`},
		{"version as number", `{"version":4,"alerts":[]}`, "version: expected string"},
		{"no alerts", `{"version":"4"}`, "alerts: missing"},
		{"alerts not array", `{"version":"4","alerts":{}}`, "alerts: expected"},
		{"bad status", `{"version":"4","alerts":[{"status":"pending","labels":{"a":"b"},"startsAt":"2026-11-26T01:00:00Z"}]}`, `alerts[0]: status: must be "firing" or "resolved", got "pending"`},
		{"no labels", `{"version":"4","alerts":[{"status":"firing","startsAt":"2026-11-26T01:00:00Z"}]}`, "alerts[0]: labels: missing"},
		{"label not string", `{"version":"4","alerts":[{"status":"firing","labels":{"a":1},"startsAt":"2026-11-26T01:00:00Z"}]}`, "expected string"},
		{"no startsAt", `{"version":"4","alerts":[{"status":"firing","labels":{"a":"b"}}]}`, "alerts[0]: startsAt: missing"},
		{"bad time", `{"version":"4","alerts":[{"status":"firing","labels":{"a":"b"},"startsAt":"yesterday"}]}`, "malformed time"},
		{"bad fingerprint", `{"version":"4","alerts":[{"status":"firing","labels":{"a":"b"},"startsAt":"2026-11-26T01:00:00Z","fingerprint":"'; DROP TABLE"}]}`, "fingerprint: "},
		{"second alert bad", `{"version":"4","alerts":[{"status":"firing","labels":{"a":"b"},"startsAt":"2026-11-26T01:00:00Z"},{"status":"firing","labels":{},"startsAt":"2026-11-26T01:00:00Z"}]}`, "alerts[1]: labels"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode([]byte(tt.body))
			if err == nil {
				t.Fatal("no error")
			}
			if _, ok := err.(*Error); !ok {
				t.Errorf("error type %T, want *intake.Error", err)
			}
			if !strings.Contains(err.Error(), tt.wantSubstr) {
				t.Errorf("error %q does not contain %q", err, tt.wantSubstr)
			}
		})
	}
}

func TestDecodeEmptyAlertsIsValid(t *testing.T) {
	n, err := Decode([]byte(`{"version":"4","status":"resolved","alerts":[]}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(n.Alerts) != 0 {
		t.Fatalf("got %d alerts", len(n.Alerts))
	}
}

func FuzzDecode(f *testing.F) {
	for _, name := range []string{"firing.json", "resolved.json", "mixed.json"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"version":"4","alerts":[{"status":"firing","labels":{"a":"b"},"startsAt":"2026-11-26T01:00:00Z"}]}`))
	f.Add([]byte(`{"version":"4","alerts":null}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		n, err := Decode(body)
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			if n != nil {
				t.Fatal("notification returned with an error")
			}
			return
		}
		// Whatever is accepted must be safe for the store: a valid status,
		// labels, a fingerprint and a UTC startsAt on every alert.
		for i, a := range n.Alerts {
			if a.Status != incident.StatusFiring && a.Status != incident.StatusResolved {
				t.Fatalf("alert %d: status %q accepted", i, a.Status)
			}
			if len(a.Labels) == 0 || !fingerprintRE.MatchString(a.Fingerprint) || a.StartsAt.IsZero() {
				t.Fatalf("alert %d accepted without identity: %+v", i, a)
			}
			if a.StartsAt.Location() != time.UTC {
				t.Fatalf("alert %d: startsAt not UTC", i)
			}
		}
	})
}
