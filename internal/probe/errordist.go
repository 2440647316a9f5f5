package probe

import (
	"context"
	"sort"

	"k8s.io/client-go/kubernetes"
)

// ErrorDistribution counts the error lines in the recent logs of the
// target's pods by normalised message — the runbook's
// `kubectl logs --since=5m | grep ERROR | sort | uniq -c | sort -rn`.
type ErrorDistribution struct {
	Client kubernetes.Interface
}

// Name is "errorDistribution".
func (ErrorDistribution) Name() string { return "errorDistribution" }

// Needs: get deployments, list pods, get pods/log.
func (ErrorDistribution) Needs() []Permission {
	return []Permission{permDeployGet, permPodsList, permPodLogsGet}
}

// MessageCount is one entry of an error distribution.
type MessageCount struct {
	Message string `cel:"message" json:"message"`
	Count   int64  `cel:"count" json:"count"`
}

// ErrorDistributionEvidence is the errorDistribution probe's evidence.
type ErrorDistributionEvidence struct {
	Total int64          `cel:"total" json:"total"` // error lines
	Top   []MessageCount `cel:"top" json:"top"`     // by count desc, then message
	LogStats
}

// Run reads the logs. Parameters: since (duration) or sinceSeconds (int),
// default 5m; maxLines per container (default 2000); top (default 5);
// pattern (regexp replacing the plain-text error test, optional).
func (p ErrorDistribution) Run(ctx context.Context, t Target, params Params) (Evidence, error) {
	o, err := parseLogOptions(params, true)
	if err != nil {
		return nil, err
	}
	var agg errorAgg
	st, err := readLogs(ctx, p.Client, t, o, func(line string) { agg.add(ParseLine(line, o.pattern)) })
	if err != nil {
		return nil, err
	}
	ev := agg.result(int(o.top))
	ev.LogStats = st
	return ev, nil
}

type errorAgg struct {
	total  int64
	counts map[string]int64
}

func (a *errorAgg) add(l LogLine) {
	if !l.Error {
		return
	}
	if a.counts == nil {
		a.counts = map[string]int64{}
	}
	a.total++
	a.counts[l.Message]++
}

func (a *errorAgg) result(top int) ErrorDistributionEvidence {
	ev := ErrorDistributionEvidence{Total: a.total, Top: []MessageCount{}}
	for m, c := range a.counts {
		ev.Top = append(ev.Top, MessageCount{Message: m, Count: c})
	}
	sort.Slice(ev.Top, func(i, j int) bool {
		if ev.Top[i].Count != ev.Top[j].Count {
			return ev.Top[i].Count > ev.Top[j].Count
		}
		return ev.Top[i].Message < ev.Top[j].Message
	})
	if len(ev.Top) > top {
		ev.Top = ev.Top[:top]
	}
	return ev
}
