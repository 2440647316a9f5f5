package escalation

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/remediator/remediator/internal/incident"
	"github.com/remediator/remediator/internal/store"
)

// PayloadVersion is the version of the notification body (Payload).
const PayloadVersion = "1"

// Payload is the JSON body of an escalation notification, the same for
// every channel that sends JSON (docs/escalation.md documents it).
type Payload struct {
	Version string `json:"version"`
	Type    string `json:"type"` // "escalation"
	// ID is unique per notification (escalation and target) and the same
	// on every delivery attempt: receivers deduplicate on it.
	ID string `json:"id"`
	// DedupKey is the incident's ID: every notification of one incident
	// shares it (PagerDuty's dedup_key, Opsgenie's alias).
	DedupKey string    `json:"dedupKey"`
	Time     time.Time `json:"time"`

	Incident PayloadIncident `json:"incident"`

	// Priority is the incident's priority now; PreviousPriority the one
	// before this escalation raised it.
	Priority         string `json:"priority"`
	PreviousPriority string `json:"previousPriority,omitempty"`
	// Level counts the response deadlines missed so far.
	Level int `json:"level"`
	// Reason is deadline, failed, blocked, ineffective, no-remedy or p0;
	// ReasonText says it in words.
	Reason     string `json:"reason"`
	ReasonText string `json:"reasonText"`
	// RespondBy is when this priority's response time ends (none at P0).
	RespondBy *time.Time `json:"respondBy,omitempty"`

	Target PayloadTarget `json:"target"`

	// Summary is one paragraph for people: what fired, what was done,
	// why it is handed over.
	Summary string `json:"summary"`
	// Actions are the remediations tried, oldest first.
	Actions []PayloadAction `json:"actions"`
	Links   PayloadLinks    `json:"links"`
}

// PayloadIncident is the incident as the notification describes it.
type PayloadIncident struct {
	ID             string            `json:"id"`
	AlertName      string            `json:"alertname"`
	Status         string            `json:"status"`
	Fingerprint    string            `json:"fingerprint"`
	Namespace      string            `json:"namespace,omitempty"`
	Labels         map[string]string `json:"labels"`
	Annotations    map[string]string `json:"annotations"`
	StartsAt       time.Time         `json:"startsAt"`
	FirstSeen      time.Time         `json:"firstSeen"`
	Acknowledged   bool              `json:"acknowledged"`
	AcknowledgedBy string            `json:"acknowledgedBy,omitempty"`
}

// Target is who a notification is for.
type Target struct {
	Name    string `json:"name"`
	Channel string `json:"channel"`
	Mention string `json:"mention,omitempty"`
}

// PayloadTarget is Target in the payload.
type PayloadTarget = Target

// PayloadAction is one remediation tried.
type PayloadAction struct {
	Action string    `json:"action"`
	Target string    `json:"target"` // kind/namespace/name
	State  string    `json:"state"`  // intent, applied, verified, failed, ineffective, abandoned
	Reason string    `json:"reason,omitempty"`
	Mode   string    `json:"mode"`
	At     time.Time `json:"at"`
}

// PayloadLinks point back to the service and the alert's source.
type PayloadLinks struct {
	Incident    string `json:"incident"`    // GET: the incident and its timeline
	Acknowledge string `json:"acknowledge"` // POST {"by","reason"}: stop the deadlines
	Source      string `json:"source,omitempty"`
}

type payloadBuilder struct {
	escalation  store.Escalation
	incident    incident.Incident
	state       store.EscalationState
	previous    string
	text        string
	action      string
	execs       []store.Execution
	respondBy   *time.Time
	externalURL string
	mention     string
}

func (b payloadBuilder) build(t Target) (json.RawMessage, error) {
	inc := b.incident
	e := b.escalation
	p := Payload{
		Version: PayloadVersion, Type: "escalation", ID: e.ID + "/" + t.Name, DedupKey: inc.ID, Time: e.At,
		Incident: PayloadIncident{
			ID: inc.ID, AlertName: inc.AlertName, Status: inc.Status, Fingerprint: inc.Fingerprint, Namespace: inc.Namespace,
			Labels: nonNil(inc.Labels), Annotations: nonNil(inc.Annotations), StartsAt: inc.StartsAt, FirstSeen: inc.FirstSeen,
			Acknowledged: b.state.Acknowledged(), AcknowledgedBy: b.state.AcknowledgedBy,
		},
		Priority: e.Priority, Level: e.Level, Reason: e.Reason, ReasonText: b.text, RespondBy: b.respondBy,
		Target: t, Actions: []PayloadAction{},
		Links: PayloadLinks{
			Incident:    strings.TrimSuffix(b.externalURL, "/") + "/api/v1/incidents/" + url.PathEscape(inc.ID),
			Acknowledge: strings.TrimSuffix(b.externalURL, "/") + "/api/v1/incidents/" + url.PathEscape(inc.ID) + "/ack",
			Source:      inc.GeneratorURL,
		},
	}
	if b.previous != "" && b.previous != e.Priority {
		p.PreviousPriority = b.previous
	}
	for _, x := range b.execs {
		at := x.UpdatedAt
		p.Actions = append(p.Actions, PayloadAction{Action: x.Action, Target: x.TargetKey(), State: x.State,
			Reason: x.Reason, Mode: x.Mode, At: at})
	}
	p.Summary = b.summary(p)
	return json.Marshal(p)
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// summary: "[P1] HighErrorRate (prod) firing since 10:00:00Z: <why>. Done
// so far: rollback Deployment/prod/web: failed (…). Acknowledge: <link>".
func (b payloadBuilder) summary(p Payload) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "[%s] %s", p.Priority, orDash(p.Incident.AlertName))
	if p.Incident.Namespace != "" {
		fmt.Fprintf(&sb, " (%s)", p.Incident.Namespace)
	}
	fmt.Fprintf(&sb, " %s since %s: %s.", p.Incident.Status, p.Incident.StartsAt.UTC().Format(time.RFC3339), b.text)
	if len(p.Actions) == 0 {
		sb.WriteString(" Nothing was changed automatically.")
	} else {
		sb.WriteString(" Done so far:")
		for i, a := range p.Actions {
			if i > 0 {
				sb.WriteString(";")
			}
			fmt.Fprintf(&sb, " %s %s: %s", a.Action, a.Target, a.State)
			if a.Reason != "" && a.Reason != a.State && a.Reason != b.text {
				fmt.Fprintf(&sb, " (%s)", truncate(a.Reason, 200))
			}
		}
		sb.WriteString(".")
	}
	if p.Incident.Acknowledged {
		fmt.Fprintf(&sb, " Acknowledged by %s.", p.Incident.AcknowledgedBy)
	} else {
		fmt.Fprintf(&sb, " Acknowledge: POST %s", p.Links.Acknowledge)
		if p.RespondBy != nil {
			fmt.Fprintf(&sb, " before %s", p.RespondBy.UTC().Format(time.RFC3339))
		}
		sb.WriteString(".")
	}
	return sb.String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// redactURL drops credentials and the query (which may carry a token)
// from a URL before it is recorded.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	u.User = nil
	if u.RawQuery != "" {
		u.RawQuery = "redacted"
	}
	u.Fragment = ""
	return u.String()
}
