// Command demo-app stands in for the runbook's platform-service in end-to-end
// tests: a tiny HTTP service exposing the metrics the runbook's alert rules
// (deploy/monitoring/rules.yml) and the shipped policies' queries
// (policies/*.yaml) read, with prometheus/client_golang:
//
//	http_requests_total{method,path,code}
//	http_request_errors_total{method,path,code}   (5xx responses)
//	http_request_duration_seconds{method,path}    (histogram)
//	container_cpu_usage_seconds_total{container}  (as cAdvisor, the kubelet, reports it)
//	kube_pod_container_resource_limits{container,resource,unit}  (as kube-state-metrics)
//	demo_app_misbehaving, demo_app_offered_requests_per_second, demo_app_ready_replicas,
//	demo_app_utilization, demo_app_capacity_requests_per_second,
//	demo_app_model_mean_latency_seconds
//
// It generates its own traffic: a goroutine sends --rps requests per second
// to its own /api/orders over HTTP, so the metrics move without a client.
// These requests sample the latency a request would see; their rate is not
// the modelled load (below).
//
// What it is not: it is not the Deployment's pods. On the test bed the
// platform-service pods are simulated by kwok and run nothing. Instead this
// one process watches the Deployment (--namespace/--deployment) through the
// Kubernetes API (--kubeconfig) and behaves as one of its pods would.
// Prometheus is expected to scrape it with the target labels namespace and
// pod (a realistic pod name of the Deployment), as prometheus-operator would
// for a real pod; so every metric above, including the cAdvisor and
// kube-state-metrics ones, is that pod's, and the app sets no namespace or
// pod label itself.
//
// A bad version: while the Deployment's pod template has an image containing
// --bad-image (e.g. "v1.1.0"), about --error-ratio (30%) of the requests
// fail with 500 and every request is slower (--bad-latency, up to twice
// that); otherwise every request succeeds. It switches on the template, not
// on the pods' rollout progress: the moment a rollback changes the template
// back, the errors stop.
//
// Saturation: the annotation demo.remediator.io/offered-rps on the
// Deployment is the request rate offered to the whole service; absent or 0,
// no load is modelled and a request takes --good-latency. Each ready replica
// (the Deployment's status.readyReplicas) serves --capacity-rps requests per
// second using its whole CPU limit (the template's first container's CPU
// limit, else its request, else one core). With offered load L, ready
// replicas N and capacity C the utilization is ρ = L/(N·C), and
//
//   - the app container uses min(ρ, 1) × its CPU limit
//     (container_cpu_usage_seconds_total grows at that rate; the template's
//     other containers, if any, use none);
//   - a request's time in the pod is that of an M/M/1 queue: exponential
//     with mean --good-latency/(1-ρ), bounded by --max-latency (the
//     clients' timeout); at ρ ≥ 1 every request takes 90–100% of
//     --max-latency.
//
// Saturation slows requests; it fails none. So a test turns saturation on
// with one patch of the annotation (kubectl annotate deployment
// platform-service demo.remediator.io/offered-rps=300), and the service
// recovers as soon as enough replicas are ready: scaling the Deployment
// (directly, or through its HPA's minReplicas) lowers ρ on the next
// readyReplicas update. With the defaults (C = 50), 300 rps saturate the
// demo's 3 replicas (ρ = 2: every request 2.7–3 s) and 8 replicas serve it (ρ = 0.75:
// mean 20 ms, p95 ≈ 60 ms).
//
//	demo-app --listen 127.0.0.1:8080 --kubeconfig admin.kubeconfig \
//	    --namespace prod --deployment platform-service --bad-image v1.1.0
//
// GET /metrics serves the metrics, GET /state what it currently believes
// ({"image","bad","synced","offeredRPS","readyReplicas","capacityRPS",
// "utilization" (null while infinite),"saturated" (ρ ≥ 1),"meanLatencySeconds",
// "cpuCores","cpuLimitCores"}), GET /api/orders the synthetic endpoint.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
)

type options struct {
	listen      string
	kubeconfig  string
	namespace   string
	deployment  string
	badImage    string
	rps         int
	errorRatio  float64
	badLatency  time.Duration
	goodLatency time.Duration
	capacityRPS float64
	maxLatency  time.Duration
}

func (o options) model() model {
	return model{capacityRPS: o.capacityRPS, service: o.goodLatency, maxLatency: o.maxLatency}
}

