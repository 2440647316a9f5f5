package policy

import (
	"strings"
	"testing"
	"time"

	"github.com/remediator/remediator/internal/probe"
)

// The shipped HighLatency and HighErrorRate ladders on the evidence users
// have: CPU saturation from Prometheus (cAdvisor against kube-state-metrics
// limits, the cpuSaturation step) or from metrics.k8s.io (resources),
// whether there is a rollout to roll back (a recent one and a previous
// revision), and the dependencies.
func TestShippedSaturationLadders(t *testing.T) {
	set := shipped(t)
	up := probe.DependenciesEvidence{AllReachable: true, Unreachable: []string{}}
	down := probe.DependenciesEvidence{AllReachable: false, Unreachable: []string{"database:5432"}}
	saturated := probe.PrometheusEvidence{Available: true, Value: 100, Samples: 1, Series: 1}
	calmProm := probe.PrometheusEvidence{Available: true, Value: 0, Samples: 1, Series: 1}
	halfProm := probe.PrometheusEvidence{Available: true, Value: 50, Samples: 1, Series: 1}
	noProm := probe.PrometheusEvidence{Reason: "the query returned no samples"}
	noMetricsAPI := probe.ResourcesEvidence{Reason: "metrics.k8s.io is not served"}
	hotPods := probe.ResourcesEvidence{Available: true, CPUNearLimitPercent: 67}
	calmPods := probe.ResourcesEvidence{Available: true, CPUNearLimitPercent: 0, MemoryNearLimitPercent: 10}
	// One revision created minutes ago (a fresh Deployment: the test bed),
	// two with the newer one minutes old (a recent rollout), three days old.
	fresh := probe.RolloutHistoryEvidence{Revisions: revisions(1), CurrentRevision: 1, NewestRolloutAge: 2 * time.Minute}
	recent := probe.RolloutHistoryEvidence{Revisions: revisions(2), CurrentRevision: 2, NewestRolloutAge: 10 * time.Minute}
	old := probe.RolloutHistoryEvidence{Revisions: revisions(3), CurrentRevision: 3, NewestRolloutAge: 72 * time.Hour}
	rolling := recent
	rolling.InProgress = true

	latency := func(sat probe.PrometheusEvidence, res probe.ResourcesEvidence, ro probe.RolloutHistoryEvidence, deps probe.DependenciesEvidence) map[string]any {
		return map[string]any{
			"p95":            probe.PrometheusEvidence{Available: true, Value: 2.8},
			"slowEndpoints":  probe.SlowEndpointsEvidence{Top: []probe.EndpointLatency{}},
			"cpuSaturation":  sat,
			"resources":      res,
			"rolloutHistory": ro,
			"dependencies":   deps,
		}
	}
	errorRate := func(sat probe.PrometheusEvidence, res probe.ResourcesEvidence, ro probe.RolloutHistoryEvidence, deps probe.DependenciesEvidence) map[string]any {
		return map[string]any{
			"errorDistribution": probe.ErrorDistributionEvidence{Total: 120, Top: []probe.MessageCount{{Message: "timeout", Count: 120}}},
			"cpuSaturation":     sat,
			"resources":         res,
			"rolloutHistory":    ro,
			"dependencies":      deps,
		}
	}
	tests := []struct {
		name     string
		policy   string
		severity string
		evidence map[string]any
		remedy   string // "" → escalated, no remedy
		action   string
		params   map[string]any
		prio     Priority
	}{
		// HighLatency.
		{"saturated (Prometheus), single revision, no metrics.k8s.io → scale to 8", "high-latency", "warning",
			latency(saturated, noMetricsAPI, fresh, up), "scale-out", "scale", map[string]any{"replicas": int64(8), "max": int64(8)}, P2},
		{"saturated (metrics.k8s.io), no Prometheus series, old rollout → scale", "high-latency", "warning",
			latency(noProm, hotPods, old, up), "scale-out", "scale", map[string]any{"replicas": int64(8), "max": int64(8)}, P2},
		{"saturated (Prometheus) and calm by metrics.k8s.io, old rollout → scale (either source is enough)", "high-latency", "warning",
			latency(saturated, calmPods, old, up), "scale-out", "scale", nil, P2},
		{"recent rollout with a previous revision → rollback", "high-latency", "warning",
			latency(calmProm, noMetricsAPI, recent, up), "rollback-recent-rollout", "rollback", nil, P2},
		{"recent rollout with a previous revision, saturated → rollback, not scale", "high-latency", "warning",
			latency(saturated, hotPods, recent, up), "rollback-recent-rollout", "rollback", nil, P2},
		{"rollout in progress, saturated → escalate (neither rollback nor scale)", "high-latency", "warning",
			latency(saturated, hotPods, rolling, up), "", "escalate", nil, P2},
		{"dependencies down (warning) → escalate at P1, not P2", "high-latency", "warning",
			latency(saturated, hotPods, fresh, down), "dependency-down", "escalate", nil, P1},
		{"dependencies down (critical) → escalate at P1, not P0", "high-latency", "critical",
			latency(saturated, hotPods, recent, down), "dependency-down", "escalate", nil, P1},
		{"single revision, not saturated → escalate", "high-latency", "warning",
			latency(calmProm, noMetricsAPI, fresh, up), "", "escalate", nil, P2},
		{"single revision, half the pods saturated (not most) → escalate", "high-latency", "warning",
			latency(halfProm, noMetricsAPI, fresh, up), "", "escalate", nil, P2},
		{"no saturation source available → escalate", "high-latency", "warning",
			latency(noProm, noMetricsAPI, fresh, up), "", "escalate", nil, P2},
		// HighErrorRate: the same shape.
		{"errors, saturated (Prometheus), single revision → scale by 2", "high-error-rate", "critical",
			errorRate(saturated, noMetricsAPI, fresh, up), "scale-out", "scale", map[string]any{"step": int64(2), "max": int64(8)}, P0},
		{"errors after a recent rollout with a previous revision → rollback", "high-error-rate", "critical",
			errorRate(saturated, noMetricsAPI, recent, up), "rollback-recent-rollout", "rollback", nil, P0},
		{"errors, dependencies down (critical) → escalate at P1, not P0", "high-error-rate", "critical",
			errorRate(saturated, noMetricsAPI, recent, down), "dependency-down", "escalate", map[string]any{"to": "platform-team"}, P1},
		{"errors, single revision, not saturated → escalate", "high-error-rate", "critical",
			errorRate(calmProm, noMetricsAPI, fresh, up), "", "escalate", nil, P0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := set.Get(tc.policy)
			lbls := map[string]string{"alertname": "X", "namespace": "prod", "deployment": "platform-service", "severity": tc.severity}
			d, err := Evaluate(p, alertOf(lbls), tc.evidence, now)
			if err != nil {
				t.Fatal(err)
			}
			if d.Remedy != tc.remedy || d.Action != tc.action || d.Priority != tc.prio || d.Escalated != (tc.remedy == "") {
				t.Fatalf("got remedy=%q action=%q priority=%s escalated=%v, want %q %q %s\nconditions %+v\npriority rules %+v",
					d.Remedy, d.Action, d.Priority, d.Escalated, tc.remedy, tc.action, tc.prio, d.Conditions, d.PriorityRules)
			}
			for k, v := range tc.params {
				if d.Params[k] != v {
					t.Errorf("param %s = %v, want %v (params %v)", k, d.Params[k], v, d.Params)
				}
			}
			// The evidence is complete: no condition may have failed.
			for _, r := range append(d.PriorityRules, d.Conditions...) {
				if r.Error != "" {
					t.Errorf("%s: %s", r.Name, r.Error)
				}
			}
			if len(d.EvidenceErrors) > 0 {
				t.Errorf("evidence errors: %v", d.EvidenceErrors)
			}
		})
	}
}

