// Package executor turns plans into changes on the cluster, only when it is
// safe, and proves they worked: guard → intent → Apply → outcome → verify
// (rollout, then the alert resolving) → the next remedy on the ladder →
// escalation. Every step, and every decision not to act, is recorded on the
// incident's timeline.
//
// Exactly once: the guards are evaluated and the intent record written in
// one serialized store transaction (store.BeginExecution), keyed by
// (incident, ladder step), which also holds the per-target lock. Apply is
// idempotent (it reads before it writes). An intent found without an outcome
// (the process died, or lost leadership, between the two) is reconciled by
// reading the cluster (action.Observe), never by applying again blindly.
//
// Long waits are timers, not sleeps: verification runs as follow-up jobs
// (store-backed, so they survive restarts and move to another replica with
// the lease).
package executor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/remediator/remediator/internal/action"
	"github.com/remediator/remediator/internal/escalation"
	"github.com/remediator/remediator/internal/guard"
	"github.com/remediator/remediator/internal/incident"
	"github.com/remediator/remediator/internal/pipeline"
	"github.com/remediator/remediator/internal/planner"
	"github.com/remediator/remediator/internal/policy"
	"github.com/remediator/remediator/internal/probe"
	"github.com/remediator/remediator/internal/store"
)

// Job kinds the executor schedules and handles (besides firing/resolved).
const (
	KindVerify       = "verify"        // wait for the rollout of an applied change
	KindResolveCheck = "resolve-check" // the alert should have resolved by now
	KindApproved     = "approved"      // execute an approved proposal
	KindExpire       = "expire"        // a proposal's time is up
)

// Timeline event types the executor records.
const (
	EventProposed    = "proposed"         // dry-run or awaiting approval: what would be done
	EventBlocked     = "blocked"          // a guard or pre-flight check said no
	EventIntent      = "intent"           // about to apply (written before Apply)
	EventApplied     = "applied"          // the API server acknowledged the change
	EventFailed      = "failed"           // Apply or verification failed
	EventRolledOut   = "rollout-complete" // the change's rollout completed
	EventVerified    = "verified"         // the alert resolved after the change
	EventIneffective = "ineffective"      // rolled out, but the alert kept firing
	EventEscalated   = "escalated"        // handed to people
	EventApproved    = "approved"
	EventRejected    = "rejected"
	EventExpired     = "expired"
	EventReconciled  = "reconciled" // an intent without outcome, settled by reading the cluster
	EventDuplicate   = "duplicate-execution-prevented"
)

// Ledger is what the executor needs from the store.
type Ledger interface {
	Incident(ctx context.Context, id string) (incident.Incident, []incident.Event, error)
	AppendEvents(ctx context.Context, events ...incident.Event) error
	GuardState(ctx context.Context, q store.GuardQuery) (store.GuardState, error)
	BeginExecution(ctx context.Context, e store.Execution, q store.GuardQuery, decide func(store.GuardState) error, events ...incident.Event) error
	FinishExecution(ctx context.Context, id string, from []string, to, reason string, events ...incident.Event) error
	Executions(ctx context.Context, f store.ExecutionFilter) ([]store.Execution, error)
	Propose(ctx context.Context, p store.Proposal, next []store.NewJob, events ...incident.Event) error
	Proposal(ctx context.Context, id string) (store.Proposal, error)
	Proposals(ctx context.Context, incidentID string) ([]store.Proposal, error)
	DecideProposal(ctx context.Context, id, to, by, reason string, at time.Time, next []store.NewJob, events ...incident.Event) (store.Proposal, error)
}

// TargetReader reads what the guards need to know about a target right
// before acting (labels, annotations, replica counts).
type TargetReader interface {
	Read(ctx context.Context, t probe.Target) (TargetInfo, error)
}

// Config is the service-wide part of the guard settings.
type Config struct {
	// Mode is the global mode (dry-run unless enforce was chosen).
	Mode string
	// Guards are the global guard settings; a policy's guards override the
	// per-target ones (cooldown, rate, blast radius, circuit breaker).
	Guards guard.Settings
	// ApprovalPriorities need a person's approval whatever the policy says.
	ApprovalPriorities []policy.Priority
	// Owner names this replica on intent records.
	Owner string
	// ApplyTimeout bounds one Apply including its retries (default 15s).
	ApplyTimeout time.Duration
	// VerifyPoll is the interval between rollout checks (default 2s).
	VerifyPoll time.Duration
	// AfterIntent and AfterApply, when set, run right after the intent is
	// durable and right after Apply returned (before the outcome is
	// recorded). Only crash tests set them (to kill the process there).
	AfterIntent, AfterApply func(executionID string)
}

