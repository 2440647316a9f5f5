package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/remediator/remediator/internal/incident"
)

// Timeline event types, as the stages record them (internal/incident,
// internal/planner, internal/executor; a test keeps them in step). They
// are repeated here so that this package depends on the timeline's
// contract, not on the packages that write it.
const (
	evReceived    = "received"
	evUnmatched   = "unmatched"
	evMatched     = "matched"
	evDiagnosed   = "diagnosed"
	evPlanned     = "planned"
	evProposed    = "proposed"
	evBlocked     = "blocked"
	evIntent      = "intent"
	evApplied     = "applied"
	evFailed      = "failed"
	evRolledOut   = "rollout-complete"
	evVerified    = "verified"
	evIneffective = "ineffective"
	evEscalated   = "escalated"
	evApproved    = "approved"
	evRejected    = "rejected"
	evExpired     = "expired"
	evReconciled  = "reconciled"
	evResolved    = "resolved"
)

// kinds maps the notable event types to their kind. Every other event
// (duplicate, intent, matched, cancelled, ...) is context, not news.
var kinds = map[string]Kind{
	evReceived:    KindFiring,
	evUnmatched:   KindUnmatched,
	evDiagnosed:   KindDiagnosis,
	evPlanned:     KindPlan,
	evProposed:    KindProposal,
	evBlocked:     KindBlocked,
	evApplied:     KindApplied,
	evFailed:      KindFailed,
	evRolledOut:   KindRolledOut,
	evVerified:    KindVerified,
	evIneffective: KindIneffective,
	evEscalated:   KindEscalated,
	evApproved:    KindApproved,
	evRejected:    KindRejected,
	evExpired:     KindExpired,
	evReconciled:  KindReconciled,
	evResolved:    KindResolved,
}

// Notable reports whether events of this type make a notification (so an
// outbox need not store the others).
func Notable(eventType string) bool {
	_, ok := kinds[eventType]
	return ok
}

// Options are what the timeline does not hold.
type Options struct {
	// AlertmanagerURL is the externalURL of the Alertmanager that sent the
	// incident's first notification ("" leaves the link out).
	AlertmanagerURL string
	// ServiceURL is where people reach this service (config external_url);
	// the incident link is ServiceURL/api/v1/incidents/ID ("" leaves it out).
	ServiceURL string
}

// state is what the timeline said up to an event.
type state struct {
	status                              Status
	priority, target, namespace, policy string
	change                              string
}

func (s *state) apply(ev incident.Event) {
	var d details
	_ = json.Unmarshal(ev.Details, &d) // best effort: a malformed detail only loses context
	if d.Target != nil && d.Target.Name != "" {
		s.target, s.namespace = d.Target.String(), d.Target.Namespace
	}
	if d.Policy != "" {
		s.policy = d.Policy
	}
	if d.Decision != nil {
		if d.Decision.Priority != "" {
			s.priority = d.Decision.Priority
		}
		if d.Decision.Policy != "" {
			s.policy = d.Decision.Policy
		}
	}
	if d.Priority != "" {
		s.priority = d.Priority
	}
	if c := d.Change.short(); c != "" {
		s.change = c
		if s.target == "" && d.Change.Target.Name != "" {
			s.target, s.namespace = d.Change.Target.String(), d.Change.Target.Namespace
		}
	}
	// An episode that ended stays ended (a new one is a new incident); the
	// change that ended it is verified after the alert resolved.
	switch s.status {
	case StatusVerified:
		return
	case StatusResolved:
		if ev.Type == evVerified {
			s.status = StatusVerified
		}
		return
	}
	switch ev.Type {
	case evReceived:
		s.status = StatusFiring
	case evProposed:
		s.status = StatusAwaiting
	case evApproved, evApplied, evIneffective:
		s.status = StatusRemediating
	case evRejected, evExpired:
		if s.status == StatusAwaiting {
			s.status = StatusFiring
		}
	case evVerified:
		s.status = StatusVerified
	case evFailed:
		s.status = StatusFailed
	case evEscalated:
		s.status = StatusEscalated
	case evResolved:
		s.status = StatusResolved
	}
}

