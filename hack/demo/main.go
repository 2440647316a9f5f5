// Command demo is `make demo`: the runbook's first scenario, a bad rollout,
// driven end to end by real components (internal/testbed/runbookloop):
//
//	demo-app → Prometheus (the shipped rules) → Alertmanager → remediator → Kubernetes
//
// It starts the test bed (a Kubernetes control plane with a simulated
// node), builds remediator and demo-app, and starts the loop with
// remediator in dry-run. It rolls out a bad version (revision 2): demo-app,
// standing in for the pods, starts failing 30% of its requests;
// Prometheus's HighErrorRate rule fires; Alertmanager notifies remediator,
// which diagnoses, plans a rollback and, being in dry-run, only proposes
// it. The demo shows the proposal (the diagnosis, the decision, the exact
// change, the guards' verdict), checks the cluster is unchanged, then
// approves it through the API as an operator would: the guards run again,
// the rollback happens and rolls out, the errors stop, Prometheus resolves
// the alert and the incident is resolved and verified. Everything is
// printed as one timeline; then the incident's audit records (chain
// verified) and the Slack messages the service would have sent (no Slack
// credentials: slack.log_file). It ends by itself and removes everything
// it started, also on failure or Ctrl-C; it exits non-zero if the loop
// does not complete.
//
// Run it through `make demo` (which installs the Debian packages and builds
// the bed's binaries first), or `go run ./hack/demo` once they are built.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/remediator/remediator/internal/notify"
	"github.com/remediator/remediator/internal/policy"
	"github.com/remediator/remediator/internal/testbed"
	"github.com/remediator/remediator/internal/testbed/runbookloop"
)

const (
	alertname = "HighErrorRate"
	operator  = "demo-operator"
	// timeout bounds the whole demo: it normally takes about a minute
	// once the binaries are built.
	timeout = 5 * time.Minute
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // a second Ctrl-C ends the demo at once
	}()
	start := time.Now()
	logf := func(format string, args ...any) { fmt.Printf("    "+format+"\n", args...) }
	if err := runbookloop.Run(ctx, timeout, logf, demo); err != nil {
		fmt.Fprintf(os.Stderr, "\ndemo: FAILED after %s: %v\n", since(start), err)
		os.Exit(1)
	}
	fmt.Printf("\ndemo: OK in %s: the whole loop ran and everything it started is gone\n", since(start))
}

func say(format string, args ...any) {
	fmt.Printf("\n==> "+format+"\n", args...)
}

