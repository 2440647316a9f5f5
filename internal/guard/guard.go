// Package guard decides whether a planned remediation may run. Every guard
// is a small pure function of one Input (the merged Settings, the target
// Deployment's metadata and replica counts read just before acting, the
// planned change, and the ledger State read from the store); Evaluate runs
// all of them, never stopping at the first block, so that a recorded
// decision names every reason an action was held.
//
// The package does no I/O and keeps no state: the clock is Input.Now and
// the history is Input.State. The only exception is ParseRecurring, which
// loads a time zone (call it when the configuration is loaded, not per
// decision).
//
// Guards fail closed: an empty namespace allow-list allows nothing, an
// unknown action or incident status blocks, invalid settings block, a scale
// without an upper bound blocks.
package guard

import (
	"fmt"
	"strings"
	"time"
)

// Guard names, as recorded in Block.Guard and used as metric labels.
const (
	// GuardInput blocks when the settings or the input are unusable
	// (settings without defaults applied, no clock, negative counts).
	GuardInput = "input"
	// GuardTarget blocks an empty or wildcard target.
	GuardTarget = "target"
	// GuardResolved blocks when the incident is no longer firing.
	GuardResolved = "resolved"
	// GuardPause blocks while remediation is paused (the kill switch).
	GuardPause = "pause"
	// GuardMaintenance blocks during a recurring or ad-hoc maintenance
	// window that covers the target's namespace.
	GuardMaintenance = "maintenance"
	// GuardNamespace blocks a namespace not on the allow-list.
	GuardNamespace = "namespace"
	// GuardProtected blocks a target labelled or annotated as protected.
	GuardProtected = "protected"
	// GuardLock blocks while another action on the target is in flight.
	GuardLock = "lock"
	// GuardCooldown blocks within the cooldown after the last action on
	// the target.
	GuardCooldown = "cooldown"
	// GuardRateTarget limits the actions per target per hour.
	GuardRateTarget = "rate-target"
	// GuardRateGlobal limits the actions on all targets per hour.
	GuardRateGlobal = "rate-global"
	// GuardBlastRadius bounds scale-ups and keeps enough pods ready for
	// restarts and pod deletions.
	GuardBlastRadius = "blast-radius"
	// GuardCircuitBreaker stops acting on a target after repeated failed
	// or ineffective actions.
	GuardCircuitBreaker = "circuit-breaker"
)

// Actions the guards know. Any other action is blocked by blast-radius.
const (
	ActionRollback  = "rollback"
	ActionScale     = "scale"
	ActionRestart   = "restart"
	ActionDeletePod = "delete-pod"
	ActionEscalate  = "escalate"
)

// Execution states. Intent and applied are in flight; the others are final.
const (
	StateIntent      = "intent"
	StateApplied     = "applied"
	StateVerified    = "verified"
	StateFailed      = "failed"
	StateIneffective = "ineffective"
	StateAbandoned   = "abandoned"
)

// Incident statuses.
const (
	StatusFiring   = "firing"
	StatusResolved = "resolved"
)

// Execution is one recorded action (its intent and, once known, outcome).
type Execution struct {
	ID         string
	IncidentID string
	Action     string
	State      string // one of the State* constants
	CreatedAt  time.Time
}

// Window is an ad-hoc maintenance window, active from Start (inclusive) to
// End (exclusive). A zero End means it has no end yet; empty Namespaces
// means every namespace.
type Window struct {
	ID         string
	Start, End time.Time
	Namespaces []string
	Reason, By string
}

// Pause is the global kill switch.
type Pause struct {
	Paused bool
	By     string
	Reason string
	At     time.Time
}

// State is what the store knows, read just before acting.
type State struct {
	// IncidentStatus is StatusFiring or StatusResolved; anything else
	// blocks.
	IncidentStatus string
	// ResolvedAt is when the incident resolved, if known (only used in the
	// reason).
	ResolvedAt time.Time
	Pause      Pause
	// Windows are the ad-hoc maintenance windows, current and future.
	Windows []Window
	// InFlight are the executions on this target in state intent or
	// applied.
	InFlight []Execution
	// TargetRecent are the executions on this target created since
	// Settings.Lookback(now), newest first, in any state.
	TargetRecent []Execution
	// GlobalLastHour counts the executions on any target created in the
	// last hour, excluding abandoned ones.
	GlobalLastHour int
}