// Executor runs the act, verify and approval stages.
type Executor struct {
	Config   Config
	Store    Ledger
	Planner  *planner.Planner
	Actions  map[string]action.Action
	Targets  TargetReader
	Policies func() *policy.Set
	Metrics  *Metrics
	Log      *zap.Logger
	Now      func() time.Time
	// Escalation makes escalations real: the incident's priority is
	// recorded when it is planned (a P0 is handed to people at once), its
	// response deadlines are scheduled, and every escalation notifies the
	// targets of its priority through the outbox. nil: an escalation is a
	// timeline record only.
	Escalation *escalation.Escalator
}

func (e *Executor) now() time.Time {
	if e.Now != nil {
		return e.Now().UTC()
	}
	return time.Now().UTC()
}

func (e *Executor) log() *zap.Logger {
	if e.Log != nil {
		return e.Log
	}
	return zap.NewNop()
}

// Stages returns the pipeline for every job kind. Load has run before.
func (e *Executor) Stages() pipeline.ByKind {
	stages := pipeline.ByKind{
		incident.JobFiring:   pipeline.StageFunc(e.firing),
		incident.JobResolved: pipeline.StageFunc(e.resolved),
		KindVerify:           pipeline.StageFunc(e.verify),
		KindResolveCheck:     pipeline.StageFunc(e.resolveCheck),
		KindApproved:         pipeline.StageFunc(e.approved),
		KindExpire:           pipeline.StageFunc(e.expire),
	}
	if e.Escalation != nil {
		stages[escalation.KindDeadline] = e.Escalation.Stage()
	}
	return stages
}

// firing handles a new episode: reconcile what a crashed predecessor left,
// then plan and act on the first rung of the ladder.
func (e *Executor) firing(ctx context.Context, w *pipeline.Work) error {
	rec, err := e.reconcile(ctx, w)
	if err != nil {
		return err
	}
	if rec.acted() {
		// An earlier run of this job acted and died before completing:
		// its change is being verified (reconcile asked for that) or its
		// outcome is recorded. Planning again would only find the rung
		// taken.
		return nil
	}
	if w.Incident.Status == incident.StatusResolved {
		w.Record(incident.EventCancelled, "alert resolved before remediation started; nothing will be done", nil)
		return nil
	}
	return e.planAndAct(ctx, w, 0, "")
}

// reconciled is what reconcile found on the incident's ledger.
type reconciled struct {
	// execs are the incident's executions as they are after reconciling,
	// oldest first.
	execs []store.Execution
}

// acted reports whether an execution of the incident was not abandoned
// (it is in flight or has its outcome).
func (r reconciled) acted() bool {
	for _, x := range r.execs {
		if x.State != store.ExecAbandoned {
			return true
		}
	}
	return false
}

// find returns the execution with ID id.
func (r reconciled) find(id string) (store.Execution, bool) {
	for _, x := range r.execs {
		if x.ID == id {
			return x, true
		}
	}
	return store.Execution{}, false
}

// step returns the incident's execution of ladder step s that was not
// abandoned.
func (r reconciled) step(s int) (store.Execution, bool) {
	for _, x := range r.execs {
		if x.Step == s && x.State != store.ExecAbandoned {
			return x, true
		}
	}
	return store.Execution{}, false
}

// reconcile runs first in every job that may act. It settles the
// incident's intents that have no outcome: a job wrote the intent and its
// process died (or lost its lease) before recording Apply's outcome. Jobs
// of one incident never run two at a time, so such an intent is not being
// applied now. The cluster says whether the change happened: in effect →
// applied (never applied again), else abandoned (the caller decides
// again). An applied execution whose verification no job asked for (its
// job died after recording the outcome, before completing with the
// follow-up) gets a verification job. The resolved job needs neither
// follow-up: it settles applied executions itself.
func (e *Executor) reconcile(ctx context.Context, w *pipeline.Work) (reconciled, error) {
	execs, err := e.Store.Executions(ctx, store.ExecutionFilter{IncidentID: w.Incident.ID})
	if err != nil {
		return reconciled{}, fmt.Errorf("read executions: %w", err)
	}
	verify := w.Job.Kind != incident.JobResolved
	for i := range execs {
		x := &execs[i]
		switch x.State {
		case store.ExecApplied:
			// Applied by an earlier run of this job, which died before
			// completing with its verification job (a verify or
			// resolve-check job is about its own execution, Ref).
			if verify && x.ID != w.Job.Ref {
				w.Then(KindVerify, x.ID, e.now())
			}
		case store.ExecIntent:
			change, act, err := e.decodeChange(*x)
			if err != nil {
				return reconciled{}, err
			}
			obs, err := act.Observe(ctx, change)
			gone := apierrors.IsNotFound(err)
			if err != nil && !gone {
				return reconciled{}, fmt.Errorf("reconcile execution %s: %w", x.ID, err) // retried later; the intent keeps the lock
			}
			to, reason, text := store.ExecAbandoned, "reconciled: not applied: "+obs.Detail,
				"an earlier attempt was interrupted after its intent; the change never reached the cluster: "+obs.Detail+"; deciding again"
			switch {
			case gone:
				// Retrying cannot help, and no change to a target that is
				// gone is in effect.
				to, reason, text = store.ExecAbandoned, "reconciled: target gone: "+err.Error(),
					"an earlier attempt was interrupted after its intent; its target is gone ("+err.Error()+"), so the change is not in effect; deciding again"
			case obs.Applied:
				to, reason, text = store.ExecApplied, "reconciled: "+obs.Detail,
					"an earlier attempt was interrupted after its intent; the change is in effect: "+obs.Detail+"; not applied again"
			}
			ev := w.Event(EventReconciled, "", text, execDetails(*x, map[string]any{"observation": obs}))
			err = e.Store.FinishExecution(ctx, x.ID, []string{store.ExecIntent}, to, reason, ev)
			if errors.Is(err, store.ErrConflict) {
				return reconciled{}, fmt.Errorf("reconcile execution %s: settled meanwhile: %w", x.ID, err) // read again on the retry
			}
			if err != nil {
				return reconciled{}, err
			}
			x.State = to
			if to == store.ExecApplied && verify {
				w.Then(KindVerify, x.ID, e.now())
			}
		}
	}
	return reconciled{execs: execs}, nil
}

