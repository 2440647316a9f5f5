// Package runbook runs the runbook's scenarios end to end with every outside
// component real (internal/testbed/runbookloop): the demo-app serves
// platform-service's metrics, misbehaves while the Deployment runs the bad
// image and slows down under the load its annotation offers; the real
// Prometheus evaluates the shipped alert rules (windows shortened); the
// real Alertmanager notifies the real `remediator serve` binary (enforce or
// dry-run, SQLite, bearer tokens, the shipped policies, Slack to a log
// file), which acts on the test bed's real Kubernetes control plane (pods
// simulated by kwok, the HPA controller running). Each scenario checks the
// cluster, the incident's timeline, its audit records (`/audit/export`,
// `remediator audit verify`) and the Slack stand-in's messages.
//
//	go test ./internal/e2e/runbook -v
//
// Skipped with -short. Needs prometheus and prometheus-alertmanager
// (hack/install-deps.sh installs them).
package runbook

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/remediator/remediator/internal/store/audit"
	"github.com/remediator/remediator/internal/testbed"
	"github.com/remediator/remediator/internal/testbed/runbookloop"
)

var (
	bed   testbed.Shared
	build runbookloop.Builder
)

func TestMain(m *testing.M) {
	// The scenarios mostly wait (on the rules' windows, Alertmanager,
	// rollouts), each using a fraction of a core: run them all at once
	// unless -parallel says otherwise (its default is GOMAXPROCS, which on
	// a 2-core machine runs them two by two, doubling the wall time).
	flag.Parse()
	explicit := false
	flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "test.parallel" })
	if !explicit {
		_ = flag.Set("test.parallel", strconv.Itoa(max(runtime.GOMAXPROCS(0), scenarios)))
	}
	code := bed.Run(m)
	if err := build.Close(); err != nil && code == 0 {
		code = 1
	}
	os.Exit(code)
}

// scenarios is how many scenarios run in parallel by default: all of them.
const scenarios = 4

// start brings up a loop for t on the shared bed.
func start(t *testing.T, o runbookloop.Options) *runbookloop.Loop {
	t.Helper()
	t0 := time.Now()
	env := bed.Get(t)
	o.Bed, o.Binaries, o.Dir = env.Bed(), build.Get(t), t.TempDir()
	o.NamespacePrefix = strings.ToLower(strings.TrimPrefix(t.Name(), "TestRunbook")) + "-"
	t.Logf("bed and binaries ready in %s", time.Since(t0).Round(100*time.Millisecond))
	return runbookloop.Start(t, o)
}

const alertname = "HighErrorRate"

