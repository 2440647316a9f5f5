// Command loadgen measures webhook intake: closed-loop throughput, latency
// at a fixed rate, and a single alert storm. It also serves the "bare"
// baseline handler (decode the same JSON, answer 200) so the service and the
// baseline are measured the same way in one run. See docs/benchmarks.md.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/remediator/remediator/internal/intake"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "bare":
		err = bare(os.Args[2:])
	case "throughput":
		err = throughput(os.Args[2:])
	case "rate":
		err = rate(os.Args[2:])
	case "storm":
		err = storm(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, `usage: loadgen bare --listen ADDR
       loadgen throughput --url URL [--token-file F] [--concurrency N] [--duration D] [--alerts N]
       loadgen rate --url URL [--token-file F] --rate R [--duration D] [--alerts N]
       loadgen storm --url URL [--token-file F] [--alerts N]`)
	os.Exit(2)
}

// bare serves the baseline: read the body, decode it with the same decoder
// the service uses, answer 200.
func bare(args []string) error {
	fs := flag.NewFlagSet("bare", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:9096", "address")
	_ = fs.Parse(args)
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	fmt.Println("bare handler on", ln.Addr())
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 16<<20))
		if err != nil {
			w.WriteHeader(http.StatusRequestEntityTooLarge)
			return
		}
		if _, err := intake.Decode(b); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}`))
	}), ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() { <-ctx.Done(); _ = srv.Close() }()
	if err := srv.Serve(ln); err != http.ErrServerClosed {
		return err
	}
	return nil
}

type target struct {
	url      string
	token    string
	alerts   int
	newRatio float64 // share of alerts that start a new episode; the rest re-send earlier ones
	client   *http.Client
	seq      atomic.Int64
	run      string
}

type common struct {
	url, tokenFile *string
	alerts         *int
	newRatio       *float64
}

func commonFlags(fs *flag.FlagSet) common {
	return common{
		url:       fs.String("url", "http://127.0.0.1:9095/webhook/alertmanager", "webhook URL"),
		tokenFile: fs.String("token-file", "", "bearer token file"),
		alerts:    fs.Int("alerts", 10, "alerts per notification"),
		newRatio: fs.Float64("new-ratio", 1, "share of alerts that are new episodes (1 = all new, the most work; "+
			"0.1 = nine in ten re-send an episode already sent, as Alertmanager's group updates do)"),
	}
}

func newTarget(c common, conns int) (*target, error) {
	if *c.newRatio <= 0 || *c.newRatio > 1 {
		return nil, fmt.Errorf("--new-ratio must be in (0, 1]")
	}
	url, tokenFile := *c.url, *c.tokenFile
	t := &target{url: url, alerts: *c.alerts, newRatio: *c.newRatio, run: strconv.FormatInt(time.Now().UnixNano(), 36),
		client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
			MaxIdleConns: conns, MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns, IdleConnTimeout: time.Minute,
		}}}
	if tokenFile != "" {
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			return nil, err
		}
		t.token = strings.TrimSpace(string(b))
	}
	return t, nil
}

// body builds a notification. With new-ratio 1 every alert is a new episode
// (a unique fingerprint): the most work intake can be asked to do per alert.
// Below 1, the other alerts re-send episodes of earlier notifications.
func (t *target) body() []byte {
	n := t.seq.Add(1)
	every := int64(1 / t.newRatio)
	var b bytes.Buffer
	b.Grow(300 + t.alerts*420)
	b.WriteString(`{"version":"4","groupKey":"{}:{alertname=\"HighErrorRate\"}","truncatedAlerts":0,"status":"firing","receiver":"remediator",` +
		`"groupLabels":{"alertname":"HighErrorRate"},"commonLabels":{"alertname":"HighErrorRate","severity":"critical"},` +
		`"commonAnnotations":{"summary":"Error rate above 5%"},"externalURL":"http://alertmanager:9093","alerts":[`)
	for i := 0; i < t.alerts; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"status":"firing","labels":{"alertname":"HighErrorRate","severity":"critical","namespace":"prod","deployment":"platform-service","pod":"platform-service-%s-%d-%d"},`+
			`"annotations":{"summary":"Error rate above 5%%","description":"5xx ratio over the last 5 minutes is above the threshold"},`+
			`"startsAt":"2026-11-26T01:00:00Z","endsAt":"0001-01-01T00:00:00Z","generatorURL":"http://prometheus:9090/graph?g0.expr=x",`+
			`"fingerprint":"%016x"}`, t.run, n, i, t.fingerprint(n, int64(i), every))
	}
	b.WriteString(`]}`)
	return b.Bytes()
}

// fingerprint of alert i in notification n: alert slot k = n*alerts+i is new
// when k%every == 0, otherwise it repeats the newest new slot before it.
func (t *target) fingerprint(n, i, every int64) uint64 {
	k := n*int64(t.alerts) + i
	k -= k % every
	return uint64(k) ^ hash(t.run)<<24
}

func hash(s string) uint64 {
	var h uint64 = 1469598103934665603
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h >> 8
}

func (t *target) send(ctx context.Context, body []byte) (time.Duration, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url, bytes.NewReader(body))
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	if t.token != "" {
		req.Header.Set("Authorization", "Bearer "+t.token)
	}
	start := time.Now()
	resp, err := t.client.Do(req)
	if err != nil {
		return 0, 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return time.Since(start), resp.StatusCode, nil
}