func demo(t runbookloop.T) {
	ctx := t.Context()
	work, err := os.MkdirTemp("", "remediator-demo-")
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(work); err != nil {
			t.Logf("removing %s: %v", work, err)
		}
		say("cleaned up: processes stopped, test bed down, %s removed", work)
	})

	say("starting the test bed (etcd, kube-apiserver, controller-manager, scheduler, kwok) and building remediator and demo-app")
	t0 := time.Now()
	type built struct {
		bins runbookloop.Binaries
		err  error
	}
	buildDone, buildExited := make(chan built, 1), make(chan struct{})
	go func() {
		defer close(buildExited)
		b, err := runbookloop.Build(ctx, filepath.Join(work, "bin"))
		buildDone <- built{b, err}
	}()
	t.Cleanup(func() { <-buildExited }) // before removing its output
	bed, err := testbed.Up(ctx, testbed.Options{Dir: filepath.Join(work, "bed"), KillWithParent: true})
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() {
		if err := bed.Down(); err != nil {
			t.Logf("test bed down: %v", err)
		}
	})
	b := <-buildDone
	if b.err != nil {
		t.Fatalf("%v", b.err)
	}
	t.Logf("ready in %s", since(t0))

	say("starting the loop: platform-service (revision 1, %s) and demo-app standing in for its pods → Prometheus with the shipped rules (windows 5m → %s) → Alertmanager → remediator in DRY-RUN",
		runbookloop.GoodImage, runbookloop.DefaultWindow)
	l := runbookloop.Start(t, runbookloop.Options{Bed: bed, Binaries: b.bins, Dir: filepath.Join(work, "loop"),
		Mode: runbookloop.ModeDryRun, NamespacePrefix: "demo-"})
	t.Logf("remediator %s · prometheus %s · alertmanager %s · demo-app %s", l.Remediator, l.Prometheus, l.Alertmgr, l.DemoApp)

	say("timeline (time since the bad rollout)")
	tl := &timeline{t0: time.Now(), seen: map[int64]bool{}}
	before := l.RolloutBad()
	tl.dep, tl.bad = before, true
	tl.print(time.Now(), "kubernetes", "rollout", fmt.Sprintf("deployment/%s → revision %s (%s); the new pods log errors, demo-app fails 30%% of requests",
		testbed.DemoDeployment, before.Revision, short(before.Image)))
	a := l.WaitAlert(alertname, "pending", time.Minute)
	tl.alert = a.State
	tl.print(time.Now(), "prometheus", "pending", fmt.Sprintf("%s %s: error ratio %s > 5%%, must hold for %s",
		alertname, labels(a.Labels), percent(l.ErrorRatio()), runbookloop.DefaultWindow))
	tl.alert = l.WaitAlert(alertname, "firing", time.Minute).State
	tl.print(time.Now(), "prometheus", "firing", fmt.Sprintf("%s (error ratio %s) → Alertmanager → remediator", alertname, percent(l.ErrorRatio())))

	inc := l.WaitIncident(alertname, "proposal", time.Minute, func(v runbookloop.View) bool {
		tl.observe(l, v)
		return v.Timeline.Has("proposed")
	})
	id := inc.Incident.ID
	showProposal(t, l, inc)

	// Dry-run changed nothing.
	now := l.Deployment()
	if now.Generation != before.Generation || now.Revision != before.Revision || now.Image != before.Image {
		t.Fatalf("dry-run changed the cluster: before %s, now %s", before, now)
	}
	if !l.DemoAppBad() || alertState(l) != "firing" {
		t.Fatalf("demo-app healthy or the alert gone, but nothing was approved: alerts %+v", l.Alerts())
	}
	say("dry-run changed nothing: deployment/%s still %s; demo-app still failing, %s still firing",
		testbed.DemoDeployment, now, alertname)

	say("an operator approves: POST %s/api/v1/incidents/%s/approve {\"by\":%q}; the guards run again", l.Remediator, id, operator)
	p := l.Approve(id, operator, "rollback looks right")
	tl.print(time.Now(), operator, "approve", fmt.Sprintf("proposal %s: %s", p.ID, p.State))
	inc = l.WaitIncident(alertname, "the rollback, the resolution and the verification", 2*time.Minute, func(v runbookloop.View) bool {
		tl.observe(l, v)
		if err := runbookloop.None(v.Timeline.Types(), "failed", "blocked", "rejected", "expired", "ineffective"); err != nil {
			t.Fatalf("the approved rollback did not work: %v%s", err, v.Timeline)
		}
		return v.Incident.Status == "resolved" && v.Timeline.Has("verified") && tl.alert == ""
	})
	// What the timeline showed, checked.
	l.WaitRolledBack(time.Minute)
	l.WaitResolved(alertname, time.Minute)
	if s := l.Deployment(); s.Revision != "3" || s.Image != runbookloop.GoodImage {
		t.Fatalf("at the end: %s, want revision 3 image %s", s, runbookloop.GoodImage)
	}

	say("the audit trail of incident %s (GET /audit/export?format=ndjson, then `remediator audit verify`)", id)
	recs, rep := l.CheckAudit(inc, "received", "diagnosed", "planned", "proposed", "approved", "intent", "applied",
		"rollout-complete", "resolved", "verified")
	for _, r := range recs {
		fmt.Printf("    seq %-3d %-16s %-10s %-9s %-8s %s\n", r.Seq, r.Type, r.Outcome, r.Action, r.Mode, r.Hash[:16])
	}
	t.Logf("`remediator audit verify`: %s", rep)

	say("the Slack messages the service would have sent (no Slack credentials: slack.log_file)")
	msgs := l.CheckSlack(id, "*Status* :fire: Firing", "*Diagnosis*", "*Plan (", "*Dry-run: proposed, not applied*",
		"*Approved by "+operator+"*", "*Applied*", "*Rollout complete*", "*Resolved*", "*Verified*")
	for _, m := range msgs {
		fmt.Println(indent(m.String()))
	}

	proposed, _ := inc.Timeline.First("proposed")
	approved, _ := inc.Timeline.First("approved")
	verified, _ := inc.Timeline.First("verified")
	say("done: bad rollout → proposal %s; approval → verified %s; %d timeline events, %d audit records, %d Slack messages",
		proposed.Time.Sub(tl.t0).Round(100*time.Millisecond), verified.Time.Sub(approved.Time).Round(100*time.Millisecond),
		len(inc.Timeline), len(recs), len(msgs))
}