// TestRunbookRollbackLoop is the runbook's loop for a bad rollout:
// revision 2 (v1.1.0) makes 30% of the requests fail → Prometheus fires
// HighErrorRate → Alertmanager → remediator diagnoses (recent rollout,
// errors in the new pods' logs, dependencies reachable) and rolls back →
// the Deployment runs v1.0.0 again → the errors stop → Prometheus resolves
// the alert → Alertmanager sends the resolution → the incident is resolved
// and the change verified; every step is in the audit trail and in Slack.
func TestRunbookRollbackLoop(t *testing.T) {
	t.Parallel()
	start0 := time.Now()
	l := start(t, runbookloop.Options{Mode: runbookloop.ModeEnforce})

	t0 := time.Now()
	if s := l.RolloutBad(); s.Revision != "2" || s.Image != runbookloop.BadImage {
		t.Fatalf("after the bad rollout: %s", s)
	}
	t.Logf("bad rollout (revision 2, %s) complete in %s", runbookloop.BadImage, since(t0))

	// Prometheus fires the shipped HighErrorRate rule, with the deployment
	// derived from the pod label.
	if a := l.WaitAlert(alertname, "firing", 45*time.Second); a.Labels["severity"] != "critical" {
		t.Errorf("prometheus alert %v: want severity critical", a.Labels)
	}
	t.Logf("%s firing in Prometheus after %s", alertname, since(t0))

	inc := l.WaitIncident(alertname, "rollback applied", 45*time.Second, func(v runbookloop.View) bool {
		return v.Timeline.Has("intent", "applied")
	})
	id := inc.Incident.ID
	t.Logf("incident %s: rollback applied after %s", id, since(t0))
	if lb := inc.Incident.Labels; lb["deployment"] != testbed.DemoDeployment || lb["namespace"] != l.Namespace || lb["severity"] != "critical" {
		t.Errorf("incident labels %v: want the rule's labels (deployment %s, namespace %s, severity critical)",
			lb, testbed.DemoDeployment, l.Namespace)
	}

	// The cluster: rolled back to revision 1's template (renumbered 3);
	// demo-app stops failing, Prometheus resolves the alert, Alertmanager
	// tells remediator, the change is verified.
	l.WaitRolledBack(time.Minute)
	l.WaitResolved(alertname, time.Minute)
	t.Logf("rolled back, errors stopped, %s resolved in Prometheus after %s", alertname, since(t0))
	inc = l.WaitIncident(alertname, "resolution and verification", time.Minute, func(v runbookloop.View) bool {
		return v.Incident.Status == "resolved" && v.Timeline.Has("verified")
	})
	t.Logf("incident %s resolved and verified after %s; timeline:%s", id, since(t0), inc.Timeline)

	// The timeline.
	tl := inc.Timeline
	if err := runbookloop.InOrder(tl.Types(), "received", "matched", "diagnosed", "planned", "intent", "applied",
		"rollout-complete", "resolved", "verified"); err != nil {
		t.Errorf("timeline: %v", err)
	}
	if err := runbookloop.None(tl.Types(), "proposed", "failed", "blocked", "ineffective",
		"duplicate-execution-prevented"); err != nil {
		t.Errorf("timeline: %v%s", err, tl)
	}
	if diag, _ := tl.First("diagnosed"); !strings.Contains(string(diag.Details), `"allReachable":true`) {
		t.Errorf("diagnosed: dependencies not reachable: %s", diag.Details)
	}
	dec, err := l.PolicyDecision(inc)
	if err != nil {
		t.Fatal(err)
	}
	planned, _ := tl.First("planned")
	if dec.Remedy != "rollback-recent-rollout" || !strings.Contains(planned.Reason, "remedy "+dec.Remedy+", "+string(dec.Priority)) {
		t.Errorf("planned: %q; the policy decides remedy %q at %s, want rollback-recent-rollout", planned.Reason, dec.Remedy, dec.Priority)
	}
	if applied, _ := tl.First("applied"); !strings.Contains(applied.Reason, "rolled back from revision 2 to revision 1") {
		t.Errorf("applied event is not the rollback: %s %s", applied.Reason, applied.Details)
	}
	// Exactly one change: still revision 3, v1.0.0; no alert left.
	if s := l.Deployment(); s.Revision != "3" || s.Image != runbookloop.GoodImage {
		t.Errorf("at the end: %s, want revision 3 image %s", s, runbookloop.GoodImage)
	}
	if a := l.Alerts(); len(a) != 0 {
		t.Errorf("prometheus still has alerts %+v", a)
	}

	// The audit trail: one record per timeline event, in order, the chain
	// valid; the change's records name it.
	recs, rep := l.CheckAudit(inc, "received", "diagnosed", "planned", "intent", "applied", "rollout-complete", "resolved", "verified")
	for _, r := range recs {
		var bad []string
		switch r.Type {
		case "planned":
			bad = recordWants(r, l.Namespace, "rollback", "", string(dec.Priority), "planned")
		case "intent":
			bad = recordWants(r, l.Namespace, "rollback", runbookloop.ModeEnforce, "", "pending")
		case "applied", "verified":
			bad = recordWants(r, "", "", "", "", r.Type)
		}
		if len(bad) > 0 {
			t.Errorf("audit record %d %s: %v", r.Seq, r.Type, bad)
		}
	}
	// Slack: the incident's thread, from firing to verified.
	msgs := l.CheckSlack(id, "*Status* :fire: Firing", "*Diagnosis*", "*Plan ("+string(dec.Priority)+")*", "*Applied*",
		"rolled back from revision 2 to revision 1", "*Rollout complete*", "*Resolved*", "*Verified*")
	noSlack(t, msgs, "*Failed*", "*Blocked", "*Dry-run", "*Ineffective")
	t.Logf("audit: %d records of the incident; %s; slack: %d messages", len(recs), rep, len(msgs))
	t.Logf("scenario done in %s (bad rollout → verified: %s)", since(start0), since(t0))
}

