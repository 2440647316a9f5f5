// Package planner turns one alert into a plan: the policy that governs it,
// the target workload, the evidence of every diagnosis probe, and the
// policy's decision (each remedy condition true or false and why, the chosen
// remedy, the priority). Planning changes nothing anywhere; the worker
// records plans on incident timelines and `remediator plan` prints them.
package planner

import (
	"context"
	"fmt"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/remediator/remediator/internal/action"
	"github.com/remediator/remediator/internal/policy"
	"github.com/remediator/remediator/internal/probe"
)

// Planner makes plans. Its fields are its dependencies.
type Planner struct {
	// Policies returns the policy set in force (it may change on reload).
	Policies func() *policy.Set
	// Probes by name, wired to their sources (probe.New).
	Probes map[string]probe.Probe
	// Kube resolves a pod's owner Deployment for pod-labelled alerts; may be
	// nil when no policy uses podLabel.
	Kube kubernetes.Interface
	// Actions by name (action.New): the chosen remedy's action plans its
	// exact change and runs its read-only pre-flight. May be nil.
	Actions map[string]action.Action
	Now     func() time.Time
}

// Plan is the outcome of planning one alert.
type Plan struct {
	// Matched is false when no policy governs the alert: nothing is done.
	Matched bool   `json:"matched"`
	Policy  string `json:"policy,omitempty"`
	Why     string `json:"why"`
	// Rules is the policy itself (its guard and verification settings).
	Rules *policy.Policy `json:"-"`
	// Target is the workload; TargetError says why none could be resolved
	// (empty or wildcard labels, a pod without a Deployment), in which case
	// no probe runs and the decision is to escalate.
	Target      *probe.Target    `json:"target,omitempty"`
	TargetError string           `json:"targetError,omitempty"`
	Evidence    []probe.Result   `json:"evidence,omitempty"`
	Decision    *policy.Decision `json:"decision,omitempty"`
	// Change is the exact change the chosen action would make; ChangeError
	// says why it cannot be planned (no earlier revision, nothing to scale,
	// too few healthy pods...). Blocks are the pre-flight checks that refuse
	// it now (a rollout in progress, a missing RBAC verb).
	Change      *action.Change `json:"change,omitempty"`
	ChangeError string         `json:"changeError,omitempty"`
	Blocks      []action.Block `json:"blocks,omitempty"`
}

// Plan matches, resolves the target, runs the diagnosis and evaluates the
// ladder. Probe failures are part of the plan (the conditions that read
// their evidence are false), never an error of Plan.
func (p *Planner) Plan(ctx context.Context, a policy.Alert) (*Plan, error) {
	return p.PlanFrom(ctx, a, 0)
}

// PlanFrom plans for a later rung of the ladder: remedies before index from
// were tried for this incident and are not chosen again (see
// policy.EvaluateFrom). Diagnosis runs afresh.
func (p *Planner) PlanFrom(ctx context.Context, a policy.Alert, from int) (*Plan, error) {
	set := p.Policies()
	if set == nil {
		return &Plan{Why: "no policies are loaded, so nothing will be done"}, nil
	}
	pol, ok, why := set.Match(a.Labels)
	if !ok {
		return &Plan{Why: why}, nil
	}
	plan := &Plan{Matched: true, Policy: pol.Name, Why: why, Rules: pol}
	now := p.now()

	target, err := p.resolveTarget(ctx, pol, a.Labels)
	if err != nil {
		plan.TargetError = err.Error()
		d, derr := policy.EvaluateFrom(pol, a, nil, now, from)
		if derr != nil {
			return nil, derr
		}
		// Without a target nothing may act, whatever the conditions say.
		d.Remedy, d.Action, d.Params, d.Escalated, d.Step = "", "escalate", nil, true, -1
		plan.Decision = &d
		return plan, nil
	}
	plan.Target = &target

	steps := make([]probe.Step, 0, len(pol.Diagnosis))
	missing := map[string]string{}
	for _, s := range pol.Diagnosis {
		id := s.ID
		if id == "" {
			id = s.Probe
		}
		pr, ok := p.Probes[s.Probe]
		if !ok {
			missing[id] = s.Probe
			continue
		}
		steps = append(steps, probe.Step{ID: id, Probe: pr, Target: target, Params: probe.Params(s.Values),
			Timeout: time.Duration(s.Timeout)})
	}
	results := probe.RunAll(ctx, steps)
	for id, name := range missing {
		results = append(results, probe.Result{ID: id, Probe: name,
			Err: fmt.Errorf("probe %s is not configured on this service", name)})
	}
	evidence := make(map[string]any, len(results))
	for _, r := range results {
		if r.Err == nil && r.Evidence != nil {
			evidence[r.ID] = r.Evidence
		}
	}
	plan.Evidence = results
	d, err := policy.EvaluateFrom(pol, a, evidence, now, from)
	if err != nil {
		return nil, err
	}
	plan.Decision = &d
	p.planChange(ctx, plan, pol)
	return plan, nil
}

// planChange asks the chosen action for its exact change and pre-flight.
// Nothing is changed: both are read-only.
func (p *Planner) planChange(ctx context.Context, plan *Plan, pol *policy.Policy) {
	d := plan.Decision
	if d.Action == "" || d.Action == "escalate" {
		return
	}
	act, ok := p.Actions[d.Action]
	if !ok {
		plan.ChangeError = fmt.Sprintf("action %s is not configured on this service", d.Action)
		return
	}
	params := action.Params{}
	for k, v := range d.Params {
		params[k] = v
	}
	// The policy's blast-radius settings bound the change.
	if g := pol.Guards; g.MaxReplicas > 0 && d.Action == "scale" {
		if _, set := params["max"]; !set {
			params["max"] = int64(g.MaxReplicas)
		}
	}
	if g := pol.Guards; g.MinHealthyPercent > 0 && d.Action == "delete-pod" {
		params["minHealthyPercent"] = int64(g.MinHealthyPercent)
	}
	change, err := act.Plan(ctx, *plan.Target, params)
	if err != nil {
		plan.ChangeError = err.Error()
		return
	}
	plan.Change = &change
	plan.Blocks = act.Check(ctx, *plan.Target, change)
}

func (p *Planner) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

func (p *Planner) resolveTarget(ctx context.Context, pol *policy.Policy, labels map[string]string) (probe.Target, error) {
	t, err := pol.ResolveTarget(labels)
	if err != nil {
		return probe.Target{}, err
	}
	if t.Pod != "" {
		if p.Kube == nil {
			return probe.Target{}, fmt.Errorf("target is pod %s/%s but no Kubernetes client is configured to find its Deployment", t.Namespace, t.Pod)
		}
		return probe.OwnerDeployment(ctx, p.Kube, t.Namespace, t.Pod)
	}
	pt := probe.Target{Namespace: t.Namespace, Kind: t.Kind, Name: t.Name}
	if err := pt.Validate(); err != nil {
		return probe.Target{}, err
	}
	return pt, nil
}
