package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Execution states: the intent/outcome ledger. An execution is written as
// an intent before its change is applied (BeginExecution), so a crash
// between the two is found and settled rather than repeated.
const (
	ExecIntent      = "intent"      // about to apply; the outcome is not known yet
	ExecApplied     = "applied"     // the API server acknowledged the change
	ExecVerified    = "verified"    // the alert resolved after the change
	ExecFailed      = "failed"      // applying or verifying failed
	ExecIneffective = "ineffective" // applied, but the alert kept firing
	ExecAbandoned   = "abandoned"   // the intent was never applied; its step may be executed again
)

// InFlightStates are the states that hold the target's lock: at most one
// execution per target should be in one of them (GuardState.InFlight).
var InFlightStates = []string{ExecIntent, ExecApplied}

// ExecStates are all execution states.
var ExecStates = []string{ExecIntent, ExecApplied, ExecVerified, ExecFailed, ExecIneffective, ExecAbandoned}

// IsInFlight reports whether an execution in state holds its target's lock.
func IsInFlight(state string) bool { return state == ExecIntent || state == ExecApplied }

// CountsAsFailure reports whether an execution in state counts for the
// circuit breaker (failed or ineffective).
func CountsAsFailure(state string) bool { return state == ExecFailed || state == ExecIneffective }

// Proposal states (approval tier).
const (
	ProposalPending  = "pending"
	ProposalApproved = "approved"
	ProposalRejected = "rejected"
	ProposalExpired  = "expired"
)

var (
	// ErrExists is returned when an execution or proposal for the same
	// (IncidentID, Step) — or a row with the same ID — already exists.
	// Abandoned executions do not count: their rung may be taken again.
	ErrExists = errors.New("already exists")
	// ErrConflict is returned when a conditional update found the row in
	// another state than the one(s) it expected.
	ErrConflict = errors.New("state conflict")
	// ErrExpired is returned when a proposal is approved at or after its
	// ExpiresAt.
	ErrExpired = errors.New("proposal expired")
)

// Execution is one entry of the intent/outcome ledger: one rung (Step) of
// one incident's remediation ladder, applied (or about to be) to one target.
type Execution struct {
	ID         string
	IncidentID string
	Step       int // ladder index; (IncidentID, Step) is unique among executions not abandoned

	Policy, Remedy, Action string

	Namespace, Kind, Name string // the target

	Mode   string
	Change json.RawMessage // the planned change (JSON), stored byte for byte

	State  string
	Reason string
	Owner  string // the replica/worker that wrote the intent

	CreatedAt time.Time
	UpdatedAt time.Time
	AppliedAt *time.Time // set when the execution entered ExecApplied
}

// TargetKey names the execution's target: Kind/Namespace/Name.
func (e Execution) TargetKey() string { return TargetKey(e.Kind, e.Namespace, e.Name) }

// TargetKey names a target: kind/namespace/name.
func TargetKey(kind, namespace, name string) string { return kind + "/" + namespace + "/" + name }

// PauseState is the global pause switch. The zero value means not paused.
type PauseState struct {
	Paused bool
	By     string
	Reason string
	At     time.Time
}

// Window is an ad-hoc maintenance window: no automatic execution in its
// namespaces between Start and End.
type Window struct {
	ID         string    `json:"id"`
	Start      time.Time `json:"start"`
	End        time.Time `json:"end"`
	Namespaces []string  `json:"namespaces"` // empty: all namespaces
	Reason     string    `json:"reason"`
	By         string    `json:"by"`
	CreatedAt  time.Time `json:"createdAt"`
}

// GuardState is what the guards decide on, read in one transaction.
type GuardState struct {
	// IncidentStatus is the incident's status (firing/resolved) read in the
	// same transaction; "" when the query named no incident.
	IncidentStatus string
	Pause          PauseState
	// Windows are the ad-hoc windows with End > Now (current and future),
	// ordered by Start.
	Windows []Window
	// InFlight are the target's executions in state intent or applied (the
	// per-target lock), oldest first.
	InFlight []Execution
	// TargetRecent are the target's executions with CreatedAt >= Since, in
	// any state, newest first.
	TargetRecent []Execution
	// GlobalLastHour counts executions on any target with CreatedAt in
	// (Now-1h, ...], abandoned ones excepted.
	GlobalLastHour int
}

// GuardQuery selects the GuardState of one target for one incident.
type GuardQuery struct {
	IncidentID            string
	Namespace, Kind, Name string
	Since                 time.Time // TargetRecent starts here
	Now                   time.Time // zero: the store's clock
}

// ExecutionFilter selects executions. Zero values mean "any".
type ExecutionFilter struct {
	IncidentID            string
	States                []string
	Namespace, Kind, Name string
	Limit                 int // 0 means the default (100); capped at 1000
}

// Proposal is a change waiting for a person's approval.
type Proposal struct {
	ID         string `json:"id"`
	IncidentID string `json:"incidentId"`
	Step       int    `json:"step"` // (IncidentID, Step) is unique

	Policy string `json:"policy"`
	Remedy string `json:"remedy"`
	Action string `json:"action"`

	// The target.
	Namespace string `json:"namespace"`
	Kind      string `json:"kind"`
	Name      string `json:"name"`

	Plan  json.RawMessage `json:"plan,omitempty"` // the planned change (JSON), stored byte for byte
	State string          `json:"state"`

	CreatedAt time.Time `json:"createdAt"`
	ExpiresAt time.Time `json:"expiresAt"`

	DecidedBy string     `json:"decidedBy,omitempty"`
	Reason    string     `json:"reason,omitempty"`
	DecidedAt *time.Time `json:"decidedAt,omitempty"`
}

