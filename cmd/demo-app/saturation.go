package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// OfferedRPSAnnotation on the watched Deployment is the request rate
// offered to the whole service (all its replicas together), in requests
// per second. Absent, empty or "0": no load is modelled.
const OfferedRPSAnnotation = "demo.remediator.io/offered-rps"

// model is the service's capacity: each ready replica serves capacityRPS
// requests per second, spending its whole CPU limit doing so, and a
// request takes service at no load. The load is spread evenly over the
// ready replicas; each behaves as an M/M/1 queue, so a request's time in
// the pod (wait plus service) is exponentially distributed with mean
// service/(1-ρ), ρ the utilization. A queue cannot wait forever: a request
// waits at most maxLatency (the request timeout of the clients), which is
// also every request's latency once ρ ≥ 1.
type model struct {
	capacityRPS float64
	service     time.Duration
	maxLatency  time.Duration
}

func (m model) validate() error {
	switch {
	case !(m.capacityRPS > 0) || math.IsInf(m.capacityRPS, 0):
		return fmt.Errorf("--capacity-rps %v: want a positive number", m.capacityRPS)
	case m.service <= 0:
		return fmt.Errorf("--good-latency %s: want a positive duration", m.service)
	case m.maxLatency <= m.service:
		return fmt.Errorf("--max-latency %s: want more than --good-latency %s", m.maxLatency, m.service)
	}
	return nil
}

// utilization is ρ = offered / (ready × capacityRPS): 0 without load,
// +Inf with load and no ready replica.
func (m model) utilization(offered float64, ready int32) float64 {
	if offered <= 0 {
		return 0
	}
	if ready <= 0 {
		return math.Inf(1)
	}
	return offered / (float64(ready) * m.capacityRPS)
}

// meanLatency is the M/M/1 mean time in the pod, service/(1-ρ), bounded by
// maxLatency (reached before ρ = 1).
func (m model) meanLatency(rho float64) time.Duration {
	if rho >= 1 {
		return m.maxLatency
	}
	mean := float64(m.service) / (1 - rho)
	if mean >= float64(m.maxLatency) {
		return m.maxLatency
	}
	return time.Duration(mean)
}

// latency is one request's time in the pod for the uniform variate u in
// [0, 1): the exponential distribution's quantile at u (inverse transform
// sampling) with the M/M/1 mean, bounded by maxLatency. At ρ ≥ 1 the queue
// is full: every request waits the bound, less up to 10% (u spreads it).
func (m model) latency(rho, u float64) time.Duration {
	u = min(max(u, 0), math.Nextafter(1, 0))
	if rho >= 1 {
		return m.maxLatency - time.Duration(u*0.1*float64(m.maxLatency))
	}
	d := -float64(m.meanLatency(rho)) * math.Log1p(-u)
	if d >= float64(m.maxLatency) {
		return m.maxLatency
	}
	return time.Duration(d)
}

// cpuCores is one replica's CPU usage: its share of the load's fraction of
// its limit, min(ρ, 1) × limit.
func cpuCores(rho, limitCores float64) float64 {
	return min(rho, 1) * limitCores
}

// container is one container of the pod template, as kube-state-metrics
// reports its limits (0: none).
type container struct {
	name        string
	cpuLimit    float64 // cores
	memoryLimit float64 // bytes
	cpuRequest  float64 // cores
}

// modelCores is the CPU the modelled usage is a share of: the app
// container's (the template's first) CPU limit, else its request, else one
// core.
func modelCores(cs []container) float64 {
	switch {
	case len(cs) == 0:
		return 1
	case cs[0].cpuLimit > 0:
		return cs[0].cpuLimit
	case cs[0].cpuRequest > 0:
		return cs[0].cpuRequest
	}
	return 1
}

// deploymentView is what the app reads from the watched Deployment.
type deploymentView struct {
	image      string // the template's images, comma-separated
	bad        bool
	offered    float64 // requests per second; 0: none
	offeredErr string  // why the annotation was ignored, if it was
	ready      int32   // status.readyReplicas
	containers []container
}