func main() {
	var o options
	flag.StringVar(&o.listen, "listen", "127.0.0.1:8080", "listen address (host:port; port 0 picks one, printed on stdout)")
	flag.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig of the cluster running the Deployment (required)")
	flag.StringVar(&o.namespace, "namespace", "", "the Deployment's namespace (required)")
	flag.StringVar(&o.deployment, "deployment", "platform-service", "the Deployment to watch")
	flag.StringVar(&o.badImage, "bad-image", "v1.1.0", "misbehave while the pod template's image contains this")
	flag.IntVar(&o.rps, "rps", 50, "synthetic requests per second (the latency sample, not the modelled load)")
	flag.Float64Var(&o.errorRatio, "error-ratio", 0.3, "share of requests that fail while misbehaving")
	flag.DurationVar(&o.badLatency, "bad-latency", 300*time.Millisecond, "extra latency per request while misbehaving")
	flag.DurationVar(&o.goodLatency, "good-latency", 5*time.Millisecond, "latency per request with no load (the service time)")
	flag.Float64Var(&o.capacityRPS, "capacity-rps", 50, "requests per second one ready replica serves at its CPU limit")
	flag.DurationVar(&o.maxLatency, "max-latency", 3*time.Second, "longest a request waits in a saturated replica (the clients' timeout)")
	flag.Parse()
	if o.kubeconfig == "" || o.namespace == "" || o.deployment == "" || o.badImage == "" {
		fmt.Fprintln(os.Stderr, "demo-app: --kubeconfig, --namespace, --deployment and --bad-image are required")
		os.Exit(2)
	}
	if err := o.model().validate(); err != nil {
		fmt.Fprintln(os.Stderr, "demo-app:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo-app:", err)
		os.Exit(1)
	}
	fmt.Printf("demo-app listening on %s\n", ln.Addr())
	if err := run(ctx, o, ln); err != nil {
		fmt.Fprintln(os.Stderr, "demo-app:", err)
		os.Exit(1)
	}
}

// app is the HTTP side: metrics, state and the synthetic endpoint.
type app struct {
	o     options
	m     model
	st    *state
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration)
	// uniform returns a variate in [0, 1).
	uniform func() float64
	synced  func() bool

	reg            *prometheus.Registry
	badGauge       prometheus.Gauge
	requests, errs *prometheus.CounterVec
	duration       *prometheus.HistogramVec
}

func newApp(o options) *app {
	a := &app{o: o, m: o.model(), now: time.Now, uniform: rand.Float64, synced: func() bool { return true },
		sleep: func(ctx context.Context, d time.Duration) {
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-ctx.Done():
			case <-t.C:
			}
		}}
	a.st = newState(a.m)
	a.badGauge = prometheus.NewGauge(prometheus.GaugeOpts{Name: "demo_app_misbehaving",
		Help: "1 while the watched Deployment's template has the bad image."})
	a.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "http_requests_total",
		Help: "HTTP requests served."}, []string{"method", "path", "code"})
	a.errs = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "http_request_errors_total",
		Help: "HTTP requests answered with a 5xx status."}, []string{"method", "path", "code"})
	a.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "http_request_duration_seconds",
		Help: "HTTP request latency.", Buckets: prometheus.DefBuckets}, []string{"method", "path"})
	a.reg = prometheus.NewRegistry()
	a.reg.MustRegister(a.badGauge, a.requests, a.errs, a.duration, newPodCollector(a.st, func() time.Time { return a.now() }))
	// Both series exist from the start, so the error ratio is 0 (not
	// absent) while healthy.
	a.errs.WithLabelValues("GET", "/api/orders", "500")
	a.requests.WithLabelValues("GET", "/api/orders", "200")
	return a
}

// observe takes in the Deployment's current state (nil: deleted).
func (a *app) observe(d *appsv1.Deployment) {
	var v deploymentView
	if d != nil {
		v = viewOf(d, a.o.badImage)
	}
	if a.st.set(v, a.now()) {
		s := a.st.snapshot(a.now())
		switch {
		case d == nil:
			log.Printf("deployment %s/%s deleted: healthy, no load", a.o.namespace, a.o.deployment)
		default:
			log.Printf("deployment %s/%s: template image %s: misbehaving=%v; offered %g rps, %d ready replicas × %g rps: utilization %s",
				a.o.namespace, a.o.deployment, v.image, v.bad, v.offered, v.ready, a.m.capacityRPS, strconv.FormatFloat(s.utilization, 'g', 3, 64))
		}
		if v.offeredErr != "" {
			log.Printf("deployment %s/%s: %s", a.o.namespace, a.o.deployment, v.offeredErr)
		}
	}
	if v.bad {
		a.badGauge.Set(1)
	} else {
		a.badGauge.Set(0)
	}
}

