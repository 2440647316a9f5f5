package runbookloop

import (
	"fmt"
	"math"
	"net/url"
	"strconv"
	"time"

	"github.com/remediator/remediator/internal/testbed"
)

// Sample is one element of an instant query's result.
type Sample struct {
	Metric map[string]string
	Value  string
}

// Float is the sample's value (NaN when it is not a number).
func (s Sample) Float() float64 {
	f, err := strconv.ParseFloat(s.Value, 64)
	if err != nil {
		return math.NaN()
	}
	return f
}

// Query runs an instant query on the loop's Prometheus.
func (l *Loop) Query(expr string) ([]Sample, error) {
	var r struct {
		Data struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  []any             `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := getJSON(l.t.Context(), l.Prometheus+"/api/v1/query?query="+url.QueryEscape(expr), "", &r); err != nil {
		return nil, err
	}
	out := make([]Sample, 0, len(r.Data.Result))
	for _, s := range r.Data.Result {
		v := ""
		if len(s.Value) == 2 {
			v, _ = s.Value[1].(string)
		}
		out = append(out, Sample{Metric: s.Metric, Value: v})
	}
	return out, nil
}

// WaitQuery polls expr until ok accepts its result, and returns it.
func (l *Loop) WaitQuery(what string, d time.Duration, ok func([]Sample) bool, expr string) []Sample {
	l.t.Helper()
	var v []Sample
	err := poll(l.t.Context(), d, func() (bool, error) {
		var err error
		v, err = l.Query(expr)
		return err == nil && ok(v), err
	})
	if err != nil {
		l.t.Fatalf("prometheus: %s: %v; last result %+v", what, err, v)
	}
	return v
}

// ErrorRatioExpr is the namespace's 5xx ratio over the loop's window, as
// the HighErrorRate rule computes it.
func (l *Loop) ErrorRatioExpr() string {
	w := promDuration(l.Window)
	sel := fmt.Sprintf(`{namespace=%q}`, l.Namespace)
	return fmt.Sprintf(`sum by (namespace) (rate(http_request_errors_total%s[%s])) / sum by (namespace) (rate(http_requests_total%s[%s]))`,
		sel, w, sel, w)
}

// LatencyP95Expr is the namespace's p95 request latency over the loop's
// window, as the HighLatency rule computes it.
func (l *Loop) LatencyP95Expr() string {
	return fmt.Sprintf(`histogram_quantile(0.95, sum by (namespace, le) (rate(http_request_duration_seconds_bucket{namespace=%q}[%s])))`,
		l.Namespace, promDuration(l.Window))
}

// ErrorRatio is the current error ratio (NaN when Prometheus has none).
func (l *Loop) ErrorRatio() float64 {
	v, err := l.Query(l.ErrorRatioExpr())
	if err != nil || len(v) != 1 {
		return math.NaN()
	}
	return v[0].Float()
}

// Alert is one of Prometheus's pending or firing alerts.
type Alert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	State       string            `json:"state"` // pending or firing
	ActiveAt    time.Time         `json:"activeAt"`
	Value       string            `json:"value"`
}

// Alerts is Prometheus's pending and firing alerts of the loop's namespace.
func (l *Loop) Alerts() []Alert {
	l.t.Helper()
	var r struct {
		Data struct {
			Alerts []Alert `json:"alerts"`
		} `json:"data"`
	}
	if err := getJSON(l.t.Context(), l.Prometheus+"/api/v1/alerts", "", &r); err != nil {
		l.t.Fatalf("prometheus: %v", err)
	}
	var out []Alert
	for _, a := range r.Data.Alerts {
		if a.Labels["namespace"] == l.Namespace {
			out = append(out, a)
		}
	}
	return out
}

// WaitAlert waits until Prometheus has exactly one alert alertname of the
// namespace, in state (pending or firing), for the demo's Deployment, and
// returns it.
func (l *Loop) WaitAlert(alertname, state string, d time.Duration) Alert {
	l.t.Helper()
	var found []Alert
	err := poll(l.t.Context(), d, func() (bool, error) {
		found = found[:0]
		for _, a := range l.Alerts() {
			if a.Labels["alertname"] == alertname {
				found = append(found, a)
			}
		}
		return len(found) == 1 && found[0].State == state && found[0].Labels["deployment"] == testbed.DemoDeployment, nil
	})
	if err != nil {
		l.t.Fatalf("prometheus: %s %s for %s/%s: %v; alerts %+v", alertname, state, l.Namespace, testbed.DemoDeployment, err, found)
	}
	return found[0]
}

// WaitResolved waits until Prometheus no longer has alert alertname of the
// namespace (neither pending nor firing).
func (l *Loop) WaitResolved(alertname string, d time.Duration) {
	l.t.Helper()
	var last []Alert
	err := poll(l.t.Context(), d, func() (bool, error) {
		last = last[:0]
		for _, a := range l.Alerts() {
			if a.Labels["alertname"] == alertname {
				last = append(last, a)
			}
		}
		return len(last) == 0, nil
	})
	if err != nil {
		l.t.Fatalf("prometheus: %s still active in %s: %v; %+v", alertname, l.Namespace, err, last)
	}
}
