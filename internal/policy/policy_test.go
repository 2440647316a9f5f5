package policy

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/remediator/remediator/internal/probe"
)

func shipped(t testing.TB) *Set {
	t.Helper()
	set, err := Load("../../policies", DefaultCatalog())
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// loadText loads policies given as file name → YAML.
func loadText(t *testing.T, files map[string]string) (*Set, error) {
	t.Helper()
	dir := t.TempDir()
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return Load(dir, DefaultCatalog())
}

func policyText(name string, matchers ...string) string {
	var b strings.Builder
	b.WriteString("apiVersion: remediator/v1\nkind: Policy\nname: " + name + "\nmatch:\n")
	for _, m := range matchers {
		b.WriteString("  - '" + m + "'\n")
	}
	b.WriteString("target: {kind: Deployment, nameLabel: deployment}\nremedies:\n  - {name: a, action: escalate}\n")
	return b.String()
}

func TestMatchers(t *testing.T) {
	tests := []struct {
		matcher string
		labels  map[string]string
		want    bool
	}{
		{`alertname="HighErrorRate"`, map[string]string{"alertname": "HighErrorRate"}, true},
		{`alertname="HighErrorRate"`, map[string]string{"alertname": "HighLatency"}, false},
		{`severity=~"critical|warning"`, map[string]string{"severity": "warning"}, true},
		{`severity=~"critical|warning"`, map[string]string{"severity": "warning2"}, false}, // anchored
		{`severity=~"critical|warning"`, map[string]string{}, false},
		{`namespace!="kube-system"`, map[string]string{"namespace": "prod"}, true},
		{`namespace!="kube-system"`, map[string]string{"namespace": "kube-system"}, false},
		{`namespace!="kube-system"`, map[string]string{}, true}, // absent = ""
		{`namespace!~"kube-.*"`, map[string]string{"namespace": "kube-public"}, false},
		{`namespace!~"kube-.*"`, map[string]string{"namespace": "prod"}, true},
		{`team=""`, map[string]string{}, true},
		{`team=""`, map[string]string{"team": "a"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.matcher, func(t *testing.T) {
			set, err := loadText(t, map[string]string{"p.yaml": policyText("p", tc.matcher)})
			if err != nil {
				t.Fatal(err)
			}
			if got := set.Get("p").Matches(tc.labels); got != tc.want {
				t.Fatalf("%s on %v = %v, want %v", tc.matcher, tc.labels, got, tc.want)
			}
		})
	}
}

func TestSetMatchMostSpecificWins(t *testing.T) {
	set, err := loadText(t, map[string]string{
		"a.yaml": policyText("generic", `alertname="HighErrorRate"`),
		"b.yaml": policyText("prod", `alertname="HighErrorRate"`, `namespace="prod"`),
		"c.yaml": policyText("prod-regex", `alertname="HighErrorRate"`, `namespace=~"pro.*"`),
		"d.yaml": policyText("b-tie", `alertname="HighErrorRate"`, `namespace="prod"`),
	})
	if err != nil {
		t.Fatal(err)
	}
	p, ok, why := set.Match(map[string]string{"alertname": "HighErrorRate", "namespace": "prod"})
	// Two matchers beat one; two equalities beat one; then by name.
	if !ok || p.Name != "b-tie" {
		t.Fatalf("winner = %v, want b-tie (%s)", p, why)
	}
	for _, other := range []string{"prod (2 matchers)", "prod-regex (2 matchers)", "generic (1 matchers)"} {
		if !strings.Contains(why, other) {
			t.Errorf("why %q does not name %s", why, other)
		}
	}
	p, _, _ = set.Match(map[string]string{"alertname": "HighErrorRate", "namespace": "dev"})
	if p.Name != "generic" {
		t.Fatalf("dev: %s", p.Name)
	}
	if _, ok, why := set.Match(map[string]string{"alertname": "Other"}); ok || !strings.Contains(why, `alertname="Other"`) {
		t.Fatalf("unmatched: %v %q", ok, why)
	}
}

func TestResolveTarget(t *testing.T) {
	byName := TargetSpec{Kind: "Deployment", NameLabel: "deployment"}
	byPod := TargetSpec{Kind: "Deployment", NamespaceLabel: "ns", PodLabel: "pod"}
	tests := []struct {
		name    string
		spec    TargetSpec
		labels  map[string]string
		want    Target
		wantErr string
	}{
		{"name", byName, map[string]string{"namespace": "prod", "deployment": "platform-service"}, Target{Kind: "Deployment", Namespace: "prod", Name: "platform-service"}, ""},
		{"pod", byPod, map[string]string{"ns": "prod", "pod": "platform-service-7d9c-x2x"}, Target{Kind: "Deployment", Namespace: "prod", Pod: "platform-service-7d9c-x2x"}, ""},
		{"missing namespace", byName, map[string]string{"deployment": "a"}, Target{}, `label "namespace" (the namespace) is missing`},
		{"empty name", byName, map[string]string{"namespace": "prod", "deployment": ""}, Target{}, `label "deployment" (the deployment name) is empty`},
		{"blank name", byName, map[string]string{"namespace": "prod", "deployment": "  "}, Target{}, "is empty"},
		{"star", byName, map[string]string{"namespace": "prod", "deployment": "*"}, Target{}, `is a wildcard or pattern "*"`},
		{"dot star", byName, map[string]string{"namespace": "prod", "deployment": ".*"}, Target{}, `is a wildcard or pattern ".*"`},
		{"star namespace", byName, map[string]string{"namespace": "*", "deployment": "a"}, Target{}, "wildcard"},
		{"alternation", byName, map[string]string{"namespace": "prod", "deployment": "a|b"}, Target{}, "wildcard"},
		{"not a name", byName, map[string]string{"namespace": "prod", "deployment": "Platform Service"}, Target{}, "not a valid Kubernetes name"},
		{"missing pod", byPod, map[string]string{"ns": "prod"}, Target{}, `label "pod" (the pod name) is missing`},
		{"dot", byName, map[string]string{"namespace": "prod", "deployment": "."}, Target{}, "not a valid Kubernetes name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.spec.ResolveTarget(tc.labels)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.HasPrefix(err.Error(), "target refused: ") {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

var now = time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC)

func alertOf(lbls map[string]string) Alert {
	return Alert{Status: "firing", Labels: lbls, StartsAt: now.Add(-5 * time.Minute)}
}

func revisions(n int) []probe.Revision {
	var rs []probe.Revision
	for i := 1; i <= n; i++ {
		rs = append(rs, probe.Revision{Revision: int64(i), Image: "platform-service:v1." + string(rune('0'+i)), CreatedAt: now.Add(-time.Duration(n-i+1) * 24 * time.Hour)})
	}
	return rs
}

func TestEvaluateRunbookScenarios(t *testing.T) {
	set := shipped(t)
	healthyDeps := probe.DependenciesEvidence{AllReachable: true}
	calm := probe.ResourcesEvidence{Available: true, CPUNearLimitPercent: 10, MemoryNearLimitPercent: 20}
	tests := []struct {
		name       string
		policy     string
		severity   string
		evidence   map[string]any
		wantRemedy string
		wantAction string
		wantPrio   Priority
	}{
		{
			name: "recent bad rollout → rollback", policy: "high-error-rate", severity: "critical",
			evidence: map[string]any{
				"rolloutHistory":    probe.RolloutHistoryEvidence{Revisions: revisions(3), CurrentRevision: 3, NewestRolloutAge: 10 * time.Minute},
				"errorDistribution": &probe.ErrorDistributionEvidence{Total: 240, Top: []probe.MessageCount{{Message: "TypeError: x is undefined", Count: 230}}},
				"resources":         calm,
				"dependencies":      healthyDeps,
			},
			wantRemedy: "rollback-recent-rollout", wantAction: "rollback", wantPrio: P0,
		},
		{
			name: "saturation without recent rollout → scale", policy: "high-error-rate", severity: "warning",
			evidence: map[string]any{
				"rolloutHistory":    probe.RolloutHistoryEvidence{Revisions: revisions(3), CurrentRevision: 3, NewestRolloutAge: 72 * time.Hour},
				"errorDistribution": probe.ErrorDistributionEvidence{Total: 50},
				"resources":         probe.ResourcesEvidence{Available: true, CPUNearLimitPercent: 80, MemoryNearLimitPercent: 30},
				"dependencies":      healthyDeps,
			},
			wantRemedy: "scale-out", wantAction: "scale", wantPrio: P2,
		},
		{
			name: "dependency down → escalate, no action", policy: "high-error-rate", severity: "critical",
			evidence: map[string]any{
				"rolloutHistory":    probe.RolloutHistoryEvidence{Revisions: revisions(3), NewestRolloutAge: 10 * time.Minute},
				"errorDistribution": probe.ErrorDistributionEvidence{Total: 500},
				"resources":         probe.ResourcesEvidence{Available: true, CPUNearLimitPercent: 90},
				"dependencies":      probe.DependenciesEvidence{AllReachable: false, Unreachable: []string{"database:5432"}},
			},
			// P1, not the critical severity's P0: the dependency's outage is
			// its owners' (the policy's first priority rule).
			wantRemedy: "dependency-down", wantAction: "escalate", wantPrio: P1,
		},
		{
			name: "nothing explains it → escalate", policy: "high-error-rate",
			evidence: map[string]any{
				"rolloutHistory":    probe.RolloutHistoryEvidence{Revisions: revisions(1), NewestRolloutAge: 72 * time.Hour},
				"errorDistribution": probe.ErrorDistributionEvidence{Total: 5},
				"resources":         calm,
				"cpuSaturation":     probe.PrometheusEvidence{Available: true, Value: 0},
				"dependencies":      healthyDeps,
			},
			wantRemedy: "", wantAction: "escalate", wantPrio: P3,
		},
		{
			name: "latency saturation → scale to 8", policy: "high-latency", severity: "warning",
			evidence: map[string]any{
				"p95":            probe.PrometheusEvidence{Value: 2.5, Available: true},
				"slowEndpoints":  probe.SlowEndpointsEvidence{Top: []probe.EndpointLatency{{Endpoint: "GET /api/orders", P95Ms: 2400, Count: 900}}},
				"resources":      probe.ResourcesEvidence{Available: true, CPUNearLimitPercent: 75},
				"rolloutHistory": probe.RolloutHistoryEvidence{Revisions: revisions(2), NewestRolloutAge: 48 * time.Hour},
				"dependencies":   healthyDeps,
			},
			wantRemedy: "scale-out", wantAction: "scale", wantPrio: P2,
		},
		{
			name: "OOMKilled pods → delete-pod", policy: "high-memory-usage", severity: "critical",
			evidence: map[string]any{
				"podStatus":   probe.PodStatusEvidence{Ready: 3, Total: 4, Restarts: 7, OOMKilled: 1},
				"resources":   probe.ResourcesEvidence{Available: true, MemoryNearLimitPercent: 75},
				"memoryTrend": probe.PrometheusEvidence{Value: 1e6, Available: true},
			},
			wantRemedy: "delete-oom-killed-pods", wantAction: "delete-pod", wantPrio: P0,
		},
		{
			name: "memory near limit, no OOM → restart", policy: "high-memory-usage",
			evidence: map[string]any{
				"podStatus": probe.PodStatusEvidence{Ready: 4, Total: 4},
				"resources": probe.ResourcesEvidence{Available: true, MemoryNearLimitPercent: 75},
			},
			wantRemedy: "restart-near-limit", wantAction: "restart", wantPrio: P3,
		},
		{
			name: "database down → escalate only, P0", policy: "database-connection-errors", severity: "warning",
			evidence:   map[string]any{"dependencies": probe.DependenciesEvidence{Unreachable: []string{"postgres:5432"}}},
			wantRemedy: "escalate", wantAction: "escalate", wantPrio: P0,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := set.Get(tc.policy)
			lbls := map[string]string{"alertname": "X", "namespace": "prod", "deployment": "platform-service"}
			if tc.severity != "" {
				lbls["severity"] = tc.severity
			}
			d, err := Evaluate(p, alertOf(lbls), tc.evidence, now)
			if err != nil {
				t.Fatal(err)
			}
			if d.Remedy != tc.wantRemedy || d.Action != tc.wantAction || d.Priority != tc.wantPrio {
				t.Fatalf("got remedy=%q action=%q priority=%s, want %q %q %s\n%+v", d.Remedy, d.Action, d.Priority, tc.wantRemedy, tc.wantAction, tc.wantPrio, d)
			}
			if len(d.Conditions) != len(p.Remedies) {
				t.Fatalf("every condition must be reported: %+v", d.Conditions)
			}
			if (tc.wantRemedy == "") != d.Escalated {
				t.Fatalf("escalated = %v", d.Escalated)
			}
			if len(d.EvidenceErrors) > 0 {
				t.Fatalf("evidence errors: %v", d.EvidenceErrors)
			}
			for _, r := range append(d.PriorityRules, d.Conditions...) {
				if r.Error != "" {
					t.Errorf("%s: complete evidence, yet %s", r.Name, r.Error)
				}
			}
		})
	}
}

func TestEvaluateFailedProbeNeverActs(t *testing.T) {
	p := shipped(t).Get("high-error-rate")
	// The dependencies probe failed: its evidence is missing.
	d, err := Evaluate(p, alertOf(nil), map[string]any{
		"rolloutHistory":    probe.RolloutHistoryEvidence{Revisions: revisions(3), NewestRolloutAge: 10 * time.Minute},
		"errorDistribution": probe.ErrorDistributionEvidence{Total: 500},
		"resources":         probe.ResourcesEvidence{Available: true, CPUNearLimitPercent: 90},
	}, now)
	if err != nil {
		t.Fatal(err)
	}
	if !d.Escalated || d.Action != "escalate" {
		t.Fatalf("acted on incomplete evidence: %+v", d)
	}
	for i, c := range d.Conditions {
		// CEL's && is commutative: a false term wins over an error.
		if c.Value || (i < 2 && !strings.Contains(c.Error, "dependencies")) {
			t.Errorf("condition %s: %+v", c.Name, c)
		}
	}
}

type fieldsEvidence map[string]any

func (f fieldsEvidence) Fields() map[string]any { return f }

// TestEvaluateOnlyDeclaredTypes: evidence is a value of, or a pointer to,
// exactly the catalog's type; maps, Fields() views, other types and nil
// pointers are named in EvidenceErrors and the step counts as missing.
func TestEvaluateOnlyDeclaredTypes(t *testing.T) {
	p := shipped(t).Get("high-error-rate")
	ev := map[string]any{
		"rolloutHistory":    &probe.RolloutHistoryEvidence{Revisions: revisions(2), CurrentRevision: 2, NewestRolloutAge: 5 * time.Minute},
		"errorDistribution": probe.ErrorDistributionEvidence{Total: 9},
		"resources":         probe.ResourcesEvidence{},
		"dependencies":      &probe.DependenciesEvidence{AllReachable: true, Unreachable: []string{}},
	}
	d, err := Evaluate(p, alertOf(nil), ev, now)
	if err != nil || d.Remedy != "rollback-recent-rollout" || len(d.EvidenceErrors) != 0 {
		t.Fatalf("%+v %v", d, err)
	}
	ev["rolloutHistory"] = fieldsEvidence{"currentRevision": int64(2), "newestRolloutAge": 5 * time.Minute}
	ev["dependencies"] = map[string]any{"allReachable": true, "unreachable": []string{}}
	ev["resources"] = (*probe.ResourcesEvidence)(nil)
	ev["errorDistribution"] = probe.SlowEndpointsEvidence{}
	d, _ = Evaluate(p, alertOf(nil), ev, now)
	if len(d.EvidenceErrors) != 4 || !d.Escalated {
		t.Fatalf("%+v", d)
	}
	for _, e := range d.EvidenceErrors {
		if !strings.Contains(e, "want probe.") || !strings.Contains(e, "ignored") {
			t.Errorf("evidence error %q", e)
		}
	}
	for _, c := range d.Conditions {
		if c.Value {
			t.Errorf("condition %s true on ignored evidence: %+v", c.Name, c)
		}
	}
}

// TestEvaluateProbeOnlyFields: the fields the old policy copies lacked —
// element lists, status strings and LogStats, which an embedded struct
// contributes flattened (as in JSON) — type-check and evaluate.
func TestEvaluateProbeOnlyFields(t *testing.T) {
	set, err := loadText(t, map[string]string{"p.yaml": `apiVersion: remediator/v1
kind: Policy
name: p
match: ['alertname="X"']
target: {kind: Deployment, nameLabel: deployment}
diagnosis:
  - probe: errorDistribution
    params: {sinceSeconds: 600, maxLines: 500, top: 3, pattern: "ERR|FATAL"}
  - probe: slowEndpoints
    params: {since: 10m}
  - probe: podStatus
  - probe: rolloutHistory
  - probe: dependencies
    params: {endpoints: ["db:5432"]}
  - probe: prometheus
    params: {query: up, mode: range, window: 1h, step: 30s}
remedies:
  - name: logs
    when: >-
      errorDistribution.pods == 2 && errorDistribution.lines > 10 && errorDistribution.failed.size() == 0 &&
      slowEndpoints.samples == 7 && slowEndpoints.failed.exists(f, f.startsWith("p-1"))
    action: restart
  - name: lists
    when: >-
      podStatus.pods.exists(p, p.lastTerminationReason == "OOMKilled" && !p.ready) &&
      rolloutHistory.status.contains("rolled out") && rolloutHistory.revisions[0].replicaSet == "rs-2" &&
      dependencies.checks.all(c, c.ok && c.latencyMs < 100.0) && prometheus.slopePerMinute > 0.5
    action: delete-pod
`})
	if err != nil {
		t.Fatal(err)
	}
	d, err := Evaluate(set.Get("p"), alertOf(nil), map[string]any{
		"errorDistribution": probe.ErrorDistributionEvidence{LogStats: probe.LogStats{Pods: 2, Lines: 40, Failed: []string{}}},
		"slowEndpoints":     &probe.SlowEndpointsEvidence{Samples: 7, LogStats: probe.LogStats{Failed: []string{"p-1/app: gone"}}},
		"podStatus":         probe.PodStatusEvidence{Pods: []probe.PodInfo{{Name: "p-1", LastTerminationReason: "OOMKilled"}}},
		"rolloutHistory":    probe.RolloutHistoryEvidence{Status: "successfully rolled out", Revisions: []probe.Revision{{Revision: 2, ReplicaSet: "rs-2"}}},
		"dependencies":      probe.DependenciesEvidence{AllReachable: true, Checks: []probe.Check{{Endpoint: "db:5432", OK: true, LatencyMs: 3}}},
		"prometheus":        probe.PrometheusEvidence{Available: true, SlopePerMinute: 1.5},
	}, now)
	if err != nil || len(d.EvidenceErrors) != 0 {
		t.Fatalf("%+v %v", d, err)
	}
	for _, c := range d.Conditions {
		if !c.Value {
			t.Errorf("condition %s: %+v", c.Name, c)
		}
	}
}

func TestEvaluateCostLimit(t *testing.T) {
	set, err := loadText(t, map[string]string{"p.yaml": `apiVersion: remediator/v1
kind: Policy
name: p
match: ['alertname="X"']
target: {kind: Deployment, nameLabel: deployment}
diagnosis:
  - probe: rolloutHistory
remedies:
  - name: quadratic
    when: rolloutHistory.revisions.all(a, rolloutHistory.revisions.all(b, a.revision + b.revision > 0))
    action: rollback
`})
	if err != nil {
		t.Fatal(err)
	}
	d, _ := Evaluate(set.Get("p"), alertOf(nil), map[string]any{"rolloutHistory": probe.RolloutHistoryEvidence{Revisions: revisions(2000)}}, now)
	if d.Conditions[0].Value || !strings.Contains(d.Conditions[0].Error, "cost") || !d.Escalated {
		t.Fatalf("%+v", d.Conditions)
	}
	d, _ = Evaluate(set.Get("p"), alertOf(nil), map[string]any{"rolloutHistory": probe.RolloutHistoryEvidence{Revisions: revisions(5)}}, now)
	if !d.Conditions[0].Value {
		t.Fatalf("small input: %+v", d.Conditions)
	}
}

func TestEvaluateScaleParams(t *testing.T) {
	p := shipped(t).Get("high-error-rate")
	d, _ := Evaluate(p, alertOf(nil), map[string]any{
		"rolloutHistory": probe.RolloutHistoryEvidence{NewestRolloutAge: 72 * time.Hour},
		"resources":      probe.ResourcesEvidence{Available: true, MemoryNearLimitPercent: 90},
		"dependencies":   probe.DependenciesEvidence{AllReachable: true},
	}, now)
	if d.Remedy != "scale-out" || d.Params["step"] != int64(2) || d.Params["max"] != int64(8) {
		t.Fatalf("%+v", d)
	}
}

func TestEvaluateRuntimeFailureIsFalseAndRecorded(t *testing.T) {
	set, err := loadText(t, map[string]string{"p.yaml": `apiVersion: remediator/v1
kind: Policy
name: p
match: ['alertname="X"']
target: {kind: Deployment, nameLabel: deployment}
diagnosis:
  - probe: podStatus
  - probe: rolloutHistory
remedies:
  - name: divide
    when: podStatus.ready * 100 / podStatus.total < 50
    action: restart
  - name: index
    when: rolloutHistory.revisions[0].revision > 1
    action: rollback
  - name: fallback
    when: podStatus.restarts >= 0
    action: delete-pod
priority:
  rules:
    - when: rolloutHistory.inProgress
      priority: P1
`})
	if err != nil {
		t.Fatal(err)
	}
	p := set.Get("p")
	// total 0 divides by zero; revisions is empty; rolloutHistory is given
	// as the wrong type and so is ignored, as a failed probe would be.
	d, err := Evaluate(p, alertOf(nil), map[string]any{"podStatus": probe.PodStatusEvidence{}, "rolloutHistory": probe.PodStatusEvidence{}}, now)
	if err != nil {
		t.Fatal(err)
	}
	if d.Conditions[0].Value || !strings.Contains(d.Conditions[0].Error, "division by zero") {
		t.Fatalf("divide: %+v", d.Conditions[0])
	}
	if d.Conditions[1].Value || d.Conditions[1].Error == "" {
		t.Fatalf("missing evidence: %+v", d.Conditions[1])
	}
	if d.Remedy != "fallback" || d.Priority != P3 || d.PriorityRules[0].Error == "" || len(d.EvidenceErrors) != 1 {
		t.Fatalf("%+v", d)
	}
	d, _ = Evaluate(p, alertOf(nil), map[string]any{"podStatus": &probe.PodStatusEvidence{Total: 4, Ready: 1}, "rolloutHistory": probe.RolloutHistoryEvidence{}}, now)
	if !strings.Contains(d.Conditions[1].Error, "index") || d.Remedy != "divide" {
		t.Fatalf("%+v", d)
	}
	if _, err := Evaluate(&Policy{}, Alert{}, nil, now); err == nil {
		t.Fatal("a policy not from Load must be refused")
	}
}

func TestEvaluateAlertAndNow(t *testing.T) {
	set, err := loadText(t, map[string]string{"p.yaml": `apiVersion: remediator/v1
kind: Policy
name: p
match: ['alertname="X"']
target: {kind: Deployment, nameLabel: deployment}
remedies:
  - name: old
    when: now - alert.startsAt > duration("1h") && alert.status == "firing" && alert.annotations["runbook"].startsWith("https://")
    action: escalate
`})
	if err != nil {
		t.Fatal(err)
	}
	a := Alert{Status: "firing", StartsAt: now.Add(-2 * time.Hour), Annotations: map[string]string{"runbook": "https://wiki/x"}}
	d, _ := Evaluate(set.Get("p"), a, nil, now)
	if d.Remedy != "old" {
		t.Fatalf("%+v", d)
	}
	a.StartsAt = now
	if d, _ = Evaluate(set.Get("p"), a, nil, now); d.Remedy != "" {
		t.Fatalf("%+v", d)
	}
}

func TestErrorsSortedAndFormatted(t *testing.T) {
	es := Errors{{File: "b.yaml", Pos: Pos{1, 1}, Msg: "x"}, {File: "a.yaml", Pos: Pos{3, 2}, Msg: "y"}, {File: "a.yaml", Pos: Pos{3, 1}, Msg: "z"}}
	es.sort()
	if es.Error() != "a.yaml:3:1: z\na.yaml:3:2: y\nb.yaml:1:1: x" {
		t.Fatal(es.Error())
	}
	var target Errors
	if !errors.As(error(es), &target) {
		t.Fatal("errors.As")
	}
}

// BenchmarkPlanOneAlert is the CPU cost of planning one HighErrorRate
// alert without probe I/O: match against the shipped set, resolve the
// target, evaluate every remedy condition and priority rule.
func BenchmarkPlanOneAlert(b *testing.B) {
	set := shipped(b)
	lbls := map[string]string{"alertname": "HighErrorRate", "severity": "critical", "namespace": "prod", "deployment": "platform-service"}
	alert := Alert{Status: "firing", Labels: lbls, StartsAt: now.Add(-5 * time.Minute)}
	evidence := map[string]any{
		"rolloutHistory":    probe.RolloutHistoryEvidence{Revisions: revisions(10), CurrentRevision: 10, NewestRolloutAge: 72 * time.Hour},
		"errorDistribution": probe.ErrorDistributionEvidence{Total: 240, Top: []probe.MessageCount{{Message: "timeout", Count: 200}}},
		"resources":         probe.ResourcesEvidence{Available: true, CPUNearLimitPercent: 80},
		"dependencies":      probe.DependenciesEvidence{AllReachable: true},
	}
	b.ReportAllocs()
	for b.Loop() {
		p, ok, _ := set.Match(lbls)
		if !ok {
			b.Fatal("no match")
		}
		if _, err := p.ResolveTarget(lbls); err != nil {
			b.Fatal(err)
		}
		d, err := Evaluate(p, alert, evidence, now)
		if err != nil || d.Remedy != "scale-out" {
			b.Fatalf("%+v %v", d, err)
		}
	}
}

func TestEvaluateConcurrent(t *testing.T) {
	set := shipped(t)
	p := set.Get("high-error-rate")
	ev := map[string]any{
		"rolloutHistory":    probe.RolloutHistoryEvidence{Revisions: revisions(3), NewestRolloutAge: 10 * time.Minute},
		"errorDistribution": probe.ErrorDistributionEvidence{Total: 9},
		"resources":         probe.ResourcesEvidence{},
		"dependencies":      probe.DependenciesEvidence{AllReachable: true},
	}
	done := make(chan string)
	for range 8 {
		go func() {
			var r string
			for range 50 {
				d, _ := Evaluate(p, alertOf(map[string]string{"severity": "critical"}), ev, now)
				r = d.Remedy + "/" + string(d.Priority)
			}
			done <- r
		}()
	}
	for range 8 {
		if r := <-done; r != "rollback-recent-rollout/P0" {
			t.Fatal(r)
		}
	}
}

func TestEvaluateFromWalksTheLadder(t *testing.T) {
	set, err := loadText(t, map[string]string{"p.yaml": `apiVersion: remediator/v1
kind: Policy
name: p
match: ['alertname="X"']
target: {kind: Deployment, nameLabel: deployment}
verify: {rolloutDeadline: 2m, resolveWithin: 3m}
guards: {circuitBreaker: 3, approvalExpiry: 15m}
remedies:
  - {name: first, action: restart}
  - {name: never, when: "false", action: rollback}
  - {name: third, action: scale, params: {step: 1, max: 4}}
`})
	if err != nil {
		t.Fatal(err)
	}
	p := set.Get("p")
	if p.RolloutDeadline() != 2*time.Minute || p.ResolveWithin() != 3*time.Minute || p.ApprovalExpiry() != 15*time.Minute || p.Guards.CircuitBreaker != 3 {
		t.Fatalf("verify/guards not loaded: %+v %+v", p.Verify, p.Guards)
	}
	for _, tc := range []struct {
		from      int
		remedy    string
		step      int
		escalated bool
	}{
		{0, "first", 0, false},
		{1, "third", 2, false}, // "never" is false, so the next true rung
		{2, "third", 2, false},
		{3, "", -1, true}, // past the last rung: escalate
	} {
		d, err := EvaluateFrom(p, alertOf(nil), nil, now, tc.from)
		if err != nil {
			t.Fatal(err)
		}
		if d.Remedy != tc.remedy || d.Step != tc.step || d.Escalated != tc.escalated {
			t.Errorf("from %d: got remedy %q step %d escalated %v", tc.from, d.Remedy, d.Step, d.Escalated)
		}
		for i, c := range d.Conditions {
			if c.Skipped != (i < tc.from) {
				t.Errorf("from %d: condition %d skipped=%v", tc.from, i, c.Skipped)
			}
		}
	}
	if q := set.Get("p"); q.ResolveWithin() != 3*time.Minute {
		t.Fatal(q.ResolveWithin())
	}
	def, _ := loadText(t, map[string]string{"d.yaml": policyText("d", `alertname="Y"`)})
	if d := def.Get("d"); d.RolloutDeadline() != DefaultRolloutDeadline || d.ResolveWithin() != DefaultResolveWithin || d.ApprovalExpiry() != DefaultApprovalExpiry {
		t.Fatal("defaults")
	}
}
