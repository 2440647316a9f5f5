package policy

import (
	"reflect"
	"sort"
	"time"
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

// The evidence types. These are the contract the probe implementations
// follow; their `cel` tags are the field names conditions use.

// Revision is one Deployment revision (one ReplicaSet).
type Revision struct {
	Revision    int64     `cel:"revision" json:"revision"`
	Image       string    `cel:"image" json:"image"`
	ChangeCause string    `cel:"changeCause" json:"changeCause"`
	CreatedAt   time.Time `cel:"createdAt" json:"createdAt"`
}

// RolloutHistory is the evidence of the rolloutHistory probe.
type RolloutHistory struct {
	Revisions        []Revision    `cel:"revisions" json:"revisions"`
	CurrentRevision  int64         `cel:"currentRevision" json:"currentRevision"`
	NewestRolloutAge time.Duration `cel:"newestRolloutAge" json:"newestRolloutAge"`
	InProgress       bool          `cel:"inProgress" json:"inProgress"`
}

// PodStatus is the evidence of the podStatus probe.
type PodStatus struct {
	Ready        int64 `cel:"ready" json:"ready"`
	Total        int64 `cel:"total" json:"total"`
	Restarts     int64 `cel:"restarts" json:"restarts"`
	OOMKilled    int64 `cel:"oomKilled" json:"oomKilled"`
	CrashLooping int64 `cel:"crashLooping" json:"crashLooping"`
}

// Resources is the evidence of the resources probe.
type Resources struct {
	Available              bool  `cel:"available" json:"available"`
	CPUNearLimitPercent    int64 `cel:"cpuNearLimitPercent" json:"cpuNearLimitPercent"`
	MemoryNearLimitPercent int64 `cel:"memoryNearLimitPercent" json:"memoryNearLimitPercent"`
}

// MessageCount is one line of an error distribution.
type MessageCount struct {
	Message string `cel:"message" json:"message"`
	Count   int64  `cel:"count" json:"count"`
}

// ErrorDistribution is the evidence of the errorDistribution probe.
type ErrorDistribution struct {
	Total int64          `cel:"total" json:"total"`
	Top   []MessageCount `cel:"top" json:"top"`
}

// EndpointLatency is one slow endpoint.
type EndpointLatency struct {
	Endpoint string  `cel:"endpoint" json:"endpoint"`
	P95Ms    float64 `cel:"p95Ms" json:"p95Ms"`
	Count    int64   `cel:"count" json:"count"`
}

// SlowEndpoints is the evidence of the slowEndpoints probe.
type SlowEndpoints struct {
	Top []EndpointLatency `cel:"top" json:"top"`
}

// PromResult is the evidence of the prometheus probe.
type PromResult struct {
	Value     float64 `cel:"value" json:"value"`
	Available bool    `cel:"available" json:"available"`
}

// Dependencies is the evidence of the dependencies probe.
type Dependencies struct {
	AllReachable bool     `cel:"allReachable" json:"allReachable"`
	Unreachable  []string `cel:"unreachable" json:"unreachable"`
}

// DefaultCatalog declares the runbook's probes and the actions.
func DefaultCatalog() Catalog {
	since := ParamSpec{Type: DurationP, Doc: "how far back to read logs (default 5m)"}
	topN := ParamSpec{Type: Int, Min: ptr(1), Max: ptr(100), Doc: "how many entries to keep (default 10)"}
	return Catalog{
		Probes: map[string]ProbeSpec{
			"rolloutHistory": {Name: "rolloutHistory", Result: reflect.TypeFor[RolloutHistory](),
				Doc: "Deployment revisions from its ReplicaSets, age of the newest rollout, whether a rollout is in progress"},
			"podStatus": {Name: "podStatus", Result: reflect.TypeFor[PodStatus](),
				Doc: "ready/total pods, restarts, containers last terminated OOMKilled, pods in CrashLoopBackOff"},
			"resources": {Name: "resources", Result: reflect.TypeFor[Resources](),
				Params: map[string]ParamSpec{"nearLimitPercent": {Type: Int, Min: ptr(1), Max: ptr(100), Doc: "usage/limit ratio counted as near the limit (default 90)"}},
				Doc:    "percent of pods whose CPU / memory usage is near their limits, from metrics.k8s.io; available=false when that API is not served"},
			"errorDistribution": {Name: "errorDistribution", Result: reflect.TypeFor[ErrorDistribution](),
				Params: map[string]ParamSpec{"since": since, "top": topN, "pattern": {Type: String, Doc: "regexp selecting error lines (default ERROR)"}},
				Doc:    "recent log lines of the target's pods counted by message"},
			"slowEndpoints": {Name: "slowEndpoints", Result: reflect.TypeFor[SlowEndpoints](),
				Params: map[string]ParamSpec{"since": since, "top": topN},
				Doc:    "endpoints by p95 of responseTimeMs in structured logs"},
			"prometheus": {Name: "prometheus", Result: reflect.TypeFor[PromResult](),
				Params: map[string]ParamSpec{
					"query":  {Type: String, Required: true, Doc: "PromQL returning one sample"},
					"window": {Type: DurationP, Doc: "range for range queries"},
				},
				Doc: "one PromQL query; available=false when Prometheus cannot answer"},
			"dependencies": {Name: "dependencies", Result: reflect.TypeFor[Dependencies](),
				Params: map[string]ParamSpec{
					"endpoints": {Type: StringList, Required: true, Doc: "host:port (TCP) or http(s) URLs"},
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