// timeline prints one line per step: time since t0, who, what, why.
type timeline struct {
	t0   time.Time
	seen map[int64]bool // the incident's events printed
	// What was last seen of the Deployment, demo-app and the alert.
	dep   runbookloop.DeploymentState
	bad   bool
	alert string // pending, firing or "" (none)
}

func (tl *timeline) print(at time.Time, who, what, why string) {
	tl.printAll([]step{{at, who, what, why}})
}

// step is one line of the timeline.
type step struct {
	at             time.Time
	who, what, why string
}

// printAll prints steps in time order.
func (tl *timeline) printAll(steps []step) {
	slices.SortStableFunc(steps, func(a, b step) int { return a.at.Compare(b.at) })
	for _, s := range steps {
		fmt.Printf("  %+7.1fs  %-13s %-17s %s\n", s.at.Sub(tl.t0).Seconds(), s.who, s.what, clip(oneLine(s.why), 150))
	}
}

// observe prints what changed since the last look: the Deployment's
// revision or image, demo-app's behaviour, the alert in Prometheus, then
// the incident's new events, in time order.
func (tl *timeline) observe(l *runbookloop.Loop, v runbookloop.View) {
	now := time.Now()
	var steps []step
	if d := l.Deployment(); d.Revision != tl.dep.Revision || d.Image != tl.dep.Image {
		tl.dep = d
		steps = append(steps, step{now, "kubernetes", "template", fmt.Sprintf("deployment/%s revision %s (%s)", testbed.DemoDeployment, d.Revision, short(d.Image))})
	}
	if bad := l.DemoAppBad(); bad != tl.bad {
		tl.bad = bad
		what := map[bool]string{true: "failing", false: "healthy"}[bad]
		steps = append(steps, step{now, "demo-app", what, "follows the Deployment's template: " + short(tl.dep.Image)})
	}
	if state := alertState(l); state != tl.alert {
		tl.alert = state
		what, why := state, fmt.Sprintf("%s: error ratio %s", alertname, percent(l.ErrorRatio()))
		at := now
		if state == "" {
			what, why = "resolved", fmt.Sprintf("%s: error ratio %s < 5%% → Alertmanager → remediator", alertname, percent(l.ErrorRatio()))
			at = resolvedAt(l, now)
		}
		steps = append(steps, step{at, "prometheus", what, why})
	}
	for _, e := range v.Timeline {
		if tl.seen[e.ID] {
			continue
		}
		tl.seen[e.ID] = true
		who, why := e.Actor, e.Reason
		if who == "" {
			who = "remediator"
		}
		if e.Type == "received" && why == "" {
			why = fmt.Sprintf("%s from Alertmanager: %s", v.Incident.AlertName, v.Incident.Annotations["summary"])
		}
		steps = append(steps, step{e.Time, who, e.Type, why})
	}
	tl.printAll(steps)
}

// resolvedAt is when Prometheus resolved the alert: the evaluation after
// its last active sample of ALERTS (the rules are evaluated every second);
// seen is when the demo noticed, a poll later.
func resolvedAt(l *runbookloop.Loop, seen time.Time) time.Time {
	v, err := l.Query(fmt.Sprintf(`max_over_time(timestamp(ALERTS{alertname=%q,namespace=%q})[1m:1s])`, alertname, l.Namespace))
	if err != nil || len(v) != 1 || math.IsNaN(v[0].Float()) {
		return seen
	}
	at := time.UnixMilli(int64(v[0].Float() * 1000)).Add(time.Second)
	if at.After(seen) {
		return seen
	}
	return at
}