// TestRunbookDependencyDown is the runbook's "fix the dependency first":
// the same bad rollout and HighErrorRate, but the dependencies (database,
// redis) are unreachable, so remediator changes nothing and escalates with
// the diagnosis as evidence, at the priority the policy gives it.
func TestRunbookDependencyDown(t *testing.T) {
	t.Parallel()
	start0 := time.Now()
	l := start(t, runbookloop.Options{Mode: runbookloop.ModeEnforce, DependenciesDown: true})

	t0 := time.Now()
	l.RolloutBad()
	l.WaitAlert(alertname, "firing", 45*time.Second)
	t.Logf("%s firing in Prometheus after %s", alertname, since(t0))

	inc := l.WaitIncident(alertname, "escalation", 45*time.Second, func(v runbookloop.View) bool {
		return v.Timeline.Has("escalated")
	})
	id := inc.Incident.ID
	t.Logf("incident %s escalated after %s; timeline:%s", id, since(t0), inc.Timeline)
	// Give a wrongly taken action time to show.
	time.Sleep(2 * time.Second)
	inc = l.Incident(id)
	tl := inc.Timeline
	if err := runbookloop.None(tl.Types(), "intent", "applied", "proposed", "failed"); err != nil {
		t.Errorf("timeline with the dependencies down: %v%s", err, tl)
	}
	if inc.Incident.Status != "firing" {
		t.Errorf("incident status %q, want firing (nothing was fixed)", inc.Incident.Status)
	}
	if s := l.Deployment(); s.Revision != "2" || s.Image != runbookloop.BadImage {
		t.Errorf("the cluster changed: %s, want revision 2 image %s", s, runbookloop.BadImage)
	}
	if !l.DemoAppBad() {
		t.Errorf("demo-app no longer misbehaving, but nothing was rolled back")
	}

	// The decision and its evidence: the policy's dependency-down remedy at
	// the priority the policy gives (read from the policy files, not
	// written here), and the dependencies probe's evidence naming the
	// unreachable endpoint.
	dec, err := l.PolicyDecision(inc)
	if err != nil {
		t.Fatal(err)
	}
	prio := string(dec.Priority)
	t.Logf("the policy decides: remedy %s, priority %s", dec.Remedy, prio)
	planned, _ := tl.First("planned")
	if dec.Remedy != "dependency-down" || !strings.Contains(planned.Reason, "escalate ("+prio+"): remedy dependency-down") {
		t.Errorf("planned: %q; the policy decides remedy %q at %s, want dependency-down", planned.Reason, dec.Remedy, prio)
	}
	esc, _ := tl.First("escalated")
	var ed struct {
		Priority string `json:"priority"`
	}
	if err := json.Unmarshal(esc.Details, &ed); err != nil || ed.Priority != prio {
		t.Errorf("escalated with priority %q (%v), want the policy's %s: %s", ed.Priority, err, prio, esc.Details)
	}
	if inc.Escalation.Priority != prio || inc.Escalation.Escalations < 1 {
		t.Errorf("escalation state %+v: want priority %s, escalated", inc.Escalation, prio)
	}
	diag, _ := tl.First("diagnosed")
	if d := string(diag.Details); !strings.Contains(d, `"allReachable":false`) || !strings.Contains(d, l.Deps) {
		t.Errorf("diagnosed: no evidence of %s unreachable: %s", l.Deps, d)
	}

	// The audit trail: received → diagnosed → planned → escalated, no
	// change; the chain valid.
	recs, rep := l.CheckAudit(inc, "received", "diagnosed", "planned", "escalated")
	for _, r := range recs {
		if r.Type == "planned" || r.Type == "escalated" {
			if bad := recordWants(r, "", "", "", prio, r.Type); len(bad) > 0 {
				t.Errorf("audit record %d %s: %v", r.Seq, r.Type, bad)
			}
		}
	}
	// Slack: firing, the plan, escalated at the policy's priority; nothing
	// applied.
	msgs := l.CheckSlack(id, "*Status* :fire: Firing", "*Diagnosis*", "*Plan ("+prio+")*", "*Escalated ("+prio+")*")
	noSlack(t, msgs, "*Applied*", "*Verified*", "*Dry-run", "*Rollout complete*")
	t.Logf("escalated: %s %s", esc.Reason, esc.Details)
	t.Logf("audit: %d records of the incident; %s; slack: %d messages", len(recs), rep, len(msgs))
	t.Logf("scenario done in %s (bad rollout → escalated: %s)", since(start0), since(t0))
}