// Build makes the notification of ev, an event of inc's timeline; prior
// are the events before it, oldest first (they give the status, priority,
// target and change that ev itself does not repeat). ok is false for
// events that are not news (Notable).
func Build(inc incident.Incident, prior []incident.Event, ev incident.Event, o Options) (n Notification, ok bool) {
	st := state{status: StatusFiring, namespace: inc.Namespace}
	for _, p := range prior {
		st.apply(p)
	}
	before := st
	st.apply(ev)
	kind, ok := kinds[ev.Type]
	if !ok {
		return Notification{}, false
	}
	n = Notification{
		Kind: kind, IncidentID: inc.ID, EventID: ev.ID, Time: ev.Time.UTC(),
		Alert:  Alert{Name: inc.AlertName, Labels: inc.Labels, Summary: alertSummary(inc), StartsAt: inc.StartsAt.UTC()},
		Target: st.target, Namespace: st.namespace, Policy: st.policy, Priority: st.priority, Status: st.status,
		RootChanged: kind == KindFiring || st.status != before.status || st.priority != before.priority,
		Change:      st.change,
		Actor:       ev.Actor,
		Links:       links(inc, o),
	}
	if n.Actor == "" {
		n.Actor = incident.ActorService
	}
	var d details
	_ = json.Unmarshal(ev.Details, &d)
	describe(&n, ev, d, st)
	return n, true
}

// Timeline builds the notifications of a whole timeline, oldest first.
func Timeline(inc incident.Incident, events []incident.Event, o Options) []Notification {
	var out []Notification
	for i, ev := range events {
		if n, ok := Build(inc, events[:i], ev, o); ok {
			out = append(out, n)
		}
	}
	return out
}

// Source is what Load reads: the store.
type Source interface {
	Incident(ctx context.Context, id string) (incident.Incident, []incident.Event, error)
	Notification(ctx context.Context, id string) (incident.Notification, error)
}

// Load builds the notification of event eventID of an incident from the
// store, as an outbox does at delivery time. When o.AlertmanagerURL is
// empty it is read from the notification that opened the incident. ok is
// false when the event is not news or not on the timeline.
func Load(ctx context.Context, src Source, incidentID string, eventID int64, o Options) (Notification, bool, error) {
	inc, events, err := src.Incident(ctx, incidentID)
	if err != nil {
		return Notification{}, false, err
	}
	for i, ev := range events {
		if ev.ID != eventID {
			continue
		}
		if o.AlertmanagerURL == "" {
			for _, e := range events {
				if e.Type == evReceived && e.NotificationID != "" {
					if nt, err := src.Notification(ctx, e.NotificationID); err == nil {
						o.AlertmanagerURL = nt.ExternalURL
					}
					break
				}
			}
		}
		n, ok := Build(inc, events[:i], ev, o)
		return n, ok, nil
	}
	return Notification{}, false, nil
}

func alertSummary(inc incident.Incident) string {
	for _, k := range []string{"summary", "description", "message"} {
		if v := strings.TrimSpace(inc.Annotations[k]); v != "" {
			return clip(firstLine(v), 300)
		}
	}
	return ""
}

func links(inc incident.Incident, o Options) []Link {
	var ls []Link
	if u := inc.GeneratorURL; safeURL(u) {
		ls = append(ls, Link{Label: LinkSource, URL: u})
	}
	if base := strings.TrimRight(o.AlertmanagerURL, "/"); safeURL(base) {
		matchers := []string{fmt.Sprintf("alertname=%q", inc.AlertName)}
		if ns := inc.Labels["namespace"]; ns != "" {
			matchers = append(matchers, fmt.Sprintf("namespace=%q", ns))
		}
		ls = append(ls, Link{Label: LinkAlertmanager,
			URL: base + "/#/alerts?filter=" + url.QueryEscape("{"+strings.Join(matchers, ",")+"}")})
	}
	if base := strings.TrimRight(o.ServiceURL, "/"); safeURL(base) {
		ls = append(ls, Link{Label: LinkIncident, URL: base + "/api/v1/incidents/" + url.PathEscape(inc.ID)})
	}
	return ls
}

