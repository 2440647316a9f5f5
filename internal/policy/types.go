// Package policy is the policy engine: it loads the policy files in
// policies/ strictly (every error with file:line:column), matches alerts to
// policies, resolves the target workload from labels and evaluates the
// remedy ladder and the priority rules, written in CEL, over the alert and
// the diagnosis evidence. It does no I/O besides reading policy files: the
// probes that gather evidence and the actions that apply remedies live
// elsewhere and follow the contract declared in catalog.go.
package policy

import (
	"fmt"
	"reflect"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/invopop/jsonschema"
	"github.com/prometheus/alertmanager/pkg/labels"
	"go.yaml.in/yaml/v3"
)

// APIVersion and Kind are the only values accepted in a policy file header.
const (
	APIVersion = "remediator/v1"
	Kind       = "Policy"
)

// Pos is a position in a policy file, 1-based like yaml.v3's.
type Pos struct {
	Line   int `json:"line"`
	Column int `json:"column"`
}

func posOf(n *yaml.Node) Pos { return Pos{Line: n.Line, Column: n.Column} }

// Policy is one policy file. The exported fields mirror the file; the
// unexported ones are filled by Load (compiled matchers and CEL programs).
type Policy struct {
	APIVersion  string       `yaml:"apiVersion" jsonschema:"required,enum=remediator/v1"`
	Kind        string       `yaml:"kind" jsonschema:"required,enum=Policy"`
	Name        string       `yaml:"name" jsonschema:"required,pattern=^[a-z0-9]([-a-z0-9]*[a-z0-9])?$" jsonschema_description:"Unique name of the policy (lower-case letters, digits and dashes)."`
	Description string       `yaml:"description" jsonschema_description:"What the policy does and why; shown in plans."`
	Match       []Matcher    `yaml:"match" jsonschema:"required,minItems=1" jsonschema_description:"Alertmanager-style label matchers; all must match."`
	Target      TargetSpec   `yaml:"target" jsonschema:"required"`
	Diagnosis   []Step       `yaml:"diagnosis" jsonschema_description:"Probe steps; their evidence is visible to CEL under each step's id."`
	Remedies    []Remedy     `yaml:"remedies" jsonschema:"required,minItems=1" jsonschema_description:"The ladder: the first remedy whose condition is true is chosen; if none is, escalate."`
	Priority    PrioritySpec `yaml:"priority"`
	Guards      Guards       `yaml:"guards"`
	Verify      VerifySpec   `yaml:"verify"`

	// File is the file the policy was loaded from; Pos the position of its
	// document; Keys the positions of its fields' values.
	File string         `yaml:"-" json:"-"`
	Pos  Pos            `yaml:"-" json:"-"`
	Keys map[string]Pos `yaml:"-" json:"-"`

	env *cel.Env
}

// Matcher is one Alertmanager-style label matcher such as
// `severity=~"critical|warning"`.
type Matcher struct {
	*labels.Matcher
	Pos Pos
}

func (m *Matcher) decodeYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
		return fmt.Errorf("a matcher must be a string such as 'alertname=\"HighErrorRate\"', got %s", describe(n))
	}
	lm, err := labels.ParseMatcher(n.Value)
	if err != nil {
		return fmt.Errorf("bad matcher %q: %v", n.Value, err)
	}
	m.Matcher, m.Pos = lm, posOf(n)
	return nil
}

// JSONSchema describes a matcher for editors.
func (Matcher) JSONSchema() *jsonschema.Schema {
	return &jsonschema.Schema{
		Type:        "string",
		Pattern:     `^\s*[a-zA-Z_][a-zA-Z0-9_]*\s*(=|!=|=~|!~)`,
		Description: `label matcher: name="value", name!="value", name=~"regexp" or name!~"regexp"`,
	}
}

// TargetSpec says how to find the target workload from the alert's labels.
type TargetSpec struct {
	Kind           string         `yaml:"kind" jsonschema:"required,enum=Deployment"`
	NamespaceLabel string         `yaml:"namespaceLabel" jsonschema_description:"Label holding the namespace (default: namespace)."`
	NameLabel      string         `yaml:"nameLabel" jsonschema_description:"Label holding the Deployment name. Exactly one of nameLabel and podLabel."`
	PodLabel       string         `yaml:"podLabel" jsonschema_description:"Label holding a pod name; its owner Deployment is resolved by a probe. Exactly one of nameLabel and podLabel."`
	Pos            Pos            `yaml:"-" json:"-"`
	Keys           map[string]Pos `yaml:"-" json:"-"`
}

