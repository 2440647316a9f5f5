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
	Endpoint string  `cel:"endpoint" json:"endpoint"`
	P95Ms    float64 `cel:"p95Ms" json:"p95Ms"` // nearest-rank p95 (see Percentile)
	Count    int64   `cel:"count" json:"count"`
}

// SlowEndpointsEvidence is the slowEndpoints probe's evidence.
type SlowEndpointsEvidence struct {
	Top     []EndpointLatency `cel:"top" json:"top"`         // by p95 desc, then endpoint
	Samples int64             `cel:"samples" json:"samples"` // timed lines seen
	LogStats
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