// planAndAct plans from ladder rung `from` and acts on the plan. after is
// why the ladder moved on (escalation.ReasonFailed or ReasonIneffective:
// the previous rung's outcome), "" on the first rung.
func (e *Executor) planAndAct(ctx context.Context, w *pipeline.Work, from int, after string) error {
	inc := w.Incident
	plan, err := e.Planner.PlanFrom(ctx, policy.Alert{Status: inc.Status, Labels: inc.Labels, Annotations: inc.Annotations, StartsAt: inc.StartsAt}, from)
	if err != nil {
		return fmt.Errorf("plan: %w", err)
	}
	mode := e.mode(plan.Rules)
	if !planner.RecordPlan(w, plan, mode) {
		return nil
	}
	if err := e.prioritize(ctx, w, plan); err != nil {
		return err
	}
	return e.act(ctx, w, plan, mode, after)
}

// escalatesAtOnce reports whether act hands the plan to people without
// trying anything.
func escalatesAtOnce(plan *planner.Plan) bool {
	d := plan.Decision
	return plan.TargetError != "" || d.Escalated || d.Action == "escalate" || plan.ChangeError != "" || len(plan.Blocks) > 0
}

// prioritize records the plan's priority on the incident (with its
// deadline; a P0 is handed to people at once, unless act is about to
// escalate it anyway).
func (e *Executor) prioritize(ctx context.Context, w *pipeline.Work, plan *planner.Plan) error {
	if e.Escalation == nil || plan.Decision == nil {
		return nil
	}
	return e.Escalation.Prioritize(ctx, w, plan.Decision.Priority, !escalatesAtOnce(plan))
}

// mode is the effective mode: the policy's, else the global one; dry-run
// unless enforce was chosen.
func (e *Executor) mode(p *policy.Policy) string {
	m := e.Config.Mode
	if p != nil && p.Guards.Mode != "" {
		m = p.Guards.Mode
	}
	if m != "enforce" {
		return "dry-run"
	}
	return m
}

func (e *Executor) approvalRequired(p *policy.Policy, pr policy.Priority) (bool, string) {
	if p != nil && p.Guards.Approval == "required" {
		return true, "policy " + p.Name + " requires approval"
	}
	for _, want := range e.Config.ApprovalPriorities {
		if want == pr {
			return true, "priority " + string(pr) + " requires approval"
		}
	}
	return false, ""
}

// act decides what to do with a plan: escalate, propose, or execute.
func (e *Executor) act(ctx context.Context, w *pipeline.Work, plan *planner.Plan, mode, after string) error {
	d := plan.Decision
	switch {
	case plan.TargetError != "" || d.Escalated || d.Action == "escalate":
		why := escalation.ReasonNoRemedy
		if after != "" && plan.TargetError == "" {
			why = after // the ladder's end: the last rung failed or did not work
		}
		return e.escalate(ctx, w, d.Priority, why, planner.Summary(plan, mode), "")
	case plan.ChangeError != "":
		e.count(d.Action, "escalated", mode)
		return e.escalate(ctx, w, d.Priority, escalation.ReasonFailed, fmt.Sprintf("%s cannot be planned: %s", d.Action, plan.ChangeError), d.Action)
	case len(plan.Blocks) > 0:
		e.recordBlocks(w, d.Action, mode, plan.Blocks)
		return e.escalate(ctx, w, d.Priority, escalation.ReasonBlocked, "blocked by pre-flight: "+blockText(plan.Blocks), d.Action)
	}
	need, why := e.approvalRequired(plan.Rules, d.Priority)
	if mode == "dry-run" || need {
		if mode == "dry-run" {
			why = "dry-run"
		}
		return e.propose(ctx, w, plan, mode, why)
	}
	return e.execute(ctx, w, execRequest{
		policy: plan.Rules, remedy: d.Remedy, step: d.Step, priority: d.Priority,
		change: *plan.Change, mode: mode, automatic: true,
	})
}