// Step is one diagnosis step: a probe, run with its parameters and timeout.
type Step struct {
	Probe   string         `yaml:"probe" jsonschema:"required,enum=rolloutHistory,enum=podStatus,enum=resources,enum=errorDistribution,enum=slowEndpoints,enum=prometheus,enum=dependencies"`
	ID      string         `yaml:"id" jsonschema:"pattern=^[a-zA-Z_][a-zA-Z0-9_]*$" jsonschema_description:"Name of the evidence in CEL (default: the probe name); unique within the policy."`
	Timeout Duration       `yaml:"timeout" jsonschema_description:"Time limit of the probe (default 10s)."`
	Params  Params         `yaml:"params"`
	Pos     Pos            `yaml:"-" json:"-"`
	Keys    map[string]Pos `yaml:"-" json:"-"`
	// Values are the validated parameters: string, int64, time.Duration, bool or []string.
	Values map[string]any `yaml:"-" json:"-"`
	result reflect.Type
}

// Remedy is one rung of the ladder: a condition and an action.
type Remedy struct {
	Name   string         `yaml:"name" jsonschema:"required"`
	When   Expr           `yaml:"when" jsonschema_description:"CEL condition (bool); empty means always."`
	Action string         `yaml:"action" jsonschema:"required,enum=rollback,enum=scale,enum=restart,enum=delete-pod,enum=escalate"`
	Params Params         `yaml:"params"`
	Pos    Pos            `yaml:"-" json:"-"`
	Keys   map[string]Pos `yaml:"-" json:"-"`
	// Values are the validated parameters: string, int64, time.Duration, bool or []string.
	Values map[string]any `yaml:"-" json:"-"`
}

// PrioritySpec gives the incident's priority: the first rule whose
// condition is true, else the default.
type PrioritySpec struct {
	Default Priority       `yaml:"default" jsonschema_description:"Priority when no rule applies (default P3)."`
	Rules   []PriorityRule `yaml:"rules"`
}

// PriorityRule sets the priority when its CEL condition is true.
type PriorityRule struct {
	When     Expr     `yaml:"when" jsonschema:"required"`
	Priority Priority `yaml:"priority" jsonschema:"required"`
	Pos      Pos      `yaml:"-" json:"-"`
}

// Guards are the policy's guard settings. They are parsed and validated
// here and enforced by the guard stage.
type Guards struct {
	Mode              string         `yaml:"mode" jsonschema:"enum=dry-run,enum=enforce" jsonschema_description:"Overrides the global mode for this policy (dry-run is the default everywhere)."`
	Approval          string         `yaml:"approval" jsonschema:"enum=required,enum=none" jsonschema_description:"required: plans are only proposed until a person approves."`
	Cooldown          Duration       `yaml:"cooldown" jsonschema_description:"Minimum time between two actions on the same target."`
	MaxActionsPerHour int            `yaml:"maxActionsPerHour" jsonschema:"minimum=0"`
	MaxReplicas       int            `yaml:"maxReplicas" jsonschema:"minimum=0" jsonschema_description:"Upper bound for scale actions."`
	MinHealthyPercent int            `yaml:"minHealthyPercent" jsonschema:"minimum=0,maximum=100" jsonschema_description:"Restarts and pod deletions must leave at least this percentage of pods ready."`
	CircuitBreaker    int            `yaml:"circuitBreaker" jsonschema:"minimum=0" jsonschema_description:"After this many failed or ineffective actions on a target within 24h, stop acting on it and escalate (default 2)."`
	ApprovalExpiry    Duration       `yaml:"approvalExpiry" jsonschema_description:"How long a proposal awaiting approval stays valid (default 1h)."`
	Keys              map[string]Pos `yaml:"-" json:"-"`
}

// VerifySpec says how long an applied change has to prove itself.
type VerifySpec struct {
	RolloutDeadline Duration       `yaml:"rolloutDeadline" jsonschema_description:"Time for the rollout to complete after the change (default 5m), like kubectl rollout status --timeout."`
	ResolveWithin   Duration       `yaml:"resolveWithin" jsonschema_description:"Time for the alert to resolve once the rollout completed (default 10m); if it still fires, the next remedy on the ladder is tried."`
	Keys            map[string]Pos `yaml:"-" json:"-"`
}

