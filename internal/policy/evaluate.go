package policy

import (
	"fmt"
	"reflect"
	"time"

	"github.com/google/cel-go/cel"
)

// ConditionResult is the outcome of one condition: its value, or the
// run-time error that made it false.
type ConditionResult struct {
	Name  string `json:"name"` // remedy name, or "priority.rules[i]"
	When  string `json:"when"`
	Value bool   `json:"value"`
	Error string `json:"error,omitempty"`
	// Skipped marks a remedy already tried for this incident: it is not
	// chosen again whatever its condition says.
	Skipped bool `json:"skipped,omitempty"`
}

// Decision is what a policy decides for one alert and its evidence.
type Decision struct {
	Policy string `json:"policy"`
	// Conditions has one entry per remedy, in ladder order; every
	// condition is evaluated, so the plan can say why each was or was not
	// chosen.
	Conditions []ConditionResult `json:"conditions"`
	// Remedy is the chosen remedy: the first on the ladder whose condition
	// is true. When none is, Escalated is true and Action is "escalate".
	Remedy string `json:"remedy,omitempty"`
	// Step is the chosen remedy's index on the ladder (-1 when none).
	Step      int            `json:"step"`
	Action    string         `json:"action"`
	Params    map[string]any `json:"params,omitempty"`
	Escalated bool           `json:"escalated"`
	// Priority is the first true priority rule's, else the default.
	Priority      Priority          `json:"priority"`
	PriorityRules []ConditionResult `json:"priorityRules,omitempty"`
	// EvidenceErrors name evidence that was not of its probe's declared
	// type (value or pointer) and was therefore ignored, as if missing.
	EvidenceErrors []string `json:"evidenceErrors,omitempty"`
}

// Evaluate runs the policy's remedy and priority conditions over the alert
// and the evidence (keyed by diagnosis step id; a missing step — a probe
// that failed — makes the conditions that read it false, with the error
// recorded). It never panics on a condition; its error is only for a policy
// that was not produced by Load.
func Evaluate(p *Policy, alert Alert, evidence map[string]any, now time.Time) (Decision, error) {
	return EvaluateFrom(p, alert, evidence, now, 0)
}

// EvaluateFrom is Evaluate for a later rung of the ladder: only remedies at
// index from or after may be chosen (the earlier ones were tried and did not
// work). Every condition is still evaluated and recorded.
func EvaluateFrom(p *Policy, alert Alert, evidence map[string]any, now time.Time, from int) (Decision, error) {
	if p == nil || p.env == nil {
		return Decision{}, fmt.Errorf("policy: Evaluate needs a policy from Load")
	}
	d := Decision{Policy: p.Name, Step: -1, Conditions: make([]ConditionResult, 0, len(p.Remedies))}
	lbls := alert.Labels
	if lbls == nil {
		lbls = map[string]string{}
	}
	vars := map[string]any{"alert": alert, "labels": lbls, "now": now}
	cat := p.evidenceTypes()
	for _, s := range p.Diagnosis {
		v, ok := evidence[s.ID]
		if !ok || v == nil {
			continue
		}
		ev, err := evidenceValue(v, cat[s.ID])
		if err != nil {
			d.EvidenceErrors = append(d.EvidenceErrors, fmt.Sprintf("evidence %q: %v; ignored", s.ID, err))
			continue
		}
		vars[s.ID] = ev
	}
	act, err := cel.NewActivation(vars)
	if err != nil {
		return Decision{}, err
	}
	for i := range p.Remedies {
		r := &p.Remedies[i]
		res := evalCond(r.Name, &r.When, act)
		res.Skipped = i < from
		d.Conditions = append(d.Conditions, res)
		if res.Value && d.Remedy == "" && i >= from {
			d.Remedy, d.Action, d.Params, d.Step = r.Name, r.Action, r.Values, i
		}
	}
	if d.Remedy == "" {
		d.Action, d.Escalated = "escalate", true
	}
	d.Priority = p.Priority.Default
	ruled := false
	for i := range p.Priority.Rules {
		pr := &p.Priority.Rules[i]
		res := evalCond(fmt.Sprintf("priority.rules[%d]", i), &pr.When, act)
		d.PriorityRules = append(d.PriorityRules, res)
		if res.Value && !ruled {
			d.Priority, ruled = pr.Priority, true
		}
	}
	return d, nil
}

func evalCond(name string, e *Expr, act any) ConditionResult {
	res := ConditionResult{Name: name, When: e.Text}
	if e.Text == "" {
		res.Value = true
		return res
	}
	if e.prg == nil {
		res.Error = "condition was not compiled"
		return res
	}
	out, _, err := e.prg.Eval(act)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	b, ok := out.Value().(bool)
	if !ok {
		res.Error = fmt.Sprintf("condition gave %v, not a bool", out.Value())
		return res
	}
	res.Value = b
	return res
}

// evidenceTypes maps each diagnosis id to its evidence Go type.
func (p *Policy) evidenceTypes() map[string]reflect.Type {
	m := make(map[string]reflect.Type, len(p.Diagnosis))
	for _, s := range p.Diagnosis {
		if s.result != nil {
			m[s.ID] = s.result
		}
	}
	return m
}

// evidenceValue accepts a value of exactly the catalog's Go type, or a
// non-nil pointer to one; CEL plans field access on that declared type.
func evidenceValue(v any, want reflect.Type) (any, error) {
	rv := reflect.ValueOf(v)
	if rv.Type() == want {
		return v, nil
	}
	if rv.Kind() == reflect.Pointer && rv.Type().Elem() == want {
		if rv.IsNil() {
			return nil, fmt.Errorf("is a nil %T, want %s", v, want)
		}
		return rv.Elem().Interface(), nil
	}
	return nil, fmt.Errorf("is a %T, want %s", v, want)
}