// TestRunbookSaturationScale is the runbook's "saturation → scale": 300
// requests per second offered (demo-app's load model: the
// offered-rps annotation) saturate the demo's 3 replicas → p95 latency
// above a second and the pods at their CPU limit in Prometheus → the
// shipped HighLatency rule fires (warning) → remediator diagnoses CPU
// saturation with no recent rollout to blame and scales out through the
// HPA (minReplicas 3 → 8, the policy's ceiling) → the HPA controller
// scales the Deployment, kwok makes the pods ready → 8 replicas serve the
// load → latency falls, the alert resolves, the change is verified.
func TestRunbookSaturationScale(t *testing.T) {
	t.Parallel()
	start0 := time.Now()
	l := start(t, runbookloop.Options{Mode: runbookloop.ModeEnforce})
	const alertname = "HighLatency"
	before, hpa := l.Deployment(), l.HPA()
	if before.Revision != "1" || before.Replicas != 3 || hpa.MinReplicas != 3 || hpa.MaxReplicas < 8 {
		t.Fatalf("before: deployment %s; HPA %s: want revision 1, 3 replicas, minReplicas 3, room for 8", before, hpa)
	}

	t0 := time.Now()
	l.Annotate(map[string]string{runbookloop.OfferedRPSAnnotation: "300"})
	st := l.WaitDemoAppState("saturated by 300 rps on 3 replicas", 15*time.Second, func(s runbookloop.DemoAppState) bool {
		return s.Saturated && s.OfferedRPS == 300 && s.ReadyReplicas == 3
	})
	t.Logf("offered 300 rps: demo-app %s", st)
	if a := l.WaitAlert(alertname, "firing", time.Minute); a.Labels["severity"] != "warning" {
		t.Errorf("prometheus alert %v: want severity warning", a.Labels)
	}
	t.Logf("%s firing in Prometheus after %s", alertname, since(t0))

	inc := l.WaitIncident(alertname, "scale-out applied", time.Minute, func(v runbookloop.View) bool {
		return v.Timeline.Has("intent", "applied")
	})
	id := inc.Incident.ID
	t.Logf("incident %s: scale-out applied after %s", id, since(t0))
	if lb := inc.Incident.Labels; lb["deployment"] != testbed.DemoDeployment || lb["namespace"] != l.Namespace || lb["severity"] != "warning" {
		t.Errorf("incident labels %v: want the rule's labels (deployment %s, namespace %s, severity warning)",
			lb, testbed.DemoDeployment, l.Namespace)
	}
	// The alert links back to the loop's Prometheus (--web.external-url).
	if u := inc.Incident.GeneratorURL; !strings.HasPrefix(u, l.Prometheus+"/graph?") {
		t.Errorf("incident generatorURL %q: want a link to %s/graph", u, l.Prometheus)
	}

	// The cluster: the HPA's floor raised, its controller scales the
	// Deployment, kwok readies the pods; demo-app, sharing the load over
	// the ready replicas, is no longer saturated; the latency falls,
	// Prometheus resolves the alert, the change is verified.
	scaled := l.WaitDeployment("8 ready replicas", time.Minute, func(s runbookloop.DeploymentState) bool {
		return s.Replicas == 8 && s.Ready == 8
	})
	t.Logf("deployment %s after %s (HPA %s)", scaled, since(t0), l.HPA())
	st = l.WaitDemoAppState("not saturated on 8 replicas", 15*time.Second, func(s runbookloop.DemoAppState) bool {
		return !s.Saturated && s.ReadyReplicas == 8
	})
	p95 := l.WaitQuery("p95 latency under 1s", time.Minute, func(v []runbookloop.Sample) bool {
		return len(v) == 1 && v[0].Float() < 1
	}, l.LatencyP95Expr())
	t.Logf("demo-app %s; p95 %ss after %s", st, p95[0].Value, since(t0))
	l.WaitResolved(alertname, time.Minute)
	t.Logf("%s resolved in Prometheus after %s", alertname, since(t0))
	inc = l.WaitIncident(alertname, "resolution and verification", time.Minute, func(v runbookloop.View) bool {
		return v.Incident.Status == "resolved" && v.Timeline.Has("verified")
	})
	t.Logf("incident %s resolved and verified after %s; timeline:%s", id, since(t0), inc.Timeline)

	// The timeline.
	tl := inc.Timeline
	if err := runbookloop.InOrder(tl.Types(), "received", "matched", "diagnosed", "planned", "intent", "applied",
		"rollout-complete", "resolved", "verified"); err != nil {
		t.Errorf("timeline: %v", err)
	}
	if err := runbookloop.None(tl.Types(), "proposed", "failed", "blocked", "ineffective", "escalated",
		"duplicate-execution-prevented"); err != nil {
		t.Errorf("timeline: %v%s", err, tl)
	}
	dec, err := l.PolicyDecision(inc)
	if err != nil {
		t.Fatal(err)
	}
	prio := string(dec.Priority)
	planned, _ := tl.First("planned")
	if dec.Remedy != "scale-out" || prio != "P2" || !strings.Contains(planned.Reason, "remedy "+dec.Remedy+", "+prio) {
		t.Errorf("planned: %q; the policy decides remedy %q at %s, want scale-out at P2", planned.Reason, dec.Remedy, prio)
	}
	if intent, _ := tl.First("intent"); !strings.Contains(intent.Reason, "via HPA minReplicas") || !strings.HasSuffix(intent.Reason, " 3 → 8") {
		t.Errorf("intent is not the scale through the HPA, minReplicas 3 → 8: %s", intent.Reason)
	}
	if applied, _ := tl.First("applied"); !strings.Contains(applied.Reason, "spec.minReplicas 3 → 8") {
		t.Errorf("applied event is not the scale: %s %s", applied.Reason, applied.Details)
	}
	// Exactly one change, the HPA's floor: 8 replicas of the same
	// revision; no alert left.
	if h := l.HPA(); h.MinReplicas != 8 {
		t.Errorf("at the end: HPA %s, want minReplicas 8", h)
	}
	if s := l.Deployment(); s.Revision != "1" || s.Image != runbookloop.GoodImage || s.Replicas != 8 || s.Ready != 8 {
		t.Errorf("at the end: %s, want revision 1 image %s, 8/8 ready", s, runbookloop.GoodImage)
	}
	if a := l.Alerts(); len(a) != 0 {
		t.Errorf("prometheus still has alerts %+v", a)
	}

	// The audit trail and Slack.
	recs, rep := l.CheckAudit(inc, "received", "diagnosed", "planned", "intent", "applied", "rollout-complete", "resolved", "verified")
	for _, r := range recs {
		var bad []string
		switch r.Type {
		case "planned":
			bad = recordWants(r, l.Namespace, "scale", "", prio, "planned")
		case "intent":
			bad = recordWants(r, l.Namespace, "scale", runbookloop.ModeEnforce, "", "pending")
		case "applied", "verified":
			bad = recordWants(r, "", "", "", "", r.Type)
		}
		if len(bad) > 0 {
			t.Errorf("audit record %d %s: %v", r.Seq, r.Type, bad)
		}
	}
	msgs := l.CheckSlack(id, "*Status* :fire: Firing", "*Diagnosis*", "*Plan ("+prio+")*", "*Applied*",
		"spec.minReplicas 3 → 8", "*Rollout complete*", "*Resolved*", "*Verified*")
	noSlack(t, msgs, "*Failed*", "*Blocked", "*Dry-run", "*Ineffective", "*Escalated")
	t.Logf("audit: %d records of the incident; %s; slack: %d messages", len(recs), rep, len(msgs))
	t.Logf("scenario done in %s (saturated → verified: %s)", since(start0), since(t0))
}

