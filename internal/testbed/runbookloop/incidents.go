package runbookloop

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/remediator/remediator/internal/incident"
	"github.com/remediator/remediator/internal/store"
)

// Timeline is an incident's timeline, oldest first.
type Timeline []incident.Event

// Types is the event types in order.
func (tl Timeline) Types() []string {
	out := make([]string, len(tl))
	for i, e := range tl {
		out[i] = e.Type
	}
	return out
}

// First is the first event of type typ.
func (tl Timeline) First(typ string) (incident.Event, bool) {
	for _, e := range tl {
		if e.Type == typ {
			return e, true
		}
	}
	return incident.Event{}, false
}

// Has reports whether the timeline has an event of each type.
func (tl Timeline) Has(types ...string) bool {
	for _, typ := range types {
		if _, ok := tl.First(typ); !ok {
			return false
		}
	}
	return true
}

// String is one line per event, for failure messages.
func (tl Timeline) String() string {
	var b strings.Builder
	for _, e := range tl {
		fmt.Fprintf(&b, "\n  %s %s[%s] %s", e.Time.Format("15:04:05.000"), e.Type, e.Actor, e.Reason)
	}
	return b.String()
}

// InOrder checks that the first events of each of types exist and come in
// that order.
func InOrder(got []string, types ...string) error {
	prev := -1
	for _, typ := range types {
		i := slices.Index(got, typ)
		switch {
		case i < 0:
			return fmt.Errorf("no %s in %v", typ, got)
		case i < prev:
			return fmt.Errorf("%s out of order (want %v) in %v", typ, types, got)
		}
		prev = i
	}
	return nil
}

// None checks that none of types occurs.
func None(got []string, types ...string) error {
	for _, typ := range types {
		if slices.Contains(got, typ) {
			return fmt.Errorf("%s in %v", typ, got)
		}
	}
	return nil
}

// View is one incident as GET /api/v1/incidents/{id} answers.
type View struct {
	Incident   incident.Incident
	Timeline   Timeline
	Escalation store.EscalationState
}

// Incidents lists remediator's incidents of alertname ("" all), newest
// first.
func (l *Loop) Incidents(alertname string) []incident.Incident {
	l.t.Helper()
	var list struct {
		Incidents []incident.Incident `json:"incidents"`
	}
	q := url.Values{"limit": {"100"}}
	if alertname != "" {
		q.Set("alertname", alertname)
	}
	if err := getJSON(l.t.Context(), l.Remediator+"/api/v1/incidents?"+q.Encode(), l.token, &list); err != nil {
		l.t.Fatalf("remediator: %v", err)
	}
	return list.Incidents
}

// Incident reads one incident with its timeline.
func (l *Loop) Incident(id string) View {
	l.t.Helper()
	var one struct {
		Incident   incident.Incident     `json:"incident"`
		Timeline   Timeline              `json:"timeline"`
		Escalation store.EscalationState `json:"escalation"`
	}
	if err := getJSON(l.t.Context(), l.Remediator+"/api/v1/incidents/"+url.PathEscape(id), l.token, &one); err != nil {
		l.t.Fatalf("remediator: %v", err)
	}
	return View(one)
}

// WaitIncident waits until the one incident of alertname satisfies ok
// (called on every poll, so a caller may show its progress) and returns
// it. More than one incident of alertname fails: a scenario is one alert
// episode.
func (l *Loop) WaitIncident(alertname, what string, d time.Duration, ok func(View) bool) View {
	l.t.Helper()
	var last View
	err := poll(l.t.Context(), d, func() (bool, error) {
		incs := l.Incidents(alertname)
		switch len(incs) {
		case 0:
			return false, fmt.Errorf("no %s incident", alertname)
		case 1:
		default:
			ids := make([]string, len(incs))
			for i, inc := range incs {
				ids[i] = inc.ID
			}
			l.t.Fatalf("remediator: %d %s incidents, want one episode: %v", len(incs), alertname, ids)
		}
		last = l.Incident(incs[0].ID)
		return ok(last), nil
	})
	if err != nil {
		l.t.Fatalf("remediator: %s incident: no %s: %v; prometheus alerts %+v; incident %s status %q timeline:%s",
			alertname, what, err, l.Alerts(), last.Incident.ID, last.Incident.Status, last.Timeline)
	}
	return last
}

// Approve approves the incident's pending proposal through the API
// (POST /api/v1/incidents/{id}/approve), as an operator would.
func (l *Loop) Approve(id, by, reason string) store.Proposal {
	l.t.Helper()
	var r struct {
		Proposal store.Proposal `json:"proposal"`
	}
	l.Post("/api/v1/incidents/"+url.PathEscape(id)+"/approve", map[string]string{"by": by, "reason": reason}, &r)
	return r.Proposal
}

// Post sends an operator request to remediator's API (path from the root,
// body as JSON, with the API token) and decodes its 200 answer into v.
func (l *Loop) Post(path string, body, v any) {
	l.t.Helper()
	if err := postJSON(l.t.Context(), l.Remediator+path, l.token, body, v); err != nil {
		l.t.Fatalf("remediator: %v", err)
	}
}
