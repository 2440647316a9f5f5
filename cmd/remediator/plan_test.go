package main

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/remediator/remediator/internal/action"
	"github.com/remediator/remediator/internal/planner"
	"github.com/remediator/remediator/internal/policy"
	"github.com/remediator/remediator/internal/probe"
)

func TestRenderPlansGolden(t *testing.T) {
	start := time.Date(2026, 11, 26, 1, 0, 0, 0, time.UTC)
	labels := map[string]string{"alertname": "HighErrorRate", "namespace": "prod", "deployment": "platform-service", "severity": "critical"}
	plans := []alertPlan{
		{Alert: policy.Alert{Status: "firing", Labels: labels, StartsAt: start}, Plan: &planner.Plan{
			Matched: true, Policy: "high-error-rate", Why: "policy high-error-rate matches (1 matchers)",
			Target: &probe.Target{Namespace: "prod", Kind: "Deployment", Name: "platform-service"},
			Evidence: []probe.Result{
				{ID: "errorDistribution", Probe: "errorDistribution", Evidence: probe.ErrorDistributionEvidence{Total: 9,
					Top: []probe.MessageCount{{Message: "payment gateway returned <n> for order <n>", Count: 6}}}},
				{ID: "dependencies", Probe: "dependencies", Evidence: probe.DependenciesEvidence{AllReachable: true, Unreachable: []string{}}},
				{ID: "resources", Probe: "resources", Err: errors.New("pods is forbidden:\n cannot list")},
			},
			Decision: &policy.Decision{Policy: "high-error-rate", Remedy: "rollback-recent-rollout", Action: "rollback", Priority: "P0",
				Conditions: []policy.ConditionResult{
					{Name: "dependency-down", When: "!dependencies.allReachable", Value: false},
					{Name: "rollback-recent-rollout", When: "dependencies.allReachable &&\n errorDistribution.total > 0", Value: true},
					{Name: "scale-out", When: "resources.available", Value: false, Error: "no such key: resources"},
				}},
			Change: &action.Change{Action: "rollback", Summary: "rollback deployment prod/platform-service revision 2 → 1 (image registry.example/platform-service:v1.1.0 → registry.example/platform-service:v1.0.0)"},
			Blocks: []action.Block{{Guard: "rbac", Reason: "cannot patch deployments in namespace prod"}},
		}},
		{Alert: policy.Alert{Status: "resolved", Labels: labels, StartsAt: start}, Skipped: "alert is resolved: the service never acts on a resolved alert"},
		{Alert: policy.Alert{Status: "firing", Labels: map[string]string{"alertname": "Watchdog"}, StartsAt: start},
			Plan: &planner.Plan{Why: `no policy matches alertname="Watchdog"`}},
	}
	var b bytes.Buffer
	if err := renderPlans(&b, plans); err != nil {
		t.Fatal(err)
	}
	golden(t, "plan.txt", b.Bytes())
}