// viewOf reads d: the template's images (bad when one contains badImage),
// its containers' limits, the offered load annotation and the ready
// replicas.
func viewOf(d *appsv1.Deployment, badImage string) deploymentView {
	var v deploymentView
	var images []string
	for _, c := range d.Spec.Template.Spec.Containers {
		images = append(images, c.Image)
		if strings.Contains(c.Image, badImage) {
			v.bad = true
		}
		ct := container{name: c.Name}
		if q, ok := c.Resources.Limits[corev1.ResourceCPU]; ok {
			ct.cpuLimit = q.AsApproximateFloat64()
		}
		if q, ok := c.Resources.Limits[corev1.ResourceMemory]; ok {
			ct.memoryLimit = q.AsApproximateFloat64()
		}
		if q, ok := c.Resources.Requests[corev1.ResourceCPU]; ok {
			ct.cpuRequest = q.AsApproximateFloat64()
		}
		v.containers = append(v.containers, ct)
	}
	v.image = strings.Join(images, ",")
	v.ready = d.Status.ReadyReplicas
	v.offered, v.offeredErr = parseOffered(d.Annotations[OfferedRPSAnnotation])
	return v
}

// parseOffered reads the annotation: a finite number ≥ 0; anything else is
// no load, with the reason.
func parseOffered(s string) (float64, string) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, ""
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
		return 0, fmt.Sprintf("annotation %s=%q: want a number of requests per second ≥ 0; no load modelled", OfferedRPSAnnotation, s)
	}
	return f, ""
}

// state is what the app believes about the Deployment, and the CPU time
// the app container has used so far (integrated at each change).
type state struct {
	m model

	mu         sync.Mutex
	seen       bool
	view       deploymentView
	cpuSeconds float64   // used up to cpuAt
	cpuAt      time.Time // zero until the first view
}

func newState(m model) *state { return &state{m: m} }

// rateLocked is the app container's CPU usage now, in cores.
func (s *state) rateLocked() float64 {
	return cpuCores(s.m.utilization(s.view.offered, s.view.ready), modelCores(s.view.containers))
}

// advanceLocked adds the CPU used since cpuAt at the current rate.
func (s *state) advanceLocked(now time.Time) {
	if !s.cpuAt.IsZero() && now.After(s.cpuAt) {
		s.cpuSeconds += s.rateLocked() * now.Sub(s.cpuAt).Seconds()
	}
	if s.cpuAt.IsZero() || now.After(s.cpuAt) {
		s.cpuAt = now
	}
}

// set records a new view at now; changed reports whether what the app
// logs about (image, bad, offered load, ready replicas) changed.
func (s *state) set(v deploymentView, now time.Time) (changed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advanceLocked(now)
	o := s.view
	changed = !s.seen || o.image != v.image || o.bad != v.bad || o.offered != v.offered || o.offeredErr != v.offeredErr || o.ready != v.ready
	s.view, s.seen = v, true
	return changed
}

// snapshot is the state at now.
type snapshot struct {
	view        deploymentView
	utilization float64 // ρ; +Inf with load and no ready replica
	cpuCores    float64 // usage rate of the app container
	cpuSeconds  float64 // cumulative
	modelCores  float64
}

func (s *state) snapshot(now time.Time) snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advanceLocked(now)
	return snapshot{
		view:        s.view,
		utilization: s.m.utilization(s.view.offered, s.view.ready),
		cpuCores:    s.rateLocked(),
		cpuSeconds:  s.cpuSeconds,
		modelCores:  modelCores(s.view.containers),
	}
}

// requestLatency is the time one request of the synthetic endpoint takes
// for the uniform variates u1, u2 in [0, 1): while a load is offered, the
// queueing model's; otherwise --good-latency. While misbehaving,
// --bad-latency plus up to --bad-latency more (u2) replaces the
// --good-latency of the unloaded case, or adds to the queueing time.
func requestLatency(s snapshot, m model, badLatency time.Duration, u1, u2 float64) time.Duration {
	var d time.Duration
	switch {
	case s.view.offered > 0:
		d = m.latency(s.utilization, u1)
	case !s.view.bad:
		d = m.service
	}
	if s.view.bad {
		d += badLatency + time.Duration(u2*float64(badLatency))
	}
	return d
}

