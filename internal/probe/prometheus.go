package probe

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"
	"text/template"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
)

// Prometheus runs one PromQL query, templated with the target, as an
// instant query or (mode "range") over a window, for trends.
type Prometheus struct {
	URL          string            // Prometheus base URL, e.g. http://prometheus:9090
	RoundTripper http.RoundTripper // optional (default api.DefaultRoundTripper)
	Now          func() time.Time  // default time.Now
}

// Name is "prometheus".
func (Prometheus) Name() string { return "prometheus" }

// PrometheusEvidence is the prometheus probe's evidence. Value is the first
// sample of an instant vector, or the scalar; in range mode, the last point
// of the first series. Available is false (with Reason) when the query
// returned no usable sample.
type PrometheusEvidence struct {
	Query     string  `cel:"query" json:"query"`
	Mode      string  `cel:"mode" json:"mode"` // "instant" or "range"
	Value     float64 `cel:"value" json:"value"`
	Available bool    `cel:"available" json:"available"`
	Reason    string  `cel:"reason" json:"reason,omitempty"`
	Samples   int64   `cel:"samples" json:"samples"` // series (instant) or points of the first series (range)
	Series    int64   `cel:"series" json:"series"`
	// Range mode: first and last point of the first series and the
	// least-squares slope of its points, per minute.
	First          float64  `cel:"first" json:"first"`
	Last           float64  `cel:"last" json:"last"`
	SlopePerMinute float64  `cel:"slopePerMinute" json:"slopePerMinute"`
	Warnings       []string `cel:"warnings" json:"warnings,omitempty"`
}

// RenderQuery expands {{.Namespace}}, {{.Name}} and {{.Kind}} in query.
func RenderQuery(query string, t Target) (string, error) {
	tpl, err := template.New("query").Option("missingkey=error").Parse(query)
	if err != nil {
		return "", fmt.Errorf("parameter query: %v", err)
	}
	var sb strings.Builder
	if err := tpl.Execute(&sb, t); err != nil {
		return "", fmt.Errorf("parameter query: %v", err)
	}
	return sb.String(), nil
}

// Run queries Prometheus. Parameters: query (required, text/template over
// the target), mode ("instant", default, or "range"), window (range, default
// 30m), step (range, default 1m). An unreachable Prometheus or a bad query is
// an error; an empty result is available=false.
func (p Prometheus) Run(ctx context.Context, t Target, params Params) (Evidence, error) {
	q, err := params.String("query", "")
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(q) == "" {
		return nil, errors.New("parameter query: required")
	}
	if q, err = RenderQuery(q, t); err != nil {
		return nil, err
	}
	mode, err := params.String("mode", "instant")
	if err != nil {
		return nil, err
	}
	if _, ok := params["window"]; ok && mode == "instant" && params["mode"] == nil {
		mode = "range" // a window implies a range query
	}
	if p.URL == "" {
		return nil, errors.New("no Prometheus URL configured")
	}
	client, err := api.NewClient(api.Config{Address: p.URL, RoundTripper: p.RoundTripper})
	if err != nil {
		return nil, fmt.Errorf("prometheus client: %w", err)
	}
	papi := promv1.NewAPI(client)
	now := time.Now
	if p.Now != nil {
		now = p.Now
	}
	ev := PrometheusEvidence{Query: q, Mode: mode}
	switch mode {
	case "instant":
		v, warns, _, err := papi.Query(ctx, q, now())
		if err != nil {
			return nil, fmt.Errorf("query %q: %w", q, err)
		}
		ev.Warnings = warns
		instantEvidence(&ev, v)
	case "range":
		window, err := params.Duration("window", 30*time.Minute)
		if err != nil {
			return nil, err
		}
		step, err := params.Duration("step", time.Minute)
		if err != nil {
			return nil, err
		}
		if window <= 0 || step <= 0 || window/step > 11000 {
			return nil, fmt.Errorf("parameters window %s / step %s: need positive values and at most 11000 points", window, step)
		}
		end := now()
		v, warns, _, err := papi.QueryRange(ctx, q, promv1.Range{Start: end.Add(-window), End: end, Step: step})
		if err != nil {
			return nil, fmt.Errorf("range query %q: %w", q, err)
		}
		ev.Warnings = warns
		rangeEvidence(&ev, v)
	default:
		return nil, fmt.Errorf("parameter mode: %q, want instant or range", mode)
	}
	return ev, nil
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

func instantEvidence(ev *PrometheusEvidence, v model.Value) {
	switch r := v.(type) {
	case model.Vector:
		ev.Series, ev.Samples = int64(len(r)), int64(len(r))
		if len(r) == 0 {
			ev.Reason = "the query returned no samples"
			return
		}
		setValue(ev, float64(r[0].Value))
	case *model.Scalar:
		ev.Series, ev.Samples = 1, 1
		setValue(ev, float64(r.Value))
	default:
		ev.Reason = fmt.Sprintf("unexpected result type %s", v.Type())
	}
}

func setValue(ev *PrometheusEvidence, f float64) {
	if !finite(f) {
		ev.Reason = fmt.Sprintf("the sample is %v", f)
		return
	}
	ev.Value, ev.Available = f, true
}

func rangeEvidence(ev *PrometheusEvidence, v model.Value) {
	m, ok := v.(model.Matrix)
	if !ok {
		ev.Reason = fmt.Sprintf("unexpected result type %s", v.Type())
		return
	}
	ev.Series = int64(len(m))
	if len(m) == 0 {
		ev.Reason = "the query returned no series"
		return
	}
	var ts, vs []float64
	for _, p := range m[0].Values {
		if f := float64(p.Value); finite(f) {
			ts = append(ts, float64(p.Timestamp)/60000)
			vs = append(vs, f)
		}
	}
	ev.Samples = int64(len(vs))
	if len(vs) == 0 {
		ev.Reason = "the first series has no finite points"
		return
	}
	ev.First, ev.Last = vs[0], vs[len(vs)-1]
	ev.SlopePerMinute = Slope(ts, vs)
	ev.Value, ev.Available = ev.Last, true
}

// Slope is the least-squares slope of ys over xs (0 for fewer than two
// distinct xs).
func Slope(xs, ys []float64) float64 {
	n := float64(len(xs))
	if len(xs) < 2 || len(xs) != len(ys) {
		return 0
	}
	var mx, my float64
	for i := range xs {
		mx += xs[i]
		my += ys[i]
	}
	mx, my = mx/n, my/n
	var num, den float64
	for i := range xs {
		num += (xs[i] - mx) * (ys[i] - my)
		den += (xs[i] - mx) * (xs[i] - mx)
	}
	if den == 0 {
		return 0
	}
	return num / den
}