// TestRunbookDryRunApprove is the path `make demo` shows: in dry-run the
// bad rollout's rollback is only proposed, the cluster unchanged, until an
// operator approves it through the API; then it is applied as the
// operator, rolls out, and the incident is resolved and verified.
func TestRunbookDryRunApprove(t *testing.T) {
	t.Parallel()
	start0 := time.Now()
	l := start(t, runbookloop.Options{Mode: runbookloop.ModeDryRun})

	t0 := time.Now()
	before := l.RolloutBad()
	l.WaitAlert(alertname, "firing", 45*time.Second)
	inc := l.WaitIncident(alertname, "proposal", 45*time.Second, func(v runbookloop.View) bool {
		return v.Timeline.Has("proposed")
	})
	id := inc.Incident.ID
	t.Logf("incident %s: rollback proposed after %s", id, since(t0))
	// Give a wrongly applied change time to show.
	time.Sleep(2 * time.Second)
	if err := runbookloop.None(l.Incident(id).Timeline.Types(), "intent", "applied", "failed", "blocked"); err != nil {
		t.Errorf("dry-run: %v", err)
	}
	if now := l.Deployment(); now.Generation != before.Generation || now.Revision != "2" || now.Image != runbookloop.BadImage || !l.DemoAppBad() {
		t.Fatalf("dry-run changed the cluster: before %s, now %s", before, now)
	}

	const operator = "e2e-operator"
	if p := l.Approve(id, operator, "rollback looks right"); p.State != "approved" || p.DecidedBy != operator || p.Action != "rollback" {
		t.Errorf("approved proposal %+v: want a rollback approved by %s", p, operator)
	}
	l.WaitRolledBack(time.Minute)
	l.WaitResolved(alertname, time.Minute)
	inc = l.WaitIncident(alertname, "resolution and verification", time.Minute, func(v runbookloop.View) bool {
		return v.Incident.Status == "resolved" && v.Timeline.Has("verified")
	})
	t.Logf("incident %s resolved and verified after %s; timeline:%s", id, since(t0), inc.Timeline)
	if err := runbookloop.None(inc.Timeline.Types(), "failed", "blocked", "rejected", "expired", "ineffective"); err != nil {
		t.Errorf("timeline: %v%s", err, inc.Timeline)
	}

	// The audit trail: the approval is the operator's, and so is the
	// change it let through.
	recs, _ := l.CheckAudit(inc, "received", "diagnosed", "planned", "proposed", "approved", "intent", "applied",
		"rollout-complete", "resolved", "verified")
	for _, r := range recs {
		var bad []string
		switch r.Type {
		case "proposed":
			bad = recordWants(r, l.Namespace, "rollback", runbookloop.ModeDryRun, "", "")
		case "approved":
			bad = recordWants(r, "", "rollback", "", "", "approved")
		case "intent":
			bad = recordWants(r, l.Namespace, "rollback", runbookloop.ModeEnforce, "", "pending")
		}
		if (r.Type == "approved" || r.Type == "intent" || r.Type == "applied") && r.Actor != operator {
			bad = append(bad, fmt.Sprintf("actor %q, want %s", r.Actor, operator))
		}
		if len(bad) > 0 {
			t.Errorf("audit record %d %s: %v", r.Seq, r.Type, bad)
		}
	}
	l.CheckSlack(id, "*Status* :fire: Firing", "*Plan (", "*Dry-run: proposed, not applied*", "*Approved by "+operator+"*",
		"*Applied*", "*Rollout complete*", "*Resolved*", "*Verified*")
	t.Logf("scenario done in %s (bad rollout → verified: %s)", since(start0), since(t0))
}

