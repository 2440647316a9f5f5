// Package intake turns an Alertmanager webhook body into a notification the
// store can keep. It is the only decoder of outside input on the webhook
// path, so it is strict about what it needs and lenient about the rest:
// unknown fields are ignored, missing optional fields are fine, but a body
// the service could not act on safely is refused with a message that says
// exactly what is wrong.
package intake

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/prometheus/alertmanager/template"
	"github.com/prometheus/common/model"

	"github.com/remediator/remediator/internal/incident"
)

// WebhookVersion is the only payload version Alertmanager has sent so far.
const WebhookVersion = "4"

// envelope is the webhook body: template.Data plus the fields the webhook
// notifier adds around it. Importing notify/webhook for these three fields
// would pull in the whole Alertmanager server.
type envelope struct {
	template.Data
	Version         string `json:"version"`
	GroupKey        string `json:"groupKey"`
	TruncatedAlerts uint64 `json:"truncatedAlerts"`
}

// Error is a decoding error caused by the body: it always maps to a 4xx.
type Error struct{ Msg string }

func (e *Error) Error() string { return e.Msg }

func errorf(format string, args ...any) error { return &Error{Msg: fmt.Sprintf(format, args...)} }

var fingerprintRE = regexp.MustCompile(`^[0-9a-f]{1,16}$`)

// Decode parses and validates one webhook body. The returned notification
// keeps body as its raw form; the caller sets ID, ReceivedAt and
// CorrelationID.
func Decode(body []byte) (*incident.Notification, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, errorf("empty body: expected an Alertmanager webhook JSON object")
	}
	var env envelope
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, describeJSONError(body, err)
	}
	if env.Version != WebhookVersion {
		if env.Version == "" {
			return nil, errorf("version: missing; expected %q (is this an Alertmanager webhook?)", WebhookVersion)
		}
		return nil, errorf("version: unsupported %q; expected %q", env.Version, WebhookVersion)
	}
	if env.Alerts == nil {
		return nil, errorf("alerts: missing")
	}
	n := &incident.Notification{
		Receiver:    env.Receiver,
		GroupKey:    env.GroupKey,
		Status:      env.Status,
		Reason:      env.NotificationReason,
		ExternalURL: env.ExternalURL,
		Body:        body,
		Alerts:      make([]incident.Alert, 0, len(env.Alerts)),
	}
	for i, a := range env.Alerts {
		alert, err := convertAlert(a)
		if err != nil {
			return nil, errorf("alerts[%d]: %s", i, err)
		}
		n.Alerts = append(n.Alerts, alert)
	}
	return n, nil
}

func convertAlert(a template.Alert) (incident.Alert, error) {
	if a.Status != incident.StatusFiring && a.Status != incident.StatusResolved {
		return incident.Alert{}, fmt.Errorf("status: must be %q or %q, got %q", incident.StatusFiring, incident.StatusResolved, a.Status)
	}
	if len(a.Labels) == 0 {
		return incident.Alert{}, errors.New("labels: missing or empty; an alert is identified by its labels")
	}
	if a.StartsAt.IsZero() {
		return incident.Alert{}, errors.New("startsAt: missing; an incident is keyed by fingerprint and startsAt")
	}
	fp := a.Fingerprint
	if fp == "" {
		// Alertmanager always sends it; other senders may not. The
		// fingerprint is a pure function of the label set, so compute it
		// the same way Alertmanager does.
		fp = model.LabelSet(toLabelSet(a.Labels)).Fingerprint().String()
	} else if !fingerprintRE.MatchString(fp) {
		return incident.Alert{}, fmt.Errorf("fingerprint: %q is not up to 16 lowercase hex digits", truncate(fp, 40))
	}
	return incident.Alert{
		Status:       a.Status,
		Fingerprint:  fp,
		StartsAt:     a.StartsAt.UTC(),
		EndsAt:       normalizeTime(a.EndsAt),
		Labels:       a.Labels,
		Annotations:  nonNil(a.Annotations),
		GeneratorURL: a.GeneratorURL,
	}, nil
}

func toLabelSet(kv template.KV) model.LabelSet {
	ls := make(model.LabelSet, len(kv))
	for k, v := range kv {
		ls[model.LabelName(k)] = model.LabelValue(v)
	}
	return ls
}

func normalizeTime(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC()
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

func describeJSONError(body []byte, err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var tim *time.ParseError
	switch {
	case errors.As(err, &syn):
		if syn.Offset >= int64(len(body)) {
			return errorf("malformed JSON: body ends early at byte %d (truncated?)", syn.Offset)
		}
		return errorf("malformed JSON at byte %d: %s", syn.Offset, syn.Error())
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			field = "body"
		}
		return errorf("%s: expected %s, got JSON %s (at byte %d)", field, typ.Type, typ.Value, typ.Offset)
	case errors.As(err, &tim):
		return errorf("malformed time %q: use RFC 3339, e.g. 2026-11-26T01:00:00Z", truncate(tim.Value, 60))
	default:
		return errorf("malformed JSON: %s", err)
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
