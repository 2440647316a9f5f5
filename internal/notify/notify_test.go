package notify_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/remediator/remediator/internal/executor"
	"github.com/remediator/remediator/internal/incident"
	"github.com/remediator/remediator/internal/notify"
	"github.com/remediator/remediator/internal/notify/notifytest"
	"github.com/remediator/remediator/internal/planner"
)

// The event types notify maps are the ones the stages record.
func TestEventTypesMatchTheStages(t *testing.T) {
	for _, typ := range []string{
		incident.EventReceived, incident.EventResolved, incident.EventUnmatched,
		planner.EventDiagnosed, planner.EventPlanned,
		executor.EventProposed, executor.EventBlocked, executor.EventApplied, executor.EventFailed, executor.EventRolledOut,
		executor.EventVerified, executor.EventIneffective, executor.EventEscalated, executor.EventApproved,
		executor.EventRejected, executor.EventExpired, executor.EventReconciled,
	} {
		if !notify.Notable(typ) {
			t.Errorf("event type %q makes no notification", typ)
		}
	}
	for _, typ := range []string{incident.EventDuplicate, incident.EventCancelled, planner.EventMatched, executor.EventIntent, executor.EventDuplicate} {
		if notify.Notable(typ) {
			t.Errorf("event type %q should not make a notification", typ)
		}
	}
}

func opts() notify.Options {
	return notify.Options{AlertmanagerURL: notifytest.AlertmanagerURL, ServiceURL: notifytest.ServiceURL}
}

