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
	Remedy    string         `json:"remedy,omitempty"`
	Action    string         `json:"action"`
	Params    map[string]any `json:"params,omitempty"`
	Escalated bool           `json:"escalated"`
	// Priority is the first true priority rule's, else the default.
	Priority      Priority          `json:"priority"`
	PriorityRules []ConditionResult `json:"priorityRules,omitempty"`
	// EvidenceErrors name evidence that was given with the wrong type and
	// therefore ignored.
	EvidenceErrors []string `json:"evidenceErrors,omitempty"`
}

// Evaluate runs the policy's remedy and priority conditions over the alert
// and the evidence (keyed by diagnosis step id; a missing step — a probe
// that failed — makes the conditions that read it false, with the error
// recorded). It never panics on a condition; its error is only for a policy
// that was not produced by Load.
func Evaluate(p *Policy, alert Alert, evidence map[string]any, now time.Time) (Decision, error) {
	if p == nil || p.env == nil {
		return Decision{}, fmt.Errorf("policy: Evaluate needs a policy from Load")
	}
	d := Decision{Policy: p.Name, Conditions: make([]ConditionResult, 0, len(p.Remedies))}
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
		d.Conditions = append(d.Conditions, res)
		if res.Value && d.Remedy == "" {
			d.Remedy, d.Action, d.Params = r.Name, r.Action, r.Values
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

// Fielder is evidence offering a CEL view of itself as a map keyed by the
// catalog's field names (as internal/probe's evidence does).
type Fielder interface{ Fields() map[string]any }

// evidenceValue accepts the catalog's Go type (value or pointer), a
// Fielder, or a map[string]any, and checks that a map has every declared
// field with a value of the declared kind.
func evidenceValue(v any, want reflect.Type) (any, error) {
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Pointer && !rv.IsNil() && rv.Elem().Type() == want {
		return rv.Elem().Interface(), nil
	}
	if rv.Type() == want {
		return v, nil
	}
	var m map[string]any
	switch x := v.(type) {
	case Fielder:
		m = x.Fields()
	case map[string]any:
		m = x
	default:
		return nil, fmt.Errorf("is a %T, want %s", v, want)
	}
	out := reflect.New(want).Elem()
	if err := fromMap(m, out); err != nil {
		return nil, err
	}
	return out.Interface(), nil
}

// fromMap fills the struct out from a map keyed by cel field names: CEL
// plans field access on the declared struct type, so a map is converted,
// not passed through. Every declared field must be present.
func fromMap(m map[string]any, out reflect.Value) error {
	t := out.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		name := f.Tag.Get("cel")
		v, ok := m[name]
		if !ok {
			return fmt.Errorf("field %q is missing", name)
		}
		if err := setValue(out.Field(i), v); err != nil {
			return fmt.Errorf("field %q: %v", name, err)
		}
	}
	return nil
}

func setValue(dst reflect.Value, v any) error {
	if v == nil {
		if k := dst.Kind(); k == reflect.Slice || k == reflect.Map {
			return nil
		}
		return fmt.Errorf("is null, want %s", dst.Type())
	}
	src := reflect.ValueOf(v)
	if src.Type() == dst.Type() {
		dst.Set(src)
		return nil
	}
	switch dst.Kind() {
	case reflect.Int64:
		if dst.Type() == reflect.TypeFor[time.Duration]() {
			break
		}
		switch src.Kind() {
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			dst.SetInt(src.Int())
			return nil
		}
	case reflect.Float64:
		switch src.Kind() {
		case reflect.Float32, reflect.Float64:
			dst.SetFloat(src.Float())
			return nil
		}
	case reflect.Slice:
		if src.Kind() != reflect.Slice {
			break
		}
		s := reflect.MakeSlice(dst.Type(), src.Len(), src.Len())
		for i := range src.Len() {
			e := src.Index(i).Interface()
			if dst.Type().Elem().Kind() == reflect.Struct {
				em, ok := e.(map[string]any)
				if !ok {
					return fmt.Errorf("[%d] is a %T, want an object", i, e)
				}
				if err := fromMap(em, s.Index(i)); err != nil {
					return fmt.Errorf("[%d]: %v", i, err)
				}
				continue
			}
			if err := setValue(s.Index(i), e); err != nil {
				return fmt.Errorf("[%d]: %v", i, err)
			}
		}
		dst.Set(s)
		return nil
	}
	return fmt.Errorf("is a %T, want %s", v, dst.Type())
}