// Verification defaults.
const (
	DefaultRolloutDeadline = 5 * time.Minute
	DefaultResolveWithin   = 10 * time.Minute
	DefaultApprovalExpiry  = time.Hour
	DefaultCircuitBreaker  = 2
)

// RolloutDeadline is the policy's rollout deadline or the default.
func (p *Policy) RolloutDeadline() time.Duration {
	if p.Verify.RolloutDeadline > 0 {
		return time.Duration(p.Verify.RolloutDeadline)
	}
	return DefaultRolloutDeadline
}

// ResolveWithin is the policy's resolve deadline or the default.
func (p *Policy) ResolveWithin() time.Duration {
	if p.Verify.ResolveWithin > 0 {
		return time.Duration(p.Verify.ResolveWithin)
	}
	return DefaultResolveWithin
}

// ApprovalExpiry is how long a proposal of this policy stays valid.
func (p *Policy) ApprovalExpiry() time.Duration {
	if p.Guards.ApprovalExpiry > 0 {
		return time.Duration(p.Guards.ApprovalExpiry)
	}
	return DefaultApprovalExpiry
}

// Priority is P0 (immediate), P1 (30 min), P2 (2 h) or P3 (24 h).
type Priority string

// The priorities and their response deadlines (runbook, "Escalation").
const (
	P0 Priority = "P0"
	P1 Priority = "P1"
	P2 Priority = "P2"
	P3 Priority = "P3"
)

// Deadline is the response time the runbook gives the priority.
func (p Priority) Deadline() time.Duration {
	switch p {
	case P0:
		return 0
	case P1:
		return 30 * time.Minute
	case P2:
		return 2 * time.Hour
	default:
		return 24 * time.Hour
	}
}

func (p *Priority) decodeYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		switch Priority(n.Value) {
		case P0, P1, P2, P3:
			*p = Priority(n.Value)
			return nil
		}
	}
	return fmt.Errorf("bad priority %s: want one of P0, P1, P2, P3", describe(n))
}

// JSONSchema describes a priority for editors.
func (Priority) JSONSchema() *jsonschema.Schema {
	return &jsonschema.Schema{Type: "string", Enum: []any{"P0", "P1", "P2", "P3"},
		Description: "P0 immediate, P1 within 30m, P2 within 2h, P3 within 24h"}
}

// Duration is a Go duration written as a string such as "30s" or "10m".
type Duration time.Duration

func (d *Duration) decodeYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
		return fmt.Errorf("want a duration such as \"30s\" or \"10m\", got %s", describe(n))
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil || v < 0 {
		return fmt.Errorf("bad duration %q: want a non-negative duration such as \"30s\" or \"10m\"", n.Value)
	}
	*d = Duration(v)
	return nil
}

// JSONSchema describes a duration for editors.
func (Duration) JSONSchema() *jsonschema.Schema {
	return &jsonschema.Schema{Type: "string", Pattern: `^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`, Description: `duration such as "30s", "10m" or "1h30m"`}
}

// Expr is a CEL expression with its place in the file, so that compile
// errors point into the file.
type Expr struct {
	Text  string
	Pos   Pos
	style yaml.Style
	// lines of the file, to find the column of a block scalar's lines
	lines []string
	prg   cel.Program
}

func (e *Expr) decodeYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode || (n.Tag != "!!str" && n.Tag != "!!bool") {
		return fmt.Errorf("want a CEL expression (a string), got %s", describe(n))
	}
	e.Text, e.Pos, e.style = n.Value, posOf(n), n.Style
	return nil
}

// JSONSchema describes an expression for editors.
func (Expr) JSONSchema() *jsonschema.Schema {
	return &jsonschema.Schema{Type: "string", Description: "CEL expression evaluating to bool"}
}

// Params are an action's or probe's parameters, validated against the catalog.
type Params map[string]*yaml.Node

// JSONSchema describes parameters for editors.
func (Params) JSONSchema() *jsonschema.Schema {
	return &jsonschema.Schema{Type: "object", Description: "parameters, checked against the catalog (docs/policies.md)"}
}

const (
	yamlDoubleQuoted = yaml.DoubleQuotedStyle
	yamlSingleQuoted = yaml.SingleQuotedStyle
	yamlLiteral      = yaml.LiteralStyle
	yamlFolded       = yaml.FoldedStyle
)