// safeURL accepts absolute http(s) URLs only: a link is followed by people.
func safeURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// details is the union of the event details the stages record (only what
// notifications use).
type details struct {
	Policy      string     `json:"policy"`
	Target      *target    `json:"target"`
	TargetError string     `json:"targetError"`
	Evidence    []evidence `json:"evidence"`
	Mode        string     `json:"mode"`
	Decision    *struct {
		Policy     string `json:"policy"`
		Remedy     string `json:"remedy"`
		Action     string `json:"action"`
		Escalated  bool   `json:"escalated"`
		Priority   string `json:"priority"`
		Conditions []struct {
			Name  string `json:"name"`
			When  string `json:"when"`
			Value bool   `json:"value"`
		} `json:"conditions"`
	} `json:"decision"`
	Change      change    `json:"change"`
	ChangeError string    `json:"changeError"`
	Blocks      []block   `json:"blocks"`
	Remedy      string    `json:"remedy"`
	Priority    string    `json:"priority"`
	ExpiresAt   time.Time `json:"expiresAt"`
	Guards      *struct {
		Allowed bool    `json:"allowed"`
		Blocks  []block `json:"blocks"`
	} `json:"guards"`
	Guard   string `json:"guard"`
	Applied *struct {
		AlreadyDone bool   `json:"alreadyDone"`
		Detail      string `json:"detail"`
	} `json:"applied"`
	TimeToRemediateMs int64  `json:"timeToRemediateMs"`
	Deadline          string `json:"deadline"`
}

type target struct {
	Namespace string `json:"namespace"`
	Kind      string `json:"kind"`
	Name      string `json:"name"`
}

func (t target) String() string { return t.Kind + " " + t.Namespace + "/" + t.Name }

type block struct {
	Guard  string `json:"guard"`
	Reason string `json:"reason"`
}

// change is action.Change, as far as the short form needs it.
type change struct {
	Action   string `json:"action"`
	Target   target `json:"target"`
	Summary  string `json:"summary"`
	Rollback *struct {
		FromRevision int64             `json:"fromRevision"`
		ToRevision   int64             `json:"toRevision"`
		FromImages   map[string]string `json:"fromImages"`
		ToImages     map[string]string `json:"toImages"`
	} `json:"rollback"`
}