// propose records the plan as a proposal (dry-run or awaiting approval),
// with the guards' verdict as of now, and schedules its expiry.
func (e *Executor) propose(ctx context.Context, w *pipeline.Work, plan *planner.Plan, mode, why string) error {
	d := plan.Decision
	ch := *plan.Change
	preview, err := e.preview(ctx, w.Incident, plan.Rules, ch)
	if err != nil {
		return err
	}
	now := e.now()
	body, _ := json.Marshal(ch)
	p := store.Proposal{
		ID: incident.NewID(), IncidentID: w.Incident.ID, Step: d.Step, Policy: plan.Policy, Remedy: d.Remedy,
		Action: ch.Action, Namespace: ch.Target.Namespace, Kind: ch.Target.Kind, Name: ch.Target.Name,
		Plan: body, State: store.ProposalPending, CreatedAt: now, ExpiresAt: now.Add(plan.Rules.ApprovalExpiry()),
	}
	verdict := "the guards would allow it now"
	if !preview.Allowed {
		verdict = "the guards would block it now: " + guardBlockText(preview.Blocks)
	}
	reason := fmt.Sprintf("%s: would %s; %s; approve with POST /api/v1/incidents/%s/approve before %s",
		why, ch.Summary, verdict, w.Incident.ID, p.ExpiresAt.Format(time.RFC3339))
	ev := w.Event(EventProposed, "", reason, map[string]any{
		"proposal": p.ID, "mode": mode, "change": ch, "remedy": d.Remedy, "step": d.Step,
		"priority": d.Priority, "expiresAt": p.ExpiresAt, "guards": preview,
	})
	events := append(w.Take(), ev)
	next := []store.NewJob{{IncidentID: w.Incident.ID, Kind: KindExpire, Ref: p.ID,
		NotificationID: w.Job.NotificationID, CorrelationID: w.Job.CorrelationID, CreatedAt: now, NotBefore: p.ExpiresAt}}
	if err := e.Store.Propose(ctx, p, next, events...); err != nil {
		w.Restore(events[:len(events)-1])
		if errors.Is(err, store.ErrExists) {
			w.Record(EventDuplicate, fmt.Sprintf("step %d of this incident was already proposed; not proposed twice", d.Step), nil)
			return nil
		}
		return fmt.Errorf("propose: %w", err)
	}
	e.count(ch.Action, "proposed", mode)
	return nil
}

// execRequest is one change to execute, automatically or after approval.
type execRequest struct {
	policy    *policy.Policy
	remedy    string
	step      int
	priority  policy.Priority
	change    action.Change
	mode      string
	automatic bool   // false: a person approved it
	actor     string // who approved ("" for the service)
	proposal  string
}

// blockedError carries the guards' refusal out of BeginExecution.
type blockedError struct{ d guard.Decision }

func (b *blockedError) Error() string { return "blocked: " + guardBlockText(b.d.Blocks) }

