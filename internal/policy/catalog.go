package policy

import (
	"reflect"
	"sort"

	"github.com/remediator/remediator/internal/probe"
)

// ParamType is the type of a probe or action parameter.
type ParamType string

// The parameter types. In YAML: a string, an integer, a duration string
// ("30s"), true/false, a list of strings.
const (
	String     ParamType = "string"
	Int        ParamType = "int"
	DurationP  ParamType = "duration"
	Bool       ParamType = "bool"
	StringList ParamType = "stringList"
)

// ParamSpec declares one parameter.
type ParamSpec struct {
	Type     ParamType
	Required bool
	// Min and Max bound an int parameter when set.
	Min, Max *int64
	Doc      string
}

// ProbeSpec declares a probe: its parameters and the Go type of its
// evidence. The evidence type is exposed to CEL as a typed object (cel-go
// native types), so conditions are type-checked against its fields at load.
type ProbeSpec struct {
	Name   string
	Doc    string
	Params map[string]ParamSpec
	// Result is the evidence's Go struct type; fields are named in CEL by
	// their `cel` tag. A probe implementation returns a value (or pointer)
	// of exactly this type.
	Result reflect.Type
}

// ActionSpec declares an action and its parameters.
type ActionSpec struct {
	Name   string
	Doc    string
	Params map[string]ParamSpec
	// OneOf lists parameters of which exactly one must be given, if set.
	OneOf []string
}

// Catalog is the set of probes and actions policies may use.
type Catalog struct {
	Probes  map[string]ProbeSpec
	Actions map[string]ActionSpec
}

// ProbeNames are the catalog's probe names, sorted.
func (c Catalog) ProbeNames() []string { return sortedKeys(c.Probes) }

// ActionNames are the catalog's action names, sorted.
func (c Catalog) ActionNames() []string { return sortedKeys(c.Actions) }

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func ptr(i int64) *int64 { return &i }

// DefaultCatalog declares the runbook's probes and the actions.
func DefaultCatalog() Catalog {
	// The log probes' parameters (internal/probe parseLogOptions).
	logParams := func(withPattern bool) map[string]ParamSpec {
		m := map[string]ParamSpec{
			"since":        {Type: DurationP, Doc: "how far back to read logs, 1s..24h (default 5m)"},
			"sinceSeconds": {Type: Int, Min: ptr(1), Max: ptr(86400), Doc: "since, in seconds (takes precedence over since)"},
			"maxLines":     {Type: Int, Min: ptr(1), Max: ptr(100000), Doc: "lines read per container (default 2000)"},
			"top":          {Type: Int, Min: ptr(1), Max: ptr(100), Doc: "how many entries to keep (default 5)"},
		}
		if withPattern {
			m["pattern"] = ParamSpec{Type: String, Doc: "regexp selecting error lines (default: the plain-text error test, see probe.ParseLine)"}
		}
		return m
	}
	return Catalog{
		Probes: map[string]ProbeSpec{
			"rolloutHistory": {Name: "rolloutHistory", Result: reflect.TypeFor[probe.RolloutHistoryEvidence](),
				Doc: "Deployment revisions from its ReplicaSets, age of the newest rollout, whether a rollout is in progress"},
			"podStatus": {Name: "podStatus", Result: reflect.TypeFor[probe.PodStatusEvidence](),
				Doc: "ready/total pods, restarts, containers last terminated OOMKilled, pods in CrashLoopBackOff"},
			"resources": {Name: "resources", Result: reflect.TypeFor[probe.ResourcesEvidence](),
				Params: map[string]ParamSpec{"nearLimitPercent": {Type: Int, Min: ptr(1), Max: ptr(100), Doc: "usage/limit ratio counted as near the limit (default 90)"}},
				Doc:    "percent of pods whose CPU / memory usage is near their limits, from metrics.k8s.io; available=false when that API is not served"},
			"errorDistribution": {Name: "errorDistribution", Result: reflect.TypeFor[probe.ErrorDistributionEvidence](),
				Params: logParams(true),
				Doc:    "recent log lines of the target's pods counted by message"},
			"slowEndpoints": {Name: "slowEndpoints", Result: reflect.TypeFor[probe.SlowEndpointsEvidence](),
				Params: logParams(false),
				Doc:    "endpoints by p95 of responseTimeMs in structured logs"},
			"prometheus": {Name: "prometheus", Result: reflect.TypeFor[probe.PrometheusEvidence](),
				Params: map[string]ParamSpec{
					"query":  {Type: String, Required: true, Doc: "PromQL (text/template over the target: {{.Namespace}}, {{.Name}}, {{.Kind}})"},
					"mode":   {Type: String, Doc: "instant (default) or range; a window without a mode means range"},
					"window": {Type: DurationP, Doc: "range of a range query (default 30m)"},
					"step":   {Type: DurationP, Doc: "resolution of a range query (default 1m)"},
				},
				Doc: "one PromQL query; available=false when it returns no usable sample"},
			"dependencies": {Name: "dependencies", Result: reflect.TypeFor[probe.DependenciesEvidence](),
				Params: map[string]ParamSpec{
					"endpoints": {Type: StringList, Required: true, Doc: "host:port (TCP) or http(s) URLs, at most 32"},
					"timeout":   {Type: DurationP, Doc: "per endpoint (default 2s)"},
				},
				Doc: "TCP/HTTP reachability of the workload's dependencies"},
		},
		Actions: map[string]ActionSpec{
			"rollback": {Name: "rollback", Doc: "kubectl rollout undo",
				Params: map[string]ParamSpec{"toRevision": {Type: Int, Min: ptr(1), Doc: "revision to go back to (default: the previous one)"}}},
			"scale": {Name: "scale", Doc: "kubectl scale --replicas", OneOf: []string{"replicas", "step"},
				Params: map[string]ParamSpec{
					"replicas": {Type: Int, Min: ptr(1), Max: ptr(1000), Doc: "absolute replica count"},
					"step":     {Type: Int, Min: ptr(1), Max: ptr(100), Doc: "replicas to add"},
					"max":      {Type: Int, Min: ptr(1), Max: ptr(1000), Doc: "never scale above this"},
				}},
			"restart":    {Name: "restart", Doc: "kubectl rollout restart"},
			"delete-pod": {Name: "delete-pod", Doc: "delete the affected pod(s) so their controller recreates them", Params: map[string]ParamSpec{"reason": {Type: String, Doc: "recorded with the action"}}},
			"escalate":   {Name: "escalate", Doc: "hand the incident to people; changes nothing", Params: map[string]ParamSpec{"to": {Type: String, Doc: "who (default: by priority)"}}},
		},
	}
}
