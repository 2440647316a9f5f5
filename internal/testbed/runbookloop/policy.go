package runbookloop

import (
	"encoding/json"
	"fmt"
	"reflect"

	"github.com/remediator/remediator/internal/policy"
)

// PolicyDecision is what the loop's policies (the shipped ones, as
// remediator loaded them) decide for incident v, evaluated here from the
// policy files and the evidence on v's timeline: the policy its matched
// event names, the alert's labels, each probe's evidence from its
// diagnosed event (decoded into the probe's declared type), at the time of
// its planned event. A scenario compares it with what remediator recorded,
// so the expectation (remedy, priority) follows the policy files rather
// than being written into the test.
func (l *Loop) PolicyDecision(v View) (policy.Decision, error) {
	cat := policy.DefaultCatalog()
	set, err := policy.Load(l.Policies, cat)
	if err != nil {
		return policy.Decision{}, err
	}
	matched, ok := v.Timeline.First("matched")
	if !ok {
		return policy.Decision{}, fmt.Errorf("no matched event")
	}
	var m struct {
		Policy string `json:"policy"`
	}
	if err := json.Unmarshal(matched.Details, &m); err != nil {
		return policy.Decision{}, fmt.Errorf("matched: %w", err)
	}
	var p *policy.Policy
	for _, c := range set.Policies() {
		if c.Name == m.Policy {
			p = c
		}
	}
	if p == nil {
		return policy.Decision{}, fmt.Errorf("no policy %q in %s", m.Policy, l.Policies)
	}
	diag, ok := v.Timeline.First("diagnosed")
	if !ok {
		return policy.Decision{}, fmt.Errorf("no diagnosed event")
	}
	var d struct {
		Evidence []struct {
			ID       string          `json:"id"`
			Probe    string          `json:"probe"`
			Evidence json.RawMessage `json:"evidence"`
		} `json:"evidence"`
	}
	if err := json.Unmarshal(diag.Details, &d); err != nil {
		return policy.Decision{}, fmt.Errorf("diagnosed: %w", err)
	}
	evidence := map[string]any{}
	for _, e := range d.Evidence {
		spec, ok := cat.Probes[e.Probe]
		if !ok || len(e.Evidence) == 0 || string(e.Evidence) == "null" {
			continue // a failed probe: its conditions are false
		}
		ev := reflect.New(spec.Result)
		if err := json.Unmarshal(e.Evidence, ev.Interface()); err != nil {
			return policy.Decision{}, fmt.Errorf("evidence %s (%s): %w", e.ID, e.Probe, err)
		}
		evidence[e.ID] = ev.Interface()
	}
	planned, ok := v.Timeline.First("planned")
	if !ok {
		return policy.Decision{}, fmt.Errorf("no planned event")
	}
	inc := v.Incident
	alert := policy.Alert{Status: "firing", Labels: inc.Labels, Annotations: inc.Annotations, StartsAt: inc.StartsAt}
	return policy.Evaluate(p, alert, evidence, planned.Time)
}