// execute runs guards + intent (atomically), Apply, and records the outcome.
func (e *Executor) execute(ctx context.Context, w *pipeline.Work, r execRequest) error {
	ch := r.change
	act, ok := e.Actions[ch.Action]
	if !ok {
		return e.escalate(ctx, w, r.priority, escalation.ReasonFailed, "action "+ch.Action+" is not configured on this service", ch.Action)
	}
	tgt, err := e.Targets.Read(ctx, ch.Target)
	if err != nil {
		// Fail closed: without the target's labels the protected guard
		// cannot be evaluated.
		e.recordBlocks(w, ch.Action, r.mode, []action.Block{{Guard: "protected", Reason: "cannot read the target to check it is not protected: " + err.Error()}})
		return e.escalate(ctx, w, r.priority, escalation.ReasonBlocked, "target unreadable; nothing done", ch.Action)
	}
	body, _ := json.Marshal(ch)
	now := e.now()
	x := store.Execution{
		ID: incident.NewID(), IncidentID: w.Incident.ID, Step: r.step, Policy: r.policy.Name, Remedy: r.remedy,
		Action: ch.Action, Namespace: ch.Target.Namespace, Kind: ch.Target.Kind, Name: ch.Target.Name,
		Mode: r.mode, Change: body, Owner: e.Config.Owner, CreatedAt: now, UpdatedAt: now,
	}
	settings := e.settings(r.policy)
	q := store.GuardQuery{IncidentID: w.Incident.ID, Namespace: ch.Target.Namespace, Kind: ch.Target.Kind, Name: ch.Target.Name,
		Since: settings.Lookback(now), Now: now}
	var decision guard.Decision
	decide := func(gs store.GuardState) error {
		decision = e.evaluate(now, settings, w.Incident.ID, tgt, ch, gs)
		if !decision.Allowed {
			return &blockedError{decision}
		}
		return nil
	}
	actor := r.actor
	intent := w.Event(EventIntent, actor, "about to "+ch.Summary, map[string]any{
		"execution": x.ID, "change": ch, "remedy": r.remedy, "step": r.step, "mode": r.mode, "proposal": r.proposal,
	})
	taken := w.Take()
	err = e.Store.BeginExecution(ctx, x, q, decide, append(taken, intent)...)
	var be *blockedError
	switch {
	case errors.As(err, &be):
		w.Restore(taken)
		blocks := make([]action.Block, 0, len(be.d.Blocks))
		for _, b := range be.d.Blocks {
			blocks = append(blocks, action.Block{Guard: b.Guard, Reason: b.Reason})
		}
		e.recordBlocks(w, ch.Action, r.mode, blocks)
		return e.escalate(ctx, w, r.priority, escalation.ReasonBlocked, "blocked by guards: "+guardBlockText(be.d.Blocks), ch.Action)
	case errors.Is(err, store.ErrExists):
		w.Restore(taken)
		w.Record(EventDuplicate, fmt.Sprintf("step %d of this incident already has an execution; not executed twice", r.step), nil)
		return nil
	case err != nil:
		w.Restore(taken)
		return fmt.Errorf("begin execution: %w", err)
	}

	if e.Config.AfterIntent != nil {
		e.Config.AfterIntent(x.ID)
	}
	timeout := e.Config.ApplyTimeout
	if timeout <= 0 {
		timeout = 15 * time.Second
	}
	actx, cancel := context.WithTimeout(ctx, timeout)
	start := time.Now()
	applied, aerr := act.Apply(actx, ch)
	cancel()
	took := time.Since(start)
	if e.Config.AfterApply != nil {
		e.Config.AfterApply(x.ID)
	}
	if aerr != nil {
		// Did it land anyway (a timeout after the write)? Ask the cluster.
		octx, ocancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		obs, oerr := act.Observe(octx, ch)
		ocancel()
		if oerr != nil || !obs.Applied {
			reason := fmt.Sprintf("%s failed: %v", ch.Action, aerr)
			if oerr != nil {
				reason += fmt.Sprintf("; and the cluster could not be read to confirm (%v): treated as not applied", oerr)
			}
			// The escalation is written with the outcome: a job that dies
			// after this write is not run to this point again.
			ev := w.Event(EventFailed, actor, reason, execDetails(x, map[string]any{"tookMs": took.Milliseconds()}))
			if e.Escalation != nil {
				// The outcome, its escalation and the notifications, in one
				// transaction.
				err := e.Escalation.Escalate(context.WithoutCancel(ctx), w, escalation.Notice{
					Key: "failed/" + x.ID, Priority: r.priority, Reason: escalation.ReasonFailed, Text: reason, Action: ch.Action,
					Finish: &store.ExecutionChange{ID: x.ID, From: []string{store.ExecIntent}, To: store.ExecFailed, Reason: reason},
					Before: []incident.Event{ev},
				})
				if err != nil {
					return fmt.Errorf("record failure: %w", err)
				}
			} else {
				esc := e.escalation(w, r.priority, reason, ch.Action)
				if err := e.Store.FinishExecution(context.WithoutCancel(ctx), x.ID, []string{store.ExecIntent}, store.ExecFailed, reason, ev, esc); err != nil {
					return fmt.Errorf("record failure: %w", err)
				}
			}
			e.count(ch.Action, "failed", r.mode)
			return nil
		}
		applied = action.Applied{Detail: "applied (confirmed by reading the cluster after: " + aerr.Error() + ")"}
	}
	if e.Metrics != nil {
		e.Metrics.ActionDuration.WithLabelValues(ch.Action).Observe(took.Seconds())
	}
	details := execDetails(x, map[string]any{"applied": applied, "tookMs": took.Milliseconds()})
	// Time to remediate is the first automatic action's: later rungs of the
	// ladder include the deliberate waits for verification.
	if r.automatic && w.Job.Kind == incident.JobFiring {
		ttr := e.now().Sub(w.Incident.FirstSeen)
		details["timeToRemediateMs"] = ttr.Milliseconds()
		if e.Metrics != nil && ttr >= 0 {
			e.Metrics.TimeToRemedy.Observe(ttr.Seconds())
		}
	}
	ev := w.Event(EventApplied, actor, applied.Detail, details)
	if err := e.Store.FinishExecution(context.WithoutCancel(ctx), x.ID, []string{store.ExecIntent}, store.ExecApplied, applied.Detail, ev); err != nil {
		return fmt.Errorf("record outcome: %w", err)
	}
	e.count(ch.Action, "applied", r.mode)
	w.Then(KindVerify, x.ID, e.now())
	return nil
}