// Change holds the numbers of the planned change the blast-radius guard
// needs (a copy, so the package stays independent of the action types).
type Change struct {
	// ScaleTo is the planned replica count (or HPA minReplicas) of scale;
	// ScaleMax is the change's own bound (0: none).
	ScaleTo, ScaleMax int32
	// DeletePodNotReady says the pod delete-pod would remove is known not
	// to be ready, so deleting it leaves ReadyReplicas ready pods. The
	// zero value assumes the pod is ready (one ready pod fewer): the safe
	// side.
	DeletePodNotReady bool
	// DeleteMinReady is the change's own min-ready bound (0: none); the
	// guard's bound from Settings.MinHealthyPercent applies too.
	DeleteMinReady int
}

// Input is everything one decision looks at.
type Input struct {
	// Now is the decision's clock; it must be set.
	Now time.Time
	// Settings must have its defaults applied (see Merge, WithDefaults).
	Settings Settings

	// The target.
	Namespace, Kind, Name string
	// The Deployment's metadata, read just before acting.
	TargetLabels, TargetAnnotations map[string]string
	// The Deployment's spec.replicas, status.readyReplicas and its
	// rolling-update maxUnavailable resolved to a number of pods (a
	// percentage of Replicas rounded down, as Kubernetes does; Replicas
	// for the Recreate strategy).
	Replicas, ReadyReplicas, MaxUnavailable int32

	// Action is one of the Action* constants.
	Action string
	Change Change

	State State
}

// Block is one guard's refusal.
type Block struct {
	Guard  string `json:"guard"`
	Reason string `json:"reason"`
}

func (b Block) String() string { return "blocked by " + b.Guard + ": " + b.Reason }

// Decision is the outcome of Evaluate. Allowed is true exactly when Blocks
// is empty. Every guard that ran appears once, either in Blocks or in
// Passed, in the order of Names.
type Decision struct {
	Allowed bool     `json:"allowed"`
	Blocks  []Block  `json:"blocks,omitempty"`
	Passed  []string `json:"passed,omitempty"`
}

// Reason joins the blocks' reasons, one "guard: reason" per block.
func (d Decision) Reason() string {
	parts := make([]string, len(d.Blocks))
	for i, b := range d.Blocks {
		parts[i] = b.Guard + ": " + b.Reason
	}
	return strings.Join(parts, "; ")
}

type check struct {
	name string
	fn   func(in *Input) string // "" passes; otherwise why it blocks
}

// checks lists the guards in evaluation (and reporting) order.
func checks() []check {
	return []check{
		{GuardInput, checkInput},
		{GuardTarget, checkTarget},
		{GuardResolved, checkResolved},
		{GuardPause, checkPause},
		{GuardMaintenance, checkMaintenance},
		{GuardNamespace, checkNamespace},
		{GuardProtected, checkProtected},
		{GuardLock, checkLock},
		{GuardCooldown, checkCooldown},
		{GuardRateTarget, checkRateTarget},
		{GuardRateGlobal, checkRateGlobal},
		{GuardBlastRadius, checkBlastRadius},
		{GuardCircuitBreaker, checkCircuitBreaker},
	}
}

// Names lists every guard name in evaluation order (for pre-registering
// metric labels and for docs). It returns a new slice on every call.
func Names() []string {
	cs := checks()
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.name
	}
	return out
}

// Evaluate runs every guard on in and returns the decision. It does not
// stop at the first block.
//
// Escalation changes nothing on the cluster (it hands the incident to
// people), so for Action == "escalate" no guard applies: the decision is
// Allowed with no Blocks and no Passed. Pause, maintenance windows and rate
// limits must never keep an incident from reaching a person.
func Evaluate(in Input) Decision {
	if in.Action == ActionEscalate {
		return Decision{Allowed: true}
	}
	var d Decision
	for _, c := range checks() {
		if why := c.fn(&in); why != "" {
			d.Blocks = append(d.Blocks, Block{Guard: c.name, Reason: why})
		} else {
			d.Passed = append(d.Passed, c.name)
		}
	}
	d.Allowed = len(d.Blocks) == 0
	return d
}

// target names the target in reasons: "Deployment shop/api".
func (in *Input) target() string {
	kind := in.Kind
	if kind == "" {
		kind = "target"
	}
	return fmt.Sprintf("%s %s/%s", kind, in.Namespace, in.Name)
}