// short is the change as people say it: "rollback platform-service rev 7
// → 6, image platform-service:v1.1.0 → platform-service:v1.0.0". Other
// actions use their own summary, which is already short.
func (c change) short() string {
	r := c.Rollback
	if c.Action != "rollback" || r == nil {
		return c.Summary
	}
	s := fmt.Sprintf("rollback %s rev %d → %d", c.Target.Name, r.FromRevision, r.ToRevision)
	var names []string
	for name := range r.ToImages {
		if r.FromImages[name] != r.ToImages[name] {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	switch {
	case len(names) == 1:
		s += fmt.Sprintf(", image %s → %s", path.Base(r.FromImages[names[0]]), path.Base(r.ToImages[names[0]]))
	case len(names) > 1:
		s += fmt.Sprintf(", %d images", len(names))
	}
	return s
}

// describe fills the human part of n.
func describe(n *Notification, ev incident.Event, d details, st state) {
	reason := strings.TrimSpace(ev.Reason)
	switch n.Kind {
	case KindFiring:
		n.Title = n.Alert.Name + " is firing"
		n.Summary = n.Alert.Summary
	case KindUnmatched:
		n.Title = "No policy: nothing will be done automatically"
		n.Reason = reason
	case KindDiagnosis:
		n.Title = "Diagnosis"
		n.Summary = reason
		n.Bullets = evidenceLines(d.Evidence, 4)
	case KindPlan:
		describePlan(n, d, reason)
	case KindProposal:
		n.Title = "Dry-run: proposed, not applied"
		if d.Mode == "enforce" {
			n.Title = "Approval needed"
			if why, _, ok := strings.Cut(reason, ":"); ok {
				n.Reason = why
			}
		}
		n.Change = d.Change.short()
		n.Summary = "Nothing changes unless someone approves."
		if g := d.Guards; g != nil {
			if g.Allowed {
				n.Bullets = append(n.Bullets, "Guards would allow it now (they run again on approval).")
			} else {
				n.Bullets = append(n.Bullets, "Guards would block it now: "+blockText(g.Blocks))
			}
		}
		n.ExpiresAt = d.ExpiresAt.UTC()
		n.Actions = []Action{
			{ID: ActionApprove, Label: "Approve", Value: n.IncidentID, Style: "primary"},
			{ID: ActionReject, Label: "Reject", Value: n.IncidentID, Style: "danger"},
		}
	case KindBlocked:
		g := d.Guard
		if g == "" {
			g = "a guard"
		}
		n.Title = "Blocked by " + g
		n.Summary = strings.TrimPrefix(reason, "blocked by "+d.Guard+": ")
		n.Change = st.change
	case KindApplied:
		n.Title = "Applied"
		if d.Applied != nil && d.Applied.AlreadyDone {
			n.Title = "Already in effect"
		}
		n.Change = st.change
		n.Summary = reason
		if d.TimeToRemediateMs > 0 {
			n.Bullets = append(n.Bullets, "Time to remediate: "+humanDuration(time.Duration(d.TimeToRemediateMs)*time.Millisecond))
		}
	case KindRolledOut:
		n.Title = "Rollout complete"
		n.Summary = reason
	case KindVerified:
		n.Title = "Verified"
		n.Change = st.change
		n.Summary = reason
	case KindIneffective:
		n.Title = "Ineffective: trying the next remedy"
		n.Change = st.change
		n.Summary = reason
	case KindFailed:
		n.Title = "Failed"
		n.Change = st.change
		n.Summary = reason
	case KindReconciled:
		n.Title = "Reconciled an interrupted attempt"
		n.Summary = reason
	case KindEscalated:
		n.Title = "Escalated"
		if st.priority != "" {
			n.Title += " (" + st.priority + ")"
		}
		n.Summary = strings.TrimPrefix(reason, "escalated ("+d.Priority+"): ")
		switch dl, err := time.ParseDuration(d.Deadline); {
		case err != nil:
		case dl == 0:
			n.Bullets = append(n.Bullets, "Respond now.")
		default:
			n.Bullets = append(n.Bullets, "Respond within "+humanDuration(dl)+".")
		}
	case KindApproved, KindRejected:
		verb := map[Kind]string{KindApproved: "Approved", KindRejected: "Rejected"}[n.Kind]
		n.Title = verb + " by " + n.Actor
		if _, why, ok := strings.Cut(reason, ": "); ok {
			n.Reason = why
		}
		if n.Kind == KindApproved {
			n.Summary = "The guards run again before anything changes."
		} else {
			n.Summary = "Nothing will be done automatically."
		}
		n.Change = st.change
	case KindExpired:
		n.Title = "Proposal lapsed"
		n.Summary = reason
	case KindResolved:
		n.Title = "Resolved"
		n.Summary = "The alert resolved"
		if !n.Alert.StartsAt.IsZero() && n.Time.After(n.Alert.StartsAt) {
			n.Summary += " after " + humanDuration(n.Time.Sub(n.Alert.StartsAt))
		}
		n.Summary += "."
	}
}

func describePlan(n *Notification, d details, reason string) {
	dec := d.Decision
	n.Title = "Plan"
	if n.Priority != "" {
		n.Title += " (" + n.Priority + ")"
	}
	switch {
	case d.TargetError != "":
		n.Summary = "Escalate: no target: " + d.TargetError
		return
	case dec == nil:
		n.Summary = reason
		return
	case dec.Escalated:
		n.Summary = "Escalate: no remedy of policy " + dec.Policy + " applies."
		return
	case dec.Action == "escalate":
		n.Summary = "Escalate (remedy " + dec.Remedy + ")."
		return
	case d.ChangeError != "":
		n.Summary = fmt.Sprintf("Escalate: %s cannot be planned: %s", dec.Action, d.ChangeError)
		return
	}
	n.Change = d.Change.short()
	n.Summary = "Remedy " + dec.Remedy + " of policy " + dec.Policy
	for _, c := range dec.Conditions {
		if c.Name == dec.Remedy {
			n.Reason = "because " + c.When
		}
	}
	if len(d.Blocks) > 0 {
		n.Bullets = append(n.Bullets, "Pre-flight blocks it: "+blockText(d.Blocks))
	}
	if d.Mode == "dry-run" {
		n.Bullets = append(n.Bullets, "Dry-run: it will be proposed, not applied.")
	}
}

func blockText(bs []block) string {
	s := make([]string, len(bs))
	for i, b := range bs {
		s[i] = b.Guard + ": " + b.Reason
	}
	return strings.Join(s, "; ")
}

// humanDuration is a duration as people say it: 45s, 4m, 1h30m, 2d.
func humanDuration(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Round(time.Second)/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Round(time.Minute)/time.Minute))
	case d < 48*time.Hour:
		d = d.Round(time.Minute)
		h, m := int(d/time.Hour), int(d%time.Hour/time.Minute)
		if m == 0 {
			return fmt.Sprintf("%dh", h)
		}
		return fmt.Sprintf("%dh%dm", h, m)
	}
	return fmt.Sprintf("%dd", int(d.Round(24*time.Hour)/(24*time.Hour)))
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return strings.TrimSpace(l)
}

// clip shortens s to at most n runes, marking the cut.
func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