func TestTimelineApproved(t *testing.T) {
	inc, events := notifytest.Approved()
	ns := notify.Timeline(inc, events, opts())
	var got []string
	for _, n := range ns {
		root := ""
		if n.RootChanged {
			root = " root"
		}
		got = append(got, fmt.Sprintf("%s %s %s%s", n.Kind, n.Status, n.Priority, root))
	}
	want := []string{
		"firing firing  root",
		"diagnosis firing ",
		"plan firing P0 root",
		"proposal awaiting-approval P0 root",
		"approved remediating P0 root",
		"applied remediating P0",
		"rolled-out remediating P0",
		"resolved resolved P0 root",
		"verified verified P0 root",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("notifications:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, n := range ns {
		if n.IncidentID != inc.ID || n.Alert.Name != "HighErrorRate" || n.Target != "Deployment prod/platform-service" && n.Kind != notify.KindFiring && n.Kind != notify.KindDiagnosis {
			t.Errorf("%s: incident %q alert %q target %q", n.Kind, n.IncidentID, n.Alert.Name, n.Target)
		}
		if len(n.Links) != 3 {
			t.Errorf("%s: links %v", n.Kind, n.Links)
		}
	}
	plan := ns[2]
	const change = "rollback platform-service rev 7 → 6, image platform-service:v1.1.0 → platform-service:v1.0.0"
	if plan.Change != change || !strings.HasPrefix(plan.Reason, "because rolloutHistory.newestRolloutAge") {
		t.Errorf("plan: change %q reason %q", plan.Change, plan.Reason)
	}
	prop := ns[3]
	if len(prop.Actions) != 2 || prop.Actions[0].ID != notify.ActionApprove || prop.Actions[0].Value != inc.ID ||
		prop.Actions[1].ID != notify.ActionReject || prop.ExpiresAt.IsZero() || prop.Change != change || prop.Summary != "Nothing changes unless someone approves." {
		t.Errorf("proposal: %+v", prop)
	}
	diag := ns[1]
	if len(diag.Bullets) != 4 || !strings.Contains(diag.Bullets[0], "revision 7 (platform-service:v1.1.0) rolled out 4m ago") ||
		!strings.Contains(diag.Bullets[1], `9 error lines, top "payment gateway returned <n> for order <n>" ×6`) ||
		!strings.HasPrefix(diag.Bullets[3], "resources: failed: ") {
		t.Errorf("diagnosis bullets: %q", diag.Bullets)
	}
	if a := ns[5]; a.Actor != "slack:U024BE7LH (alice)" || a.Change != change {
		t.Errorf("applied: actor %q change %q", a.Actor, a.Change)
	}
	if r := ns[7]; r.Summary != "The alert resolved after 12m." {
		t.Errorf("resolved: %q", r.Summary)
	}
	if !strings.Contains(ns[0].Links[1].URL, "/#/alerts?filter=%7Balertname%3D%22HighErrorRate%22%2Cnamespace%3D%22prod%22%7D") ||
		ns[0].Links[2].URL != notifytest.ServiceURL+"/api/v1/incidents/"+inc.ID {
		t.Errorf("links: %v", ns[0].Links)
	}
}

func TestTimelineFailedAndBlocked(t *testing.T) {
	inc, events := notifytest.Failed()
	ns := notify.Timeline(inc, events, opts())
	last := ns[len(ns)-1]
	if last.Kind != notify.KindEscalated || last.Status != notify.StatusEscalated || last.Priority != "P0" ||
		last.Title != "Escalated (P0)" || strings.HasPrefix(last.Summary, "escalated") || last.Bullets[0] != "Respond now." {
		t.Errorf("escalated: %+v", last)
	}
	failed := ns[len(ns)-2]
	if failed.Kind != notify.KindFailed || failed.Status != notify.StatusFailed || !failed.RootChanged || failed.Change == "" {
		t.Errorf("failed: %+v", failed)
	}

	inc, events = notifytest.Blocked()
	ns = notify.Timeline(inc, events, opts())
	b := ns[len(ns)-2]
	if b.Kind != notify.KindBlocked || b.Title != "Blocked by cooldown" || b.Summary != "last action on Deployment prod/platform-service was 3m ago; cooldown is 10m" || b.RootChanged {
		t.Errorf("blocked: %+v", b)
	}
	if e := ns[len(ns)-1]; e.Priority != "P1" || e.Bullets[0] != "Respond within 30m." {
		t.Errorf("escalated P1: %+v", e)
	}
}

func TestBuildSkipsContext(t *testing.T) {
	inc, events := notifytest.Approved()
	if _, ok := notify.Build(inc, nil, incident.Event{Type: "intent"}, opts()); ok {
		t.Error("intent made a notification")
	}
	// A malformed detail loses context, never the notification.
	n, ok := notify.Build(inc, events[:1], incident.Event{Type: "planned", Details: []byte(`{"decision": 7`)}, opts())
	if !ok || n.Kind != notify.KindPlan {
		t.Errorf("malformed details: %+v %v", n, ok)
	}
	// No links without safe URLs.
	inc.GeneratorURL = "javascript:alert(1)"
	n, _ = notify.Build(inc, nil, events[0], notify.Options{AlertmanagerURL: "ftp://x"})
	if len(n.Links) != 0 {
		t.Errorf("links: %v", n.Links)
	}
}

type source struct {
	inc    incident.Incident
	events []incident.Event
}

func (s source) Incident(_ context.Context, id string) (incident.Incident, []incident.Event, error) {
	if id != s.inc.ID {
		return incident.Incident{}, nil, errors.New("not found")
	}
	return s.inc, s.events, nil
}

func (s source) Notification(_ context.Context, id string) (incident.Notification, error) {
	return incident.Notification{ID: id, ExternalURL: "http://am.example:9093/"}, nil
}

func TestLoad(t *testing.T) {
	inc, events := notifytest.Approved()
	src := source{inc, events}
	n, ok, err := notify.Load(context.Background(), src, inc.ID, events[4].ID, notify.Options{})
	if err != nil || !ok || n.Kind != notify.KindProposal || n.Priority != "P0" || n.EventID != events[4].ID {
		t.Fatalf("load: %+v %v %v", n, ok, err)
	}
	if len(n.Links) != 2 || !strings.HasPrefix(n.Links[1].URL, "http://am.example:9093/#/alerts") {
		t.Errorf("links: %v", n.Links)
	}
	if _, ok, err := notify.Load(context.Background(), src, inc.ID, 999, notify.Options{}); ok || err != nil {
		t.Errorf("unknown event: %v %v", ok, err)
	}
	if _, _, err := notify.Load(context.Background(), src, "nope", 1, notify.Options{}); err == nil {
		t.Error("unknown incident: no error")
	}
}

func TestNext(t *testing.T) {
	base := errors.New("x")
	for _, tc := range []struct {
		err   error
		retry bool
		wait  time.Duration
	}{
		{nil, false, 0},
		{&notify.RetryAfter{After: 7 * time.Second, Err: base}, true, 7 * time.Second},
		{fmt.Errorf("send: %w", &notify.RetryAfter{After: time.Second, Err: base}), true, time.Second},
		{&notify.Retryable{Err: base}, true, 0},
		{&notify.Permanent{Err: base}, false, 0},
		{base, true, 0},
	} {
		retry, wait := notify.Next(tc.err)
		if retry != tc.retry || wait != tc.wait {
			t.Errorf("Next(%v) = %v %v, want %v %v", tc.err, retry, wait, tc.retry, tc.wait)
		}
	}
}

func TestStatusLabel(t *testing.T) {
	for s, want := range map[notify.Status]string{notify.StatusAwaiting: "Awaiting approval", notify.StatusRemediating: "Remediating", "": "Unknown"} {
		if got := s.Label(); got != want {
			t.Errorf("%q.Label() = %q, want %q", s, got, want)
		}
	}
}
