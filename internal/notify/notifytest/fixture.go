// Package notifytest holds incident timelines for the notification tests
// (golden files of every renderer). The event details are built from the
// stages' own types (action.Change, probe.Result, policy.Decision,
// guard.Decision) and with their words, so a change to what the timeline
// records shows up here as a test failure, not as a silent gap in the
// messages people get.
package notifytest

import (
	"encoding/json"
	"errors"
	"time"

	"github.com/remediator/remediator/internal/action"
	"github.com/remediator/remediator/internal/guard"
	"github.com/remediator/remediator/internal/incident"
	"github.com/remediator/remediator/internal/policy"
	"github.com/remediator/remediator/internal/probe"
)

// T0 is when the fixtures' alert started.
var T0 = time.Date(2026, 11, 26, 1, 0, 0, 0, time.UTC)

// Target is the fixtures' workload.
var Target = probe.Target{Namespace: "prod", Kind: "Deployment", Name: "platform-service"}

// Options are the links the fixtures are rendered with.
const (
	AlertmanagerURL = "http://alertmanager.example:9093"
	ServiceURL      = "https://remediator.example"
)

// Incident returns the fixtures' incident with the given id and status.
func Incident(id, status string) incident.Incident {
	return incident.Incident{
		ID: id, Fingerprint: "a1b2c3d4e5f60718", StartsAt: T0, AlertName: "HighErrorRate", Namespace: "prod", Status: status,
		Labels: map[string]string{"alertname": "HighErrorRate", "namespace": "prod", "deployment": "platform-service",
			"severity": "critical", "team": "payments"},
		Annotations:  map[string]string{"summary": "5xx ratio above 5% for 5 minutes on platform-service"},
		GeneratorURL: "http://prometheus.example:9090/graph?g0.expr=job%3Aerrors%3Aratio5m+%3E+0.05",
		FirstSeen:    T0.Add(2 * time.Second), LastSeen: T0.Add(12 * time.Minute), Receipts: 2,
	}
}

// Rollback is the fixtures' change: platform-service back from revision 7 to 6.
var Rollback = action.Change{
	Action: "rollback", Target: Target,
	Summary: "rollback deployment prod/platform-service revision 7 → 6 (image registry.example/platform-service:v1.1.0 → registry.example/platform-service:v1.0.0)",
	Rollback: &action.RollbackChange{FromRevision: 7, ToRevision: 6, ToReplicaSet: "platform-service-5d9c7",
		FromImages: map[string]string{"app": "registry.example/platform-service:v1.1.0"},
		ToImages:   map[string]string{"app": "registry.example/platform-service:v1.0.0"}},
}

type timeline struct {
	id     string
	events []incident.Event
}

func (t *timeline) add(at time.Duration, typ, actor, reason string, details any) {
	ev := incident.Event{ID: int64(len(t.events) + 1), IncidentID: t.id, Time: T0.Add(at), Type: typ, Actor: actor, Reason: reason}
	if actor == "" {
		ev.Actor = incident.ActorService
	}
	if typ == incident.EventReceived {
		ev.NotificationID = "n-" + t.id
	}
	if details != nil {
		ev.Details, _ = json.Marshal(details)
	}
	t.events = append(t.events, ev)
}

func (t *timeline) diagnose(at time.Duration, priority policy.Priority, mode string) {
	t.add(at, "matched", "", "policy high-error-rate matches (1 matchers)",
		map[string]any{"policy": "high-error-rate", "target": Target, "targetError": ""})
	evidence := []probe.Result{
		{ID: "rolloutHistory", Probe: "rolloutHistory", Duration: 12 * time.Millisecond, Evidence: probe.RolloutHistoryEvidence{
			CurrentRevision: 7, NewestRolloutAge: 4 * time.Minute, Status: "deployment \"platform-service\" successfully rolled out",
			Revisions: []probe.Revision{
				{Revision: 7, Image: "registry.example/platform-service:v1.1.0", CreatedAt: T0.Add(-4 * time.Minute), ReplicaSet: "platform-service-7f8b9"},
				{Revision: 6, Image: "registry.example/platform-service:v1.0.0", CreatedAt: T0.Add(-72 * time.Hour), ReplicaSet: "platform-service-5d9c7"},
			}}},
		{ID: "errorDistribution", Probe: "errorDistribution", Duration: 80 * time.Millisecond, Evidence: probe.ErrorDistributionEvidence{
			Total: 9, Top: []probe.MessageCount{{Message: "payment gateway returned <n> for order <n>", Count: 6}, {Message: "timeout calling ledger", Count: 3}},
			LogStats: probe.LogStats{Pods: 3, Lines: 1200, Failed: []string{}}}},
		{ID: "dependencies", Probe: "dependencies", Duration: 3 * time.Millisecond, Evidence: probe.DependenciesEvidence{
			AllReachable: true, Unreachable: []string{}, Checks: []probe.Check{{Endpoint: "ledger:8080", OK: true, LatencyMs: 1.2}}}},
		{ID: "resources", Probe: "resources", Err: errors.New(`pods.metrics.k8s.io is forbidden: User "system:serviceaccount:remediator-system:remediator" cannot list resource "pods"`)},
	}
	t.add(at, "diagnosed", "", "4 probes, 1 failed", map[string]any{"evidence": evidence})
	ch := Rollback
	d := policy.Decision{Policy: "high-error-rate", Remedy: "rollback-recent-rollout", Step: 1, Action: "rollback", Priority: priority,
		Conditions: []policy.ConditionResult{
			{Name: "dependency-down", When: "!dependencies.allReachable", Value: false},
			{Name: "rollback-recent-rollout", When: "rolloutHistory.newestRolloutAge < duration('30m') && errorDistribution.total > 0", Value: true},
			{Name: "scale-out", When: "resources.available", Value: false, Error: "no such key: resources"},
		}}
	verb := "plan: "
	if mode == "dry-run" {
		verb = "would "
	}
	t.add(at, "planned", "", verb+ch.Summary+" (remedy rollback-recent-rollout, "+string(priority)+")",
		map[string]any{"mode": mode, "decision": d, "target": Target, "change": ch, "changeError": "", "blocks": nil})
}

