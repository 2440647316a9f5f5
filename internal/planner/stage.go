package planner

import (
	"context"
	"fmt"
	"strings"

	"github.com/remediator/remediator/internal/incident"
	"github.com/remediator/remediator/internal/pipeline"
	"github.com/remediator/remediator/internal/policy"
)

// Timeline event types this stage records.
const (
	EventMatched   = "matched"   // a policy governs the incident
	EventDiagnosed = "diagnosed" // every probe's evidence or error
	EventPlanned   = "planned"   // the decision: conditions, remedy, priority
)

// Stage runs policy match → diagnose → plan for a firing incident and
// records each step on its timeline. An incident no policy matches is
// recorded as unmatched and left alone (default deny). The plan is not
// executed here: acting on it belongs to the guard and act stages.
func Stage(p *Planner) pipeline.Stage {
	return pipeline.StageFunc(func(ctx context.Context, w *pipeline.Work) error {
		inc := w.Incident
		plan, err := p.Plan(ctx, policy.Alert{Status: inc.Status, Labels: inc.Labels, Annotations: inc.Annotations, StartsAt: inc.StartsAt})
		if err != nil {
			return fmt.Errorf("plan: %w", err)
		}
		RecordPlan(w, plan, w.Mode)
		return nil
	})
}

// RecordPlan records a plan on the work's timeline: unmatched (and stops
// the work), or matched, diagnosed and planned. It reports whether the plan
// is for a policy-governed incident, so acting on it may follow.
func RecordPlan(w *pipeline.Work, plan *Plan, mode string) bool {
	inc := w.Incident
	if !plan.Matched {
		w.Record(incident.EventUnmatched, plan.Why, map[string]string{"alertname": inc.AlertName, "mode": mode})
		w.Stop()
		return false
	}
	w.Record(EventMatched, plan.Why, map[string]any{"policy": plan.Policy, "target": plan.Target, "targetError": plan.TargetError})
	if plan.TargetError == "" {
		failed := 0
		for _, r := range plan.Evidence {
			if r.Err != nil {
				failed++
			}
		}
		w.Record(EventDiagnosed, fmt.Sprintf("%d probes, %d failed", len(plan.Evidence), failed),
			map[string]any{"evidence": plan.Evidence})
	}
	w.Record(EventPlanned, Summary(plan, mode), map[string]any{"mode": mode, "decision": plan.Decision, "target": plan.Target,
		"change": plan.Change, "changeError": plan.ChangeError, "blocks": plan.Blocks})
	return true
}

// Summary is the one-line reason recorded with a plan.
func Summary(plan *Plan, mode string) string {
	if !plan.Matched {
		return plan.Why
	}
	d := plan.Decision
	switch {
	case plan.TargetError != "":
		return fmt.Sprintf("escalate (%s): no target: %s", d.Priority, plan.TargetError)
	case d.Escalated:
		return fmt.Sprintf("escalate (%s): no remedy condition of policy %s is true", d.Priority, plan.Policy)
	case d.Action == "escalate":
		return fmt.Sprintf("escalate (%s): remedy %s", d.Priority, d.Remedy)
	case plan.ChangeError != "":
		return fmt.Sprintf("escalate (%s): remedy %s chose %s, which cannot be planned: %s", d.Priority, d.Remedy, d.Action, plan.ChangeError)
	}
	what := d.Action + " " + plan.Target.String()
	if plan.Change != nil {
		what = plan.Change.Summary
	}
	if len(plan.Blocks) > 0 {
		reasons := make([]string, 0, len(plan.Blocks))
		for _, b := range plan.Blocks {
			reasons = append(reasons, b.Guard+": "+b.Reason)
		}
		return fmt.Sprintf("blocked (%s): %s; the plan was: %s (remedy %s)", d.Priority, strings.Join(reasons, "; "), what, d.Remedy)
	}
	verb := "would " + what
	if mode != "dry-run" {
		verb = "plan: " + what
	}
	return fmt.Sprintf("%s (remedy %s, %s)", verb, d.Remedy, d.Priority)
}