// podCollector exports the saturation metrics real exporters give for the
// pod the app stands in for, with their own names and label names (the
// namespace and pod labels come from the scrape, as for a PodMonitor):
//
//   - cAdvisor (the kubelet): container_cpu_usage_seconds_total{container}
//     — the app container (the template's first) uses the model's CPU,
//     the others none;
//   - kube-state-metrics: kube_pod_container_resource_limits{container,
//     resource="cpu",unit="core" | resource="memory",unit="byte"} from the
//     template's limits (no series for a limit not set);
//
// and the model's inputs and outputs as demo_app_* gauges.
type podCollector struct {
	st  *state
	now func() time.Time

	cpu, limits, offered, ready, util, capacity, meanLatency *prometheus.Desc
}

func newPodCollector(st *state, now func() time.Time) *podCollector {
	return &podCollector{
		st: st, now: now,
		cpu: prometheus.NewDesc("container_cpu_usage_seconds_total",
			"Cumulative cpu time consumed in seconds.", []string{"container"}, nil),
		limits: prometheus.NewDesc("kube_pod_container_resource_limits",
			"The number of requested limit resource by a container.", []string{"container", "resource", "unit"}, nil),
		offered: prometheus.NewDesc("demo_app_offered_requests_per_second",
			"Request rate offered to the whole Deployment (annotation "+OfferedRPSAnnotation+").", nil, nil),
		ready: prometheus.NewDesc("demo_app_ready_replicas",
			"Ready replicas of the Deployment sharing the offered load.", nil, nil),
		util: prometheus.NewDesc("demo_app_utilization",
			"Offered load over the ready replicas' capacity (+Inf with load and no ready replica).", nil, nil),
		capacity: prometheus.NewDesc("demo_app_capacity_requests_per_second",
			"Requests per second one ready replica serves at its CPU limit (--capacity-rps).", nil, nil),
		meanLatency: prometheus.NewDesc("demo_app_model_mean_latency_seconds",
			"Mean time of a request in a pod under the offered load (queueing model).", nil, nil),
	}
}

func (c *podCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.cpu, c.limits, c.offered, c.ready, c.util, c.capacity, c.meanLatency} {
		ch <- d
	}
}

func (c *podCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.st.snapshot(c.now())
	for i, ct := range s.view.containers {
		used := 0.0
		if i == 0 {
			used = s.cpuSeconds
		}
		ch <- prometheus.MustNewConstMetric(c.cpu, prometheus.CounterValue, used, ct.name)
		if ct.cpuLimit > 0 {
			ch <- prometheus.MustNewConstMetric(c.limits, prometheus.GaugeValue, ct.cpuLimit, ct.name, "cpu", "core")
		}
		if ct.memoryLimit > 0 {
			ch <- prometheus.MustNewConstMetric(c.limits, prometheus.GaugeValue, ct.memoryLimit, ct.name, "memory", "byte")
		}
	}
	ch <- prometheus.MustNewConstMetric(c.offered, prometheus.GaugeValue, s.view.offered)
	ch <- prometheus.MustNewConstMetric(c.ready, prometheus.GaugeValue, float64(s.view.ready))
	ch <- prometheus.MustNewConstMetric(c.util, prometheus.GaugeValue, s.utilization)
	ch <- prometheus.MustNewConstMetric(c.capacity, prometheus.GaugeValue, c.st.m.capacityRPS)
	mean := c.st.m.service
	if s.view.offered > 0 {
		mean = c.st.m.meanLatency(s.utilization)
	}
	ch <- prometheus.MustNewConstMetric(c.meanLatency, prometheus.GaugeValue, mean.Seconds())
}