// alertState is the alert's state in Prometheus: pending, firing or ""
// (none).
func alertState(l *runbookloop.Loop) string {
	for _, a := range l.Alerts() {
		if a.Labels["alertname"] == alertname {
			return a.State
		}
	}
	return ""
}

// showProposal prints what a person deciding sees: the diagnosis, the
// decision with every remedy's condition, the exact change and the guards'
// verdict — as the notifications (Slack) render them from the timeline.
func showProposal(t runbookloop.T, l *runbookloop.Loop, v runbookloop.View) {
	var diag, plan, prop *notify.Notification
	ns := notify.Timeline(v.Incident, v.Timeline, notify.Options{ServiceURL: l.Remediator})
	for i := range ns {
		switch ns[i].Kind {
		case notify.KindDiagnosis:
			diag = &ns[i]
		case notify.KindPlan:
			plan = &ns[i]
		case notify.KindProposal:
			prop = &ns[i]
		}
	}
	if diag == nil || plan == nil || prop == nil {
		t.Fatalf("the incident has no diagnosis, plan or proposal:%s", v.Timeline)
	}
	planned, _ := v.Timeline.First("planned")
	var pd struct {
		Decision policy.Decision `json:"decision"`
	}
	if err := json.Unmarshal(planned.Details, &pd); err != nil {
		t.Fatalf("planned: %v", err)
	}
	proposed, _ := v.Timeline.First("proposed")
	var cd struct {
		Change struct {
			Summary string `json:"summary"`
		} `json:"change"`
	}
	if err := json.Unmarshal(proposed.Details, &cd); err != nil {
		t.Fatalf("proposed: %v", err)
	}

	say("the proposal of incident %s — dry-run: proposed, not applied", v.Incident.ID)
	field := func(name string, lines ...string) {
		for i, line := range lines {
			if i == 0 {
				fmt.Printf("    %-10s %s\n", name, line)
			} else {
				fmt.Printf("    %-10s %s\n", "", line)
			}
		}
	}
	bullets := func(bs []string) []string {
		out := make([]string, len(bs))
		for i, b := range bs {
			out[i] = "• " + b
		}
		return out
	}
	field("diagnosis", append([]string{diag.Summary}, bullets(diag.Bullets)...)...)
	conds := []string{fmt.Sprintf("remedy %s of policy %s, priority %s", pd.Decision.Remedy, pd.Decision.Policy, pd.Decision.Priority)}
	for _, c := range pd.Decision.Conditions {
		mark := "✗"
		if c.Value {
			mark = "✓"
		}
		conds = append(conds, fmt.Sprintf("%s %-24s %s", mark, c.Name, clip(oneLine(c.When), 110)))
	}
	field("decision", conds...)
	field("change", cd.Change.Summary)
	field("guards", prop.Bullets...)
	field("expires", prop.ExpiresAt.Format(time.RFC3339)+" unless someone approves or rejects it")
}

func labels(m map[string]string) string {
	var parts []string
	for _, k := range []string{"namespace", "deployment", "severity"} {
		if v, ok := m[k]; ok {
			parts = append(parts, k+"="+v)
		}
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

func percent(f float64) string {
	if math.IsNaN(f) {
		return "unknown"
	}
	return fmt.Sprintf("%.1f%%", f*100)
}

// short is an image without its registry: platform-service:v1.1.0.
func short(image string) string { return image[strings.LastIndex(image, "/")+1:] }

func oneLine(s string) string {
	first, _, _ := strings.Cut(s, "\n")
	return first
}

func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

func indent(s string) string { return "    " + strings.ReplaceAll(s, "\n", "\n    ") }

func since(t time.Time) time.Duration { return time.Since(t).Round(100 * time.Millisecond) }