// Backend helpers: the checks and defaults both backends apply, so their
// behaviour is the same.

// Normalize returns q with Now defaulted to now and times in UTC.
func (q GuardQuery) Normalize(now time.Time) GuardQuery {
	if q.Now.IsZero() {
		q.Now = now
	}
	q.Now, q.Since = UTC(q.Now), UTC(q.Since)
	return q
}

// PrepareExecution checks e for BeginExecution and returns it as the store
// writes it: state intent, times in UTC, CreatedAt defaulted to now and
// UpdatedAt to CreatedAt, AppliedAt cleared.
func PrepareExecution(e Execution, now time.Time) (Execution, error) {
	if e.ID == "" || e.IncidentID == "" {
		return e, errors.New("execution needs an ID and an IncidentID")
	}
	if len(e.Change) > 0 && !json.Valid(e.Change) {
		return e, fmt.Errorf("execution %s: Change is not valid JSON", e.ID)
	}
	e.State = ExecIntent
	if e.CreatedAt.IsZero() {
		e.CreatedAt = now
	}
	e.CreatedAt = UTC(e.CreatedAt)
	if e.UpdatedAt.IsZero() {
		e.UpdatedAt = e.CreatedAt
	}
	e.UpdatedAt = UTC(e.UpdatedAt)
	e.AppliedAt = nil
	return e, nil
}

// CheckExecState returns an error unless state is an execution state.
func CheckExecState(state string) error {
	if !slices.Contains(ExecStates, state) {
		return fmt.Errorf("unknown execution state %q", state)
	}
	return nil
}

// PrepareProposal checks p for Propose and returns it as the store writes
// it: state pending, no decision, times in UTC, CreatedAt defaulted to now.
func PrepareProposal(p Proposal, now time.Time) (Proposal, error) {
	if p.ID == "" || p.IncidentID == "" {
		return p, errors.New("proposal needs an ID and an IncidentID")
	}
	if p.ExpiresAt.IsZero() {
		return p, fmt.Errorf("proposal %s has no ExpiresAt", p.ID)
	}
	if len(p.Plan) > 0 && !json.Valid(p.Plan) {
		return p, fmt.Errorf("proposal %s: Plan is not valid JSON", p.ID)
	}
	if p.CreatedAt.IsZero() {
		p.CreatedAt = now
	}
	p.CreatedAt, p.ExpiresAt = UTC(p.CreatedAt), UTC(p.ExpiresAt)
	p.State, p.DecidedBy, p.Reason, p.DecidedAt = ProposalPending, "", "", nil
	return p, nil
}

// CheckDecision returns an error unless to is a state a pending proposal
// may move to.
func CheckDecision(to string) error {
	switch to {
	case ProposalApproved, ProposalRejected, ProposalExpired:
		return nil
	}
	return fmt.Errorf("a proposal cannot be decided to %q", to)
}

// Decide applies a decision to the current proposal p as read inside the
// deciding transaction. It returns the updated proposal, or p unchanged
// with ErrConflict (p is not pending) or ErrExpired (approving at or after
// ExpiresAt). Rejecting or expiring is allowed at any time.
func Decide(p Proposal, to, by, reason string, at time.Time) (Proposal, error) {
	if p.State != ProposalPending {
		return p, fmt.Errorf("proposal %s is %s: %w", p.ID, p.State, ErrConflict)
	}
	if to == ProposalApproved && !at.Before(p.ExpiresAt) {
		return p, fmt.Errorf("proposal %s expired at %s: %w", p.ID, p.ExpiresAt.Format(time.RFC3339), ErrExpired)
	}
	p.State, p.DecidedBy, p.Reason = to, by, reason
	at = UTC(at)
	p.DecidedAt = &at
	return p, nil
}

// PrepareWindow checks w for AddWindow and returns it as the store writes it.
func PrepareWindow(w Window, now time.Time) (Window, error) {
	if w.ID == "" {
		return w, errors.New("window needs an ID")
	}
	w.Start, w.End = UTC(w.Start), UTC(w.End)
	if !w.End.After(w.Start) {
		return w, fmt.Errorf("window %s ends (%s) before it starts (%s)", w.ID, w.End, w.Start)
	}
	if w.CreatedAt.IsZero() {
		w.CreatedAt = now
	}
	w.CreatedAt = UTC(w.CreatedAt)
	if len(w.Namespaces) == 0 {
		w.Namespaces = nil
	}
	return w, nil
}

// PreparePause returns p as the store writes it: At defaulted to now.
func PreparePause(p PauseState, now time.Time) PauseState {
	if p.At.IsZero() {
		p.At = now
	}
	p.At = UTC(p.At)
	return p
}

// PrepareJobs returns jobs as the store writes them: CreatedAt defaulted to
// now, NotBefore to CreatedAt, times in UTC. It does not modify jobs.
func PrepareJobs(jobs []NewJob, now time.Time) ([]NewJob, error) {
	if len(jobs) == 0 {
		return nil, nil
	}
	out := make([]NewJob, len(jobs))
	for i, j := range jobs {
		if j.IncidentID == "" || j.Kind == "" {
			return nil, errors.New("a job needs an IncidentID and a Kind")
		}
		if j.CreatedAt.IsZero() {
			j.CreatedAt = now
		}
		if j.NotBefore.IsZero() {
			j.NotBefore = j.CreatedAt
		}
		j.CreatedAt, j.NotBefore = UTC(j.CreatedAt), UTC(j.NotBefore)
		out[i] = j
	}
	return out, nil
}
