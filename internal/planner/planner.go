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
	Now  func() time.Time
}

// Plan is the outcome of planning one alert.
type Plan struct {
	// Matched is false when no policy governs the alert: nothing is done.
	Matched bool   `json:"matched"`
	Policy  string `json:"policy,omitempty"`
	Why     string `json:"why"`
	// Target is the workload; TargetError says why none could be resolved
	// (empty or wildcard labels, a pod without a Deployment), in which case
	// no probe runs and the decision is to escalate.
	Target      *probe.Target    `json:"target,omitempty"`
	TargetError string           `json:"targetError,omitempty"`
	Evidence    []probe.Result   `json:"evidence,omitempty"`
	Decision    *policy.Decision `json:"decision,omitempty"`
}

// Plan matches, resolves the target, runs the diagnosis and evaluates the
// ladder. Probe failures are part of the plan (the conditions that read
// their evidence are false), never an error of Plan.
func (p *Planner) Plan(ctx context.Context, a policy.Alert) (*Plan, error) {
	set := p.Policies()
	if set == nil {
		return &Plan{Why: "no policies are loaded, so nothing will be done"}, nil
	}
	pol, ok, why := set.Match(a.Labels)
	if !ok {
		return &Plan{Why: why}, nil
	}
	plan := &Plan{Matched: true, Policy: pol.Name, Why: why}
	now := p.now()

	target, err := p.resolveTarget(ctx, pol, a.Labels)
	if err != nil {
		plan.TargetError = err.Error()
		d, derr := policy.Evaluate(pol, a, nil, now)
		if derr != nil {
			return nil, derr
		}
		// Without a target nothing may act, whatever the conditions say.
		d.Remedy, d.Action, d.Params, d.Escalated = "", "escalate", nil, true
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
	d, err := policy.Evaluate(pol, a, evidence, now)
	if err != nil {
		return nil, err
	}
	plan.Decision = &d
	return plan, nil
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