// A failed probe never makes the ladder act or lower the priority: without
// the cpuSaturation and resources evidence there is no scale, and without
// the dependencies evidence neither the P1 rule nor any action applies
// (the severity decides the priority).
func TestShippedSaturationFailedProbes(t *testing.T) {
	p := shipped(t).Get("high-latency")
	lbls := map[string]string{"alertname": "HighLatency", "namespace": "prod", "deployment": "platform-service", "severity": "warning"}
	fresh := probe.RolloutHistoryEvidence{Revisions: revisions(1), CurrentRevision: 1, NewestRolloutAge: 2 * time.Minute}

	d, err := Evaluate(p, alertOf(lbls), map[string]any{
		"rolloutHistory": fresh,
		"dependencies":   probe.DependenciesEvidence{AllReachable: true},
	}, now)
	if err != nil {
		t.Fatal(err)
	}
	if !d.Escalated || d.Priority != P2 {
		t.Fatalf("no saturation evidence: %+v", d)
	}
	if c := d.Conditions[2]; c.Name != "scale-out" || c.Value || !strings.Contains(c.Error, "cpuSaturation") && !strings.Contains(c.Error, "resources") {
		t.Errorf("scale-out without saturation evidence: %+v", c)
	}

	d, err = Evaluate(p, alertOf(lbls), map[string]any{
		"rolloutHistory": fresh,
		"cpuSaturation":  probe.PrometheusEvidence{Available: true, Value: 100},
	}, now)
	if err != nil {
		t.Fatal(err)
	}
	if !d.Escalated || d.Priority != P2 {
		t.Fatalf("no dependencies evidence: remedy %q priority %s, want escalation at the severity's P2", d.Remedy, d.Priority)
	}
	if r := d.PriorityRules[0]; r.When != "!dependencies.allReachable" || r.Value || !strings.Contains(r.Error, "dependencies") {
		t.Errorf("the P1 rule without dependencies evidence: %+v", r)
	}
}