// Approved is an incident in dry-run whose proposal was approved in Slack,
// applied, rolled out, resolved and verified.
func Approved() (incident.Incident, []incident.Event) {
	id := "0193a1b2-0000-7000-8000-000000000001"
	t := &timeline{id: id}
	t.add(2*time.Second, incident.EventReceived, "", "", nil)
	t.diagnose(3*time.Second, policy.P0, "dry-run")
	expires := T0.Add(time.Hour + 3*time.Second)
	t.add(3*time.Second, "proposed", "",
		"dry-run: would "+Rollback.Summary+"; the guards would allow it now; approve with POST /api/v1/incidents/"+id+"/approve before "+expires.Format(time.RFC3339),
		map[string]any{"proposal": "p-1", "mode": "dry-run", "change": Rollback, "remedy": "rollback-recent-rollout", "step": 1,
			"priority": policy.P0, "expiresAt": expires, "guards": guard.Decision{Allowed: true, Passed: []string{"pause", "cooldown"}}})
	by := "slack:U024BE7LH (alice)"
	t.add(4*time.Minute, "approved", by, "approved by "+by+": approved in Slack",
		map[string]any{"proposal": "p-1", "remedy": "rollback-recent-rollout", "action": "rollback"})
	t.add(4*time.Minute+time.Second, "intent", by, "about to "+Rollback.Summary,
		map[string]any{"execution": "x-1", "change": Rollback, "remedy": "rollback-recent-rollout", "step": 1, "mode": "enforce", "proposal": "p-1"})
	t.add(4*time.Minute+2*time.Second, "applied", by, "deployment prod/platform-service rolled back to revision 6 (image registry.example/platform-service:v1.0.0)",
		map[string]any{"execution": "x-1", "applied": action.Applied{Detail: "deployment prod/platform-service rolled back to revision 6", Attempts: 1}, "tookMs": 140})
	t.add(5*time.Minute, "rollout-complete", "", `deployment "platform-service" successfully rolled out`,
		map[string]any{"execution": "x-1", "verification": action.Verification{OK: true, Detail: `deployment "platform-service" successfully rolled out`}})
	t.add(12*time.Minute, incident.EventResolved, "", "alert resolved", nil)
	t.add(12*time.Minute+time.Second, "verified", "", "the alert resolved after the change",
		map[string]any{"execution": "x-1", "action": "rollback", "remedy": "rollback-recent-rollout"})
	return Incident(id, incident.StatusResolved), t.events
}

// Failed is an incident in enforce mode whose rollback failed and was
// escalated as P0.
func Failed() (incident.Incident, []incident.Event) {
	id := "0193a1b2-0000-7000-8000-000000000002"
	t := &timeline{id: id}
	t.add(2*time.Second, incident.EventReceived, "", "", nil)
	t.diagnose(3*time.Second, policy.P0, "enforce")
	t.add(3*time.Second, "intent", "", "about to "+Rollback.Summary,
		map[string]any{"execution": "x-2", "change": Rollback, "remedy": "rollback-recent-rollout", "step": 1, "mode": "enforce"})
	reason := `rollback failed: deployments.apps "platform-service" is forbidden: User "system:serviceaccount:remediator-system:remediator" cannot patch resource "deployments" in namespace "prod"`
	t.add(4*time.Second, "failed", "", reason, map[string]any{"execution": "x-2", "tookMs": 310})
	t.add(4*time.Second, "escalated", "", "escalated (P0): "+reason,
		map[string]any{"priority": policy.P0, "action": "rollback", "deadline": policy.P0.Deadline().String()})
	return Incident(id, incident.StatusFiring), t.events
}

// Blocked is an incident in enforce mode whose rollback the cooldown
// guard blocked, escalated as P1.
func Blocked() (incident.Incident, []incident.Event) {
	id := "0193a1b2-0000-7000-8000-000000000003"
	t := &timeline{id: id}
	t.add(2*time.Second, incident.EventReceived, "", "", nil)
	t.diagnose(3*time.Second, policy.P1, "enforce")
	why := "last action on Deployment prod/platform-service was 3m ago; cooldown is 10m"
	t.add(3*time.Second, "blocked", "", "blocked by cooldown: "+why, map[string]any{"guard": "cooldown", "action": "rollback", "mode": "enforce"})
	t.add(3*time.Second, "escalated", "", "escalated (P1): blocked by guards: cooldown: "+why,
		map[string]any{"priority": policy.P1, "action": "rollback", "deadline": policy.P1.Deadline().String()})
	return Incident(id, incident.StatusFiring), t.events
}

// Find returns the index of the first event of type typ (-1 if none).
func Find(events []incident.Event, typ string) int {
	for i, ev := range events {
		if ev.Type == typ {
			return i
		}
	}
	return -1
}