// recordWants lists how audit record r differs from what is wanted of it
// ("" wants nothing of that field): the target (the demo's Deployment in
// namespace), action, mode, priority and outcome derived from its event.
func recordWants(r audit.Record, namespace, action, mode, priority, outcome string) []string {
	var bad []string
	want := func(field, got, want string) {
		if want != "" && got != want {
			bad = append(bad, fmt.Sprintf("%s %q, want %q", field, got, want))
		}
	}
	want("target namespace", r.Target.Namespace, namespace)
	if namespace != "" {
		want("target", r.Target.Kind+"/"+r.Target.Name, "Deployment/"+testbed.DemoDeployment)
	}
	want("action", r.Action, action)
	want("mode", r.Mode, mode)
	want("priority", r.Priority, priority)
	want("outcome", r.Outcome, outcome)
	return bad
}

func since(t time.Time) time.Duration { return time.Since(t).Round(100 * time.Millisecond) }

// noSlack fails t for every message that contains one of the texts.
func noSlack(t *testing.T, msgs []runbookloop.SlackMessage, texts ...string) {
	t.Helper()
	for _, m := range msgs {
		for _, bad := range texts {
			if strings.Contains(m.Text, bad) {
				t.Errorf("slack: unexpected %s message:\n%s", bad, m)
			}
		}
	}
}