// execution reconciles the incident's ledger and finds the job's
// execution (Ref) on it.
func (e *Executor) execution(ctx context.Context, w *pipeline.Work) (reconciled, store.Execution, bool, error) {
	rec, err := e.reconcile(ctx, w)
	if err != nil {
		return rec, store.Execution{}, false, err
	}
	x, ok := rec.find(w.Job.Ref)
	return rec, x, ok, nil
}

// resume moves the ladder on after x when an earlier run of this job
// settled x as failed or ineffective and died before moving on (the next
// rung's plan, intent, proposal or escalation never recorded). When a later
// rung has an execution, that run got as far as acting, and it is not
// planned again.
func (e *Executor) resume(ctx context.Context, w *pipeline.Work, rec reconciled, x store.Execution) error {
	for _, y := range rec.execs {
		if y.Step > x.Step && y.State != store.ExecAbandoned {
			return nil
		}
	}
	return e.next(ctx, w, x)
}

func (e *Executor) policyOf(name string) *policy.Policy {
	if e.Policies != nil {
		if set := e.Policies(); set != nil {
			if p := set.Get(name); p != nil {
				return p
			}
		}
	}
	return &policy.Policy{Name: name}
}

// verify waits for an applied change's rollout, one short poll per job.
func (e *Executor) verify(ctx context.Context, w *pipeline.Work) error {
	rec, x, ok, err := e.execution(ctx, w)
	switch {
	case err != nil || !ok:
		return err
	case x.State == store.ExecFailed:
		// Only this job fails an applied execution (its rollout deadline
		// passed): an earlier run died before the next rung.
		return e.resume(ctx, w, rec, x)
	case x.State != store.ExecApplied:
		return nil
	}
	change, act, err := e.decodeChange(x)
	if err != nil {
		return err
	}
	pol := e.policyOf(x.Policy)
	appliedAt := x.UpdatedAt
	if x.AppliedAt != nil {
		appliedAt = *x.AppliedAt
	}
	deadline := appliedAt.Add(pol.RolloutDeadline())
	poll := e.Config.VerifyPoll
	if poll <= 0 {
		poll = 2 * time.Second
	}
	wait := min(10*time.Second, time.Until(deadline))
	if wait < 0 {
		wait = 0
	}
	vctx, cancel := context.WithTimeout(ctx, wait)
	v, verr := act.Verify(vctx, change)
	cancel()
	if verr == nil && v.OK {
		w.Record(EventRolledOut, v.Detail, map[string]any{"execution": x.ID, "verification": v})
		if w.Incident.Status == incident.StatusResolved {
			return e.finish(ctx, w, x, store.ExecVerified, EventVerified, "the alert resolved after the change")
		}
		w.Then(KindResolveCheck, x.ID, e.now().Add(pol.ResolveWithin()))
		return nil
	}
	if e.now().Before(deadline) {
		w.Then(KindVerify, x.ID, e.now().Add(poll))
		return nil
	}
	why := v.Detail
	if verr != nil {
		why = verr.Error()
	}
	reason := fmt.Sprintf("rollout did not complete within %s: %s", pol.RolloutDeadline(), why)
	if err := e.finish(ctx, w, x, store.ExecFailed, EventFailed, reason); err != nil {
		return err
	}
	x.State = store.ExecFailed
	return e.next(ctx, w, x)
}

// resolveCheck runs when the alert should have resolved after the change.
func (e *Executor) resolveCheck(ctx context.Context, w *pipeline.Work) error {
	rec, x, ok, err := e.execution(ctx, w)
	switch {
	case err != nil || !ok:
		return err
	case x.State == store.ExecIneffective:
		// Only this job finds an execution ineffective: an earlier run
		// died before the next rung.
		return e.resume(ctx, w, rec, x)
	case x.State != store.ExecApplied:
		return nil
	}
	if w.Incident.Status == incident.StatusResolved {
		return e.finish(ctx, w, x, store.ExecVerified, EventVerified, "the alert resolved after the change")
	}
	pol := e.policyOf(x.Policy)
	reason := fmt.Sprintf("the alert still fires %s after the change rolled out", pol.ResolveWithin())
	if err := e.finish(ctx, w, x, store.ExecIneffective, EventIneffective, reason); err != nil {
		return err
	}
	x.State = store.ExecIneffective
	return e.next(ctx, w, x)
}

// execDetails is the details of an event that settles execution x: what
// was done, in which mode, to which target (the audit record's columns;
// docs/audit.md), plus extra.
func execDetails(x store.Execution, extra map[string]any) map[string]any {
	d := map[string]any{
		"execution": x.ID, "action": x.Action, "remedy": x.Remedy, "mode": x.Mode,
		"target": map[string]string{"kind": x.Kind, "namespace": x.Namespace, "name": x.Name},
	}
	for k, v := range extra {
		d[k] = v
	}
	return d
}