type result struct {
	Mode        string  `json:"mode"`
	URL         string  `json:"url"`
	Alerts      int     `json:"alertsPerNotification"`
	NewRatio    float64 `json:"newRatio"`
	Requests    int     `json:"requests"`
	Errors      int     `json:"errors"`
	Seconds     float64 `json:"seconds"`
	PerSecond   float64 `json:"notificationsPerSecond"`
	P50Ms       float64 `json:"p50Ms"`
	P90Ms       float64 `json:"p90Ms"`
	P99Ms       float64 `json:"p99Ms"`
	MaxMs       float64 `json:"maxMs"`
	Concurrency int     `json:"concurrency,omitempty"`
	Rate        float64 `json:"targetRate,omitempty"`
	FirstError  string  `json:"firstError,omitempty"`
}

func summarize(r *result, lat []time.Duration, elapsed time.Duration) {
	slices.Sort(lat)
	q := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		i := int(p * float64(len(lat)-1))
		return float64(lat[i].Microseconds()) / 1000
	}
	r.Requests = len(lat) + r.Errors
	r.Seconds = elapsed.Seconds()
	r.PerSecond = float64(len(lat)) / elapsed.Seconds()
	r.P50Ms, r.P90Ms, r.P99Ms, r.MaxMs = q(.50), q(.90), q(.99), q(1)
	out, _ := json.Marshal(r)
	fmt.Println(string(out))
}

// collector gathers latencies and errors from many goroutines.
type collector struct {
	mu       sync.Mutex
	lat      []time.Duration
	errors   int
	firstErr string
}

func (c *collector) add(d time.Duration, code int, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil || code/100 != 2 {
		c.errors++
		if c.firstErr == "" {
			if err != nil {
				c.firstErr = err.Error()
			} else {
				c.firstErr = "status " + strconv.Itoa(code)
			}
		}
		return
	}
	c.lat = append(c.lat, d)
}

// throughput: N clients send back to back for the duration.
func throughput(args []string) error {
	fs := flag.NewFlagSet("throughput", flag.ExitOnError)
	c := commonFlags(fs)
	conc := fs.Int("concurrency", 64, "concurrent clients")
	dur := fs.Duration("duration", 10*time.Second, "how long to send")
	warm := fs.Duration("warmup", 2*time.Second, "sending before measuring")
	_ = fs.Parse(args)
	t, err := newTarget(c, *conc)
	if err != nil {
		return err
	}
	run := func(d time.Duration) (*collector, time.Duration) {
		c := &collector{}
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		var wg sync.WaitGroup
		start := time.Now()
		for range *conc {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					lat, code, err := t.send(context.Background(), t.body())
					c.add(lat, code, err)
				}
			}()
		}
		wg.Wait()
		return c, time.Since(start)
	}
	run(*warm)
	col, elapsed := run(*dur)
	r := &result{Mode: "throughput", URL: *c.url, Alerts: *c.alerts, NewRatio: *c.newRatio, Errors: col.errors, Concurrency: *conc, FirstError: col.firstErr}
	summarize(r, col.lat, elapsed)
	return nil
}

// rate: an open-loop sender at a fixed rate; latency is measured from the
// scheduled send time, so a slow server cannot hide queueing (no
// coordinated omission).
func rate(args []string) error {
	fs := flag.NewFlagSet("rate", flag.ExitOnError)
	cf := commonFlags(fs)
	perSec := fs.Float64("rate", 1000, "notifications per second")
	dur := fs.Duration("duration", 10*time.Second, "how long to send")
	_ = fs.Parse(args)
	t, err := newTarget(cf, 256)
	if err != nil {
		return err
	}
	total := int(*perSec * dur.Seconds())
	interval := time.Duration(float64(time.Second) / *perSec)
	c := &collector{lat: make([]time.Duration, 0, total)}
	sem := make(chan struct{}, 1024)
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < total; i++ {
		due := start.Add(time.Duration(i) * interval)
		if d := time.Until(due); d > 0 {
			time.Sleep(d)
		}
		body := t.body()
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			_, code, err := t.send(context.Background(), body)
			c.add(time.Since(due), code, err)
		}()
	}
	wg.Wait()
	r := &result{Mode: "rate", URL: *cf.url, Alerts: *cf.alerts, NewRatio: *cf.newRatio, Errors: c.errors, Rate: *perSec, FirstError: c.firstErr}
	summarize(r, c.lat, time.Since(start))
	return nil
}

// storm: one notification with many alerts.
func storm(args []string) error {
	fs := flag.NewFlagSet("storm", flag.ExitOnError)
	c := commonFlags(fs)
	_ = fs.Parse(args)
	if !isSet(fs, "alerts") {
		*c.alerts = 10000
	}
	alerts := c.alerts
	t, err := newTarget(c, 1)
	if err != nil {
		return err
	}
	body := t.body()
	lat, code, err := t.send(context.Background(), body)
	if err != nil {
		return err
	}
	out, _ := json.Marshal(map[string]any{"mode": "storm", "alerts": *alerts, "bodyBytes": len(body),
		"status": code, "ms": float64(lat.Microseconds()) / 1000})
	fmt.Println(string(out))
	if code != http.StatusAccepted && code != http.StatusOK {
		return fmt.Errorf("storm answered %d", code)
	}
	return nil
}

func isSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == name {
			set = true
		}
	})
	return set
}
