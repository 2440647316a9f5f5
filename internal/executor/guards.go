package executor

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/remediator/remediator/internal/action"
	"github.com/remediator/remediator/internal/guard"
	"github.com/remediator/remediator/internal/incident"
	"github.com/remediator/remediator/internal/policy"
	"github.com/remediator/remediator/internal/probe"
	"github.com/remediator/remediator/internal/store"
)

// TargetInfo is what the guards read from the target just before acting.
type TargetInfo struct {
	Labels, Annotations                     map[string]string
	Replicas, ReadyReplicas, MaxUnavailable int32
}

// KubeTargets reads targets from the API server.
type KubeTargets struct{ Kube kubernetes.Interface }

// Read returns the Deployment's metadata and replica counts.
func (k KubeTargets) Read(ctx context.Context, t probe.Target) (TargetInfo, error) {
	if k.Kube == nil {
		return TargetInfo{}, fmt.Errorf("no Kubernetes client configured")
	}
	if err := t.Validate(); err != nil {
		return TargetInfo{}, err
	}
	d, err := k.Kube.AppsV1().Deployments(t.Namespace).Get(ctx, t.Name, metav1.GetOptions{})
	if err != nil {
		return TargetInfo{}, err
	}
	return targetInfo(d), nil
}

func targetInfo(d *appsv1.Deployment) TargetInfo {
	replicas := int32(1)
	if d.Spec.Replicas != nil {
		replicas = *d.Spec.Replicas
	}
	maxUnavailable := replicas // Recreate takes every pod down
	if d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		mu := intstr.FromString("25%") // the Kubernetes default
		if ru := d.Spec.Strategy.RollingUpdate; ru != nil && ru.MaxUnavailable != nil {
			mu = *ru.MaxUnavailable
		}
		n, err := intstr.GetScaledValueFromIntOrPercent(&mu, int(replicas), false) // rounded down, as the controller does
		if err != nil {
			n = int(replicas) // unreadable: assume the worst
		}
		maxUnavailable = int32(n)
	}
	return TargetInfo{Labels: d.Labels, Annotations: d.Annotations, Replicas: replicas,
		ReadyReplicas: d.Status.ReadyReplicas, MaxUnavailable: maxUnavailable}
}

// settings merges the global guard settings with the policy's.
func (e *Executor) settings(p *policy.Policy) guard.Settings {
	var o guard.Overrides
	breaker := 0
	if p != nil {
		g := p.Guards
		o = guard.Overrides{Cooldown: time.Duration(g.Cooldown), MaxPerTargetPerHour: g.MaxActionsPerHour,
			MaxReplicas: int32(g.MaxReplicas), MinHealthyPercent: g.MinHealthyPercent}
		breaker = g.CircuitBreaker
	}
	s := guard.Merge(e.Config.Guards, o)
	if breaker > 0 {
		s.BreakerFailures = breaker
	}
	return s
}

// guardInput builds the pure guards' input from what was read.
func (e *Executor) guardInput(now time.Time, s guard.Settings, t TargetInfo, ch action.Change, gs store.GuardState) guard.Input {
	in := guard.Input{
		Now: now, Settings: s,
		Namespace: ch.Target.Namespace, Kind: ch.Target.Kind, Name: ch.Target.Name,
		TargetLabels: t.Labels, TargetAnnotations: t.Annotations,
		Replicas: t.Replicas, ReadyReplicas: t.ReadyReplicas, MaxUnavailable: t.MaxUnavailable,
		Action: ch.Action,
		State: guard.State{
			IncidentStatus: gs.IncidentStatus,
			Pause:          guard.Pause{Paused: gs.Pause.Paused, By: gs.Pause.By, Reason: gs.Pause.Reason, At: gs.Pause.At},
			InFlight:       guardExecs(gs.InFlight),
			TargetRecent:   guardExecs(gs.TargetRecent),
			GlobalLastHour: gs.GlobalLastHour,
		},
	}
	for _, w := range gs.Windows {
		in.State.Windows = append(in.State.Windows, guard.Window{ID: w.ID, Start: w.Start, End: w.End, Namespaces: w.Namespaces, Reason: w.Reason, By: w.By})
	}
	switch {
	case ch.Scale != nil:
		in.Change.ScaleTo, in.Change.ScaleMax = ch.Scale.To, ch.Scale.Max
	case ch.DeletePod != nil:
		in.Change.DeletePodNotReady = !ch.DeletePod.PodReady
		in.Change.DeleteMinReady = ch.DeletePod.MinReady
	}
	return in
}

// evaluate runs the guards. The cooldown is for separate incidents on one
// target (a restart must not loop); the next rung of one incident's ladder
// is the policy's own sequence, so this incident's earlier executions do not
// hold it back (they still count for rate limits and the circuit breaker).
func (e *Executor) evaluate(now time.Time, s guard.Settings, incidentID string, t TargetInfo, ch action.Change, gs store.GuardState) guard.Decision {
	in := e.guardInput(now, s, t, ch, gs)
	d := guard.Evaluate(in)
	if d.Allowed {
		return d
	}
	cooled := false
	for _, b := range d.Blocks {
		if b.Guard == guard.GuardCooldown {
			cooled = true
		}
	}
	if !cooled {
		return d
	}
	others := in
	others.State.TargetRecent = nil
	for _, x := range in.State.TargetRecent {
		if x.IncidentID != incidentID {
			others.State.TargetRecent = append(others.State.TargetRecent, x)
		}
	}
	for _, b := range guard.Evaluate(others).Blocks {
		if b.Guard == guard.GuardCooldown {
			return d // another incident's action holds the cooldown
		}
	}
	out := guard.Decision{Passed: append(d.Passed, guard.GuardCooldown)}
	for _, b := range d.Blocks {
		if b.Guard != guard.GuardCooldown {
			out.Blocks = append(out.Blocks, b)
		}
	}
	out.Allowed = len(out.Blocks) == 0
	return out
}

func guardExecs(xs []store.Execution) []guard.Execution {
	out := make([]guard.Execution, 0, len(xs))
	for _, x := range xs {
		out = append(out, guard.Execution{ID: x.ID, IncidentID: x.IncidentID, Action: x.Action, State: x.State, CreatedAt: x.CreatedAt})
	}
	return out
}

// preview evaluates the guards read-only, for a proposal: what they would
// say if the plan were executed now.
func (e *Executor) preview(ctx context.Context, inc incident.Incident, p *policy.Policy, ch action.Change) (guard.Decision, error) {
	now := e.now()
	s := e.settings(p)
	gs, err := e.Store.GuardState(ctx, store.GuardQuery{IncidentID: inc.ID, Namespace: ch.Target.Namespace, Kind: ch.Target.Kind,
		Name: ch.Target.Name, Since: s.Lookback(now), Now: now})
	if err != nil {
		return guard.Decision{}, fmt.Errorf("read guard state: %w", err)
	}
	t, err := e.Targets.Read(ctx, ch.Target)
	if err != nil {
		return guard.Decision{Blocks: []guard.Block{{Guard: guard.GuardProtected, Reason: "cannot read the target: " + err.Error()}}}, nil
	}
	return e.evaluate(now, s, inc.ID, t, ch, gs), nil
}