// finish moves an applied execution to its final state.
func (e *Executor) finish(ctx context.Context, w *pipeline.Work, x store.Execution, to, event, reason string) error {
	ev := w.Event(event, "", reason, execDetails(x, nil))
	err := e.Store.FinishExecution(ctx, x.ID, []string{store.ExecApplied}, to, reason, ev)
	if errors.Is(err, store.ErrConflict) {
		return nil // another job settled it first
	}
	if err != nil {
		return err
	}
	outcome := map[string]string{store.ExecVerified: "verified", store.ExecFailed: "failed", store.ExecIneffective: "ineffective"}[to]
	e.count(x.Action, outcome, x.Mode)
	return nil
}

// next tries the next rung of the ladder after a change that did not work.
func (e *Executor) next(ctx context.Context, w *pipeline.Work, x store.Execution) error {
	if w.Incident.Status == incident.StatusResolved {
		return nil
	}
	after := escalation.ReasonFailed
	if x.State == store.ExecIneffective {
		after = escalation.ReasonIneffective
	}
	return e.planAndAct(ctx, w, x.Step+1, after)
}

// resolved handles the end of an episode: applied changes count as verified,
// pending proposals lapse.
func (e *Executor) resolved(ctx context.Context, w *pipeline.Work) error {
	if _, err := e.reconcile(ctx, w); err != nil {
		return err
	}
	execs, err := e.Store.Executions(ctx, store.ExecutionFilter{IncidentID: w.Incident.ID, States: []string{store.ExecApplied}})
	if err != nil {
		return err
	}
	for _, x := range execs {
		if err := e.finish(ctx, w, x, store.ExecVerified, EventVerified, "the alert resolved after the change"); err != nil {
			return err
		}
	}
	props, err := e.Store.Proposals(ctx, w.Incident.ID)
	if err != nil {
		return err
	}
	for _, p := range props {
		if p.State != store.ProposalPending {
			continue
		}
		ev := w.Event(EventExpired, "", "the alert resolved; the proposal lapsed and will not be executed", map[string]any{"proposal": p.ID})
		if _, err := e.Store.DecideProposal(ctx, p.ID, store.ProposalExpired, incident.ActorService, "alert resolved", e.now(), nil, ev); err != nil && !errors.Is(err, store.ErrConflict) {
			return err
		}
	}
	return nil
}

// approved executes a proposal a person approved; guards run again now.
func (e *Executor) approved(ctx context.Context, w *pipeline.Work) error {
	p, err := e.Store.Proposal(ctx, w.Job.Ref)
	if err != nil {
		return err
	}
	if p.State != store.ProposalApproved {
		return nil
	}
	rec, err := e.reconcile(ctx, w)
	if err != nil {
		return err
	}
	if _, done := rec.step(p.Step); done {
		// An earlier run of this job executed the approved change and
		// died before completing; reconcile settled it.
		return nil
	}
	var ch action.Change
	if err := json.Unmarshal(p.Plan, &ch); err != nil {
		return fmt.Errorf("proposal %s: bad plan: %w", p.ID, err)
	}
	pol := e.policyOf(p.Policy)
	pr, err := e.proposedPriority(ctx, p)
	if err != nil {
		return err
	}
	act, ok := e.Actions[ch.Action]
	if !ok {
		return e.escalate(ctx, w, pr, escalation.ReasonFailed, "action "+ch.Action+" is not configured on this service", ch.Action)
	}
	// The world may have moved since the proposal: run the pre-flight again.
	if blocks := act.Check(ctx, ch.Target, ch); len(blocks) > 0 {
		e.recordBlocks(w, ch.Action, "enforce", blocks)
		return e.escalate(ctx, w, pr, escalation.ReasonBlocked, "approved plan blocked by pre-flight: "+blockText(blocks), ch.Action)
	}
	return e.execute(ctx, w, execRequest{policy: pol, remedy: p.Remedy, step: p.Step, priority: pr, change: ch,
		mode: "enforce", actor: p.DecidedBy, proposal: p.ID})
}

// proposedPriority is the incident's priority as the plan of proposal p
// said (on its proposed event; a proposal does not store it), so that an
// approved change that is blocked escalates at the incident's priority.
func (e *Executor) proposedPriority(ctx context.Context, p store.Proposal) (policy.Priority, error) {
	_, evs, err := e.Store.Incident(ctx, p.IncidentID)
	if err != nil {
		return "", fmt.Errorf("read incident %s: %w", p.IncidentID, err)
	}
	for _, ev := range evs {
		if ev.Type != EventProposed {
			continue
		}
		var d struct {
			Proposal string          `json:"proposal"`
			Priority policy.Priority `json:"priority"`
		}
		if json.Unmarshal(ev.Details, &d) == nil && d.Proposal == p.ID {
			return d.Priority, nil
		}
	}
	return "", nil // escalate defaults to P1
}

