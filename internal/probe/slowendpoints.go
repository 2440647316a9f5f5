package probe

import (
	"context"
	"sort"

	"k8s.io/client-go/kubernetes"
)

// SlowEndpoints ranks endpoints by the p95 of responseTimeMs in the
// structured (JSON) logs of the target's pods — the runbook's "identify slow
// endpoints".
type SlowEndpoints struct {
	Client kubernetes.Interface
}

// Name is "slowEndpoints".
func (SlowEndpoints) Name() string { return "slowEndpoints" }

// Needs: get deployments, list pods, get pods/log.
func (SlowEndpoints) Needs() []Permission {
	return []Permission{permDeployGet, permPodsList, permPodLogsGet}
}

// EndpointLatency is one endpoint's latency.
type EndpointLatency struct {
	Endpoint string  `json:"endpoint"`
	P95Ms    float64 `json:"p95Ms"` // nearest-rank p95 (see Percentile)
	Count    int64   `json:"count"`
}

// SlowEndpointsEvidence is the slowEndpoints probe's evidence.
type SlowEndpointsEvidence struct {
	Top     []EndpointLatency `json:"top"`     // by p95 desc, then endpoint
	Samples int64             `json:"samples"` // timed lines seen
	LogStats
}

// Fields is the CEL view.
func (e SlowEndpointsEvidence) Fields() map[string]any {
	top := make([]any, 0, len(e.Top))
	for _, m := range e.Top {
		top = append(top, map[string]any{"endpoint": m.Endpoint, "p95Ms": m.P95Ms, "count": m.Count})
	}
	f := map[string]any{"top": top, "samples": e.Samples}
	e.LogStats.fields(f)
	return f
}

// Run reads the logs. Parameters as errorDistribution, without pattern.
func (p SlowEndpoints) Run(ctx context.Context, t Target, params Params) (Evidence, error) {
	o, err := parseLogOptions(params, false)
	if err != nil {
		return nil, err
	}
	var agg latencyAgg
	st, err := readLogs(ctx, p.Client, t, o, func(line string) { agg.add(ParseLine(line, nil)) })
	if err != nil {
		return nil, err
	}
	ev := agg.result(int(o.top))
	ev.LogStats = st
	return ev, nil
}

// maxEndpoints bounds the distinct endpoints kept (the rest are ignored).
const maxEndpoints = 10000

type latencyAgg struct {
	samples int64
	times   map[string][]float64
}

func (a *latencyAgg) add(l LogLine) {
	if !l.Timed {
		return
	}
	if a.times == nil {
		a.times = map[string][]float64{}
	}
	if _, ok := a.times[l.Endpoint]; !ok && len(a.times) >= maxEndpoints {
		return
	}
	a.samples++
	a.times[l.Endpoint] = append(a.times[l.Endpoint], l.ResponseTimeMs)
}

func (a *latencyAgg) result(top int) SlowEndpointsEvidence {
	ev := SlowEndpointsEvidence{Samples: a.samples, Top: []EndpointLatency{}}
	for ep, ts := range a.times {
		ev.Top = append(ev.Top, EndpointLatency{Endpoint: ep, P95Ms: Percentile(ts, 95), Count: int64(len(ts))})
	}
	sort.Slice(ev.Top, func(i, j int) bool {
		if ev.Top[i].P95Ms != ev.Top[j].P95Ms {
			return ev.Top[i].P95Ms > ev.Top[j].P95Ms
		}
		return ev.Top[i].Endpoint < ev.Top[j].Endpoint
	})
	if len(ev.Top) > top {
		ev.Top = ev.Top[:top]
	}
	return ev
}