func (a *app) handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /state", a.state)
	mux.HandleFunc("GET /api/orders", a.orders)
	return mux
}

func (a *app) state(w http.ResponseWriter, _ *http.Request) {
	s := a.st.snapshot(a.now())
	var util *float64
	if !math.IsInf(s.utilization, 0) {
		util = &s.utilization
	}
	mean := a.m.service
	if s.view.offered > 0 {
		mean = a.m.meanLatency(s.utilization)
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"image": s.view.image, "bad": s.view.bad, "synced": a.synced(),
		"offeredRPS": s.view.offered, "readyReplicas": s.view.ready, "capacityRPS": a.m.capacityRPS,
		"utilization": util, "saturated": s.utilization >= 1, "meanLatencySeconds": mean.Seconds(),
		"cpuCores": s.cpuCores, "cpuLimitCores": s.modelCores,
	})
}

func (a *app) orders(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	s := a.st.snapshot(a.now())
	a.sleep(r.Context(), requestLatency(s, a.m, a.o.badLatency, a.uniform(), a.uniform()))
	code := http.StatusOK
	if s.view.bad && a.uniform() < a.o.errorRatio {
		code = http.StatusInternalServerError
	}
	c := strconv.Itoa(code)
	a.requests.WithLabelValues("GET", "/api/orders", c).Inc()
	if code >= 500 {
		a.errs.WithLabelValues("GET", "/api/orders", c).Inc()
	}
	a.duration.WithLabelValues("GET", "/api/orders").Observe(time.Since(start).Seconds())
	w.WriteHeader(code)
	_, _ = fmt.Fprintln(w, http.StatusText(code))
}

// run serves on ln and watches the Deployment until ctx ends.
func run(ctx context.Context, o options, ln net.Listener) error {
	defer ln.Close()
	if err := o.model().validate(); err != nil {
		return err
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", o.kubeconfig)
	if err != nil {
		return err
	}
	cfg.UserAgent = "demo-app"
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	a := newApp(o)

	// Watch the one Deployment: its template (image, limits), its
	// annotations (the offered load) and its status (ready replicas).
	factory := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace(o.namespace),
		informers.WithTweakListOptions(func(lo *metav1.ListOptions) {
			lo.FieldSelector = fields.OneTermEqualSelector("metadata.name", o.deployment).String()
		}))
	inf := factory.Apps().V1().Deployments().Informer()
	a.synced = inf.HasSynced
	observe := func(obj any) {
		if d, ok := obj.(*appsv1.Deployment); ok && d.Name == o.deployment {
			a.observe(d)
		}
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    observe,
		UpdateFunc: func(_, n any) { observe(n) },
		DeleteFunc: func(any) { a.observe(nil) },
	}); err != nil {
		return err
	}
	factory.Start(ctx.Done())
	defer factory.Shutdown()

	srv := &http.Server{Handler: a.handler(), ReadHeaderTimeout: 5 * time.Second}
	srvErr := make(chan error, 1)
	go func() { srvErr <- srv.Serve(ln) }()

	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		_ = srv.Close()
		return errors.New("deployment watch did not sync")
	}
	go traffic(ctx, "http://"+ln.Addr().String()+"/api/orders", o.rps)

	select {
	case <-ctx.Done():
	case err := <-srvErr:
		return err
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

// traffic sends rps requests per second to url until ctx ends, each in its
// own goroutine so slow answers do not lower the rate.
func traffic(ctx context.Context, url string, rps int) {
	if rps <= 0 {
		return
	}
	client := &http.Client{Timeout: 10 * time.Second}
	tick := time.NewTicker(time.Second / time.Duration(rps))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			go func() {
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
				if err != nil {
					return
				}
				resp, err := client.Do(req)
				if err != nil {
					return
				}
				_ = resp.Body.Close()
			}()
		}
	}
}