// expire lapses a proposal nobody decided in time.
func (e *Executor) expire(ctx context.Context, w *pipeline.Work) error {
	ev := w.Event(EventExpired, "", "no decision before the proposal expired; nothing will be done", map[string]any{"proposal": w.Job.Ref})
	_, err := e.Store.DecideProposal(ctx, w.Job.Ref, store.ProposalExpired, incident.ActorService, "expired", e.now(), nil, ev)
	if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}

// Decide is the approve/reject path shared by the API (and Slack later):
// it records who decided and, for an approval, schedules the execution, in
// one transaction. The guards run again when the execution job runs.
func (e *Executor) Decide(ctx context.Context, incidentID string, approve bool, by, reason string) (store.Proposal, error) {
	props, err := e.Store.Proposals(ctx, incidentID)
	if err != nil {
		return store.Proposal{}, err
	}
	var pending *store.Proposal
	for i := range props {
		if props[i].State == store.ProposalPending {
			pending = &props[i]
		}
	}
	if pending == nil {
		if len(props) == 0 {
			return store.Proposal{}, fmt.Errorf("%w: incident %s has no proposal", store.ErrNotFound, incidentID)
		}
		last := props[len(props)-1]
		return last, fmt.Errorf("%w: the proposal of incident %s is %s", store.ErrConflict, incidentID, last.State)
	}
	now := e.now()
	to, typ, verb := store.ProposalRejected, EventRejected, "rejected"
	var next []store.NewJob
	if approve {
		to, typ, verb = store.ProposalApproved, EventApproved, "approved"
		next = []store.NewJob{{IncidentID: incidentID, Kind: KindApproved, Ref: pending.ID, CreatedAt: now, NotBefore: now}}
	}
	text := fmt.Sprintf("%s by %s", verb, by)
	if reason != "" {
		text += ": " + reason
	}
	ev := incident.Event{IncidentID: incidentID, Time: now, Type: typ, Actor: by, Reason: text}
	ev.Details, _ = json.Marshal(map[string]any{"proposal": pending.ID, "remedy": pending.Remedy, "action": pending.Action})
	return e.Store.DecideProposal(ctx, pending.ID, to, by, reason, now, next, ev)
}

// escalate hands the incident to people, for why (one of
// escalation.Reasons). With Escalation it is recorded at once, with its
// notifications, once per job (an earlier run of this job that escalated
// is not repeated); without, it is a timeline record written with the
// job's completion.
func (e *Executor) escalate(ctx context.Context, w *pipeline.Work, pr policy.Priority, why, reason, act string) error {
	if e.Escalation != nil {
		return e.Escalation.Escalate(ctx, w, escalation.Notice{
			Key: fmt.Sprintf("job/%d", w.Job.ID), Priority: pr, Reason: why, Text: reason, Action: act,
		})
	}
	ev := e.escalation(w, pr, reason, act)
	w.RecordAs(ev.Actor, ev.Type, ev.Reason, ev.Details)
	return nil
}

// escalation is the escalated event, for a caller that writes it itself.
func (e *Executor) escalation(w *pipeline.Work, pr policy.Priority, reason, act string) incident.Event {
	if pr == "" {
		pr = policy.P1
	}
	return w.Event(EventEscalated, "", fmt.Sprintf("escalated (%s): %s", pr, reason), map[string]any{
		"priority": pr, "action": act, "deadline": pr.Deadline().String(),
	})
}

func (e *Executor) recordBlocks(w *pipeline.Work, act, mode string, blocks []action.Block) {
	for _, b := range blocks {
		w.Record(EventBlocked, "blocked by "+b.Guard+": "+b.Reason, map[string]any{"guard": b.Guard, "action": act, "mode": mode})
		if e.Metrics != nil {
			e.Metrics.GuardBlocks.WithLabelValues(b.Guard).Inc()
		}
	}
	e.count(act, "blocked", mode)
}

func (e *Executor) count(act, outcome, mode string) {
	if e.Metrics != nil && act != "" {
		e.Metrics.Actions.WithLabelValues(act, outcome, mode).Inc()
	}
}

func (e *Executor) decodeChange(x store.Execution) (action.Change, action.Action, error) {
	var ch action.Change
	if err := json.Unmarshal(x.Change, &ch); err != nil {
		return ch, nil, fmt.Errorf("execution %s: bad change: %w", x.ID, err)
	}
	act, ok := e.Actions[ch.Action]
	if !ok {
		return ch, nil, fmt.Errorf("execution %s: action %s is not configured", x.ID, ch.Action)
	}
	return ch, act, nil
}

func blockText(bs []action.Block) string {
	s := make([]string, len(bs))
	for i, b := range bs {
		s[i] = b.Guard + ": " + b.Reason
	}
	return strings.Join(s, "; ")
}

func guardBlockText(bs []guard.Block) string {
	s := make([]string, len(bs))
	for i, b := range bs {
		s[i] = b.Guard + ": " + b.Reason
	}
	return strings.Join(s, "; ")
}
