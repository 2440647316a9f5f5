// Command demo-app stands in for the runbook's platform-service in end-to-end
// tests: a tiny HTTP service exposing the metrics the runbook's alert rules
// (deploy/monitoring/rules.yml) read, with prometheus/client_golang:
//
//	http_requests_total{method,path,code}
//	http_request_errors_total{method,path,code}   (5xx responses)
//	http_request_duration_seconds{method,path}    (histogram)
//
// It generates its own traffic: a goroutine sends --rps requests per second
// to its own /api/orders over HTTP, so the metrics move without a client.
//
// What it is not: it is not the Deployment's pods. On the test bed the
// platform-service pods are simulated by kwok and run nothing, so no process
// is "the bad version". Instead this one process watches the Deployment
// (--namespace/--deployment) through the Kubernetes API (--kubeconfig) and
// behaves as the pods would: while the Deployment's pod template has an image
// containing --bad-image (e.g. "v1.1.0"), about --error-ratio (30%) of the
// requests fail with 500 and every request is slower (--bad-latency);
// otherwise every request succeeds quickly. It switches on the template,
// not on the pods' rollout progress: the moment a rollback changes the
// template back, the errors stop. Prometheus is expected to scrape it with
// the target labels namespace and pod (a realistic pod name of the
// Deployment), as prometheus-operator would for a real pod.
//
//	demo-app --listen 127.0.0.1:8080 --kubeconfig admin.kubeconfig \
//	    --namespace prod --deployment platform-service --bad-image v1.1.0
//
// GET /metrics serves the metrics, GET /state {"image","bad"} what it
// currently believes, GET /api/orders the synthetic endpoint.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
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
}

func main() {
	var o options
	flag.StringVar(&o.listen, "listen", "127.0.0.1:8080", "listen address (host:port; port 0 picks one, printed on stdout)")
	flag.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig of the cluster running the Deployment (required)")
	flag.StringVar(&o.namespace, "namespace", "", "the Deployment's namespace (required)")
	flag.StringVar(&o.deployment, "deployment", "platform-service", "the Deployment to watch")
	flag.StringVar(&o.badImage, "bad-image", "v1.1.0", "misbehave while the pod template's image contains this")
	flag.IntVar(&o.rps, "rps", 50, "synthetic requests per second")
	flag.Float64Var(&o.errorRatio, "error-ratio", 0.3, "share of requests that fail while misbehaving")
	flag.DurationVar(&o.badLatency, "bad-latency", 300*time.Millisecond, "extra latency per request while misbehaving")
	flag.DurationVar(&o.goodLatency, "good-latency", 5*time.Millisecond, "latency per request while healthy")
	flag.Parse()
	if o.kubeconfig == "" || o.namespace == "" || o.deployment == "" || o.badImage == "" {
		fmt.Fprintln(os.Stderr, "demo-app: --kubeconfig, --namespace, --deployment and --bad-image are required")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "demo-app:", err)
		os.Exit(1)
	}
}

// state is what the app believes about the Deployment.
type state struct {
	mu    sync.RWMutex
	image string
	bad   bool
	seen  bool
}

func (s *state) set(image string, bad bool) (changed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	changed = !s.seen || s.image != image || s.bad != bad
	s.image, s.bad, s.seen = image, bad, true
	return changed
}

func (s *state) get() (string, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.image, s.bad
}

func run(ctx context.Context, o options) error {
	cfg, err := clientcmd.BuildConfigFromFlags("", o.kubeconfig)
	if err != nil {
		return err
	}
	cfg.UserAgent = "demo-app"
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}

	st := &state{}
	badGauge := prometheus.NewGauge(prometheus.GaugeOpts{Name: "demo_app_misbehaving",
		Help: "1 while the watched Deployment's template has the bad image."})
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "http_requests_total",
		Help: "HTTP requests served."}, []string{"method", "path", "code"})
	errs := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "http_request_errors_total",
		Help: "HTTP requests answered with a 5xx status."}, []string{"method", "path", "code"})
	duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "http_request_duration_seconds",
		Help: "HTTP request latency.", Buckets: prometheus.DefBuckets}, []string{"method", "path"})
	reg := prometheus.NewRegistry()
	reg.MustRegister(badGauge, requests, errs, duration)

	// Watch the one Deployment.
	factory := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace(o.namespace),
		informers.WithTweakListOptions(func(lo *metav1.ListOptions) {
			lo.FieldSelector = fields.OneTermEqualSelector("metadata.name", o.deployment).String()
		}))
	inf := factory.Apps().V1().Deployments().Informer()
	observe := func(obj any) {
		d, ok := obj.(*appsv1.Deployment)
		if !ok || d.Name != o.deployment {
			return
		}
		var images []string
		bad := false
		for _, c := range d.Spec.Template.Spec.Containers {
			images = append(images, c.Image)
			if strings.Contains(c.Image, o.badImage) {
				bad = true
			}
		}
		image := strings.Join(images, ",")
		if st.set(image, bad) {
			log.Printf("deployment %s/%s: template image %s: misbehaving=%v", o.namespace, o.deployment, image, bad)
		}
		if bad {
			badGauge.Set(1)
		} else {
			badGauge.Set(0)
		}
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    observe,
		UpdateFunc: func(_, n any) { observe(n) },
		DeleteFunc: func(any) {
			if st.set("", false) {
				log.Printf("deployment %s/%s deleted: healthy", o.namespace, o.deployment)
			}
			badGauge.Set(0)
		},
	}); err != nil {
		return err
	}
	factory.Start(ctx.Done())
	defer factory.Shutdown()

	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /state", func(w http.ResponseWriter, _ *http.Request) {
		image, bad := st.get()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"image": image, "bad": bad, "synced": inf.HasSynced()})
	})
	mux.HandleFunc("GET /api/orders", func(w http.ResponseWriter, _ *http.Request) {
		start := time.Now()
		_, bad := st.get()
		code := http.StatusOK
		if bad {
			time.Sleep(o.badLatency + time.Duration(rand.Int64N(int64(o.badLatency)+1)))
			if rand.Float64() < o.errorRatio {
				code = http.StatusInternalServerError
			}
		} else {
			time.Sleep(o.goodLatency)
		}
		c := strconv.Itoa(code)
		requests.WithLabelValues("GET", "/api/orders", c).Inc()
		if code >= 500 {
			errs.WithLabelValues("GET", "/api/orders", c).Inc()
		}
		duration.WithLabelValues("GET", "/api/orders").Observe(time.Since(start).Seconds())
		w.WriteHeader(code)
		_, _ = fmt.Fprintln(w, http.StatusText(code))
	})
	// Both series exist from the start, so the error ratio is 0 (not
	// absent) while healthy.
	errs.WithLabelValues("GET", "/api/orders", "500")
	requests.WithLabelValues("GET", "/api/orders", "200")

	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return err
	}
	fmt.Printf("demo-app listening on %s\n", ln.Addr())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
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
