package action

import (
	"context"

	"github.com/remediator/remediator/internal/probe"
)

// EscalateChange records who the incident is handed to.
type EscalateChange struct {
	To string `json:"to"`
}

// Escalate changes nothing: it hands the incident to people.
type Escalate struct{}

func (*Escalate) Name() string { return "escalate" }

func (*Escalate) Needs() []probe.Permission { return nil }

// Plan never fails on the cluster's state: escalation must stay possible.
func (a *Escalate) Plan(_ context.Context, t probe.Target, p Params) (Change, error) {
	to, err := p.String("to", "")
	if err != nil {
		return Change{}, err
	}
	if to == "" {
		to = "by priority"
	}
	return Change{Action: a.Name(), Target: t, Summary: "no change: hand to people (" + to + ")",
		Escalate: &EscalateChange{To: to}}, nil
}

// Check has nothing to verify: escalation reads and changes nothing.
func (*Escalate) Check(context.Context, probe.Target, Change) []Block { return nil }

// Apply changes nothing.
func (*Escalate) Apply(context.Context, Change) (Applied, error) {
	return Applied{Detail: "no change", Attempts: 1}, nil
}

// Observe: there is nothing to be in effect, so it always is.
func (*Escalate) Observe(context.Context, Change) (Observation, error) {
	return Observation{Applied: true, Detail: "escalation changes nothing in the cluster"}, nil
}

// Verify: nothing to wait for.
func (*Escalate) Verify(context.Context, Change) (Verification, error) {
	return Verification{OK: true, Detail: "no change to verify"}, nil
}
