package policy

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// DefaultReloadInterval is how often Run polls the policy directory.
const DefaultReloadInterval = 2 * time.Second

// ReloadMetrics are the hot-reload metrics.
type ReloadMetrics struct {
	Reloads     *prometheus.CounterVec
	LastSuccess prometheus.Gauge
	LastTime    prometheus.Gauge
	Loaded      prometheus.Gauge
}

// NewReloadMetrics creates the reload metrics and registers them with reg.
func NewReloadMetrics(reg prometheus.Registerer) *ReloadMetrics {
	m := &ReloadMetrics{
		Reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "remediator_policy_reloads_total",
			Help: "Policy reloads after start-up (SIGHUP or a file change), by result (success, failure).",
		}, []string{"result"}),
		LastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "remediator_policy_last_reload_success",
			Help: "1 if the last policy load succeeded, 0 if it failed (the last good set stays in force).",
		}),
		LastTime: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "remediator_policy_last_reload_timestamp_seconds",
			Help: "Unix time of the last successful policy load (start-up or reload).",
		}),
		Loaded: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "remediator_policies_loaded",
			Help: "Number of policies in force.",
		}),
	}
	m.Reloads.WithLabelValues("success")
	m.Reloads.WithLabelValues("failure")
	reg.MustRegister(m.Reloads, m.LastSuccess, m.LastTime, m.Loaded)
	return m
}

// ReloaderOptions are a Reloader's optional parts.
type ReloaderOptions struct {
	// Interval is how often Run polls the directory for changes: 0 means
	// DefaultReloadInterval, a negative value turns polling off (only the
	// trigger reloads).
	Interval time.Duration
	// Metrics, when not nil, are kept up to date.
	Metrics *ReloadMetrics
	// OnResult, when not nil, is called after every reload (not the first
	// load) with the set in force afterwards: the new one on success, the
	// last good one with the error on failure. Calls are serial.
	OnResult func(inForce *Set, err error)
	// Now is the clock of the timestamp metric; nil means time.Now.
	Now func() time.Time
}

// Reloader keeps the policy set of a directory in force: it reloads on a
// trigger (SIGHUP) and when the directory's policy files change, and keeps
// the last good set when a reload fails. It is safe for concurrent use.
type Reloader struct {
	dir    string
	loader *Loader
	opts   ReloaderOptions

	cur atomic.Pointer[Set]

	mu        sync.Mutex // serialises loads
	attempted string     // fingerprint of the directory before the last load
}

// NewReloader loads dir with the loader; a directory that does not load is
// an error (there is no last good set to keep yet).
func NewReloader(dir string, l *Loader, opts ReloaderOptions) (*Reloader, error) {
	if opts.Interval == 0 {
		opts.Interval = DefaultReloadInterval
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	r := &Reloader{dir: dir, loader: l, opts: opts}
	r.attempted = fingerprint(dir)
	set, err := l.Load(dir)
	if err != nil {
		return nil, err
	}
	r.cur.Store(set)
	if m := opts.Metrics; m != nil {
		m.LastSuccess.Set(1)
		m.LastTime.Set(float64(opts.Now().UnixNano()) / 1e9)
		m.Loaded.Set(float64(len(set.Policies())))
	}
	return r, nil
}

// Current returns the set in force.
func (r *Reloader) Current() *Set { return r.cur.Load() }

// Reload loads the directory again. On success the new set is put in
// force; on failure the last good set stays and the error (Errors, each
// file:line:col: message, when the files were read) is returned.
func (r *Reloader) Reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	// Fingerprint before loading: a change made during the load shows up
	// as a difference at the next poll and is loaded then.
	r.attempted = fingerprint(r.dir)
	set, err := r.loader.Load(r.dir)
	m := r.opts.Metrics
	if err != nil {
		if m != nil {
			m.Reloads.WithLabelValues("failure").Inc()
			m.LastSuccess.Set(0)
		}
		if r.opts.OnResult != nil {
			r.opts.OnResult(r.cur.Load(), err)
		}
		return err
	}
	r.cur.Store(set)
	if m != nil {
		m.Reloads.WithLabelValues("success").Inc()
		m.LastSuccess.Set(1)
		m.LastTime.Set(float64(r.opts.Now().UnixNano()) / 1e9)
		m.Loaded.Set(float64(len(set.Policies())))
	}
	if r.opts.OnResult != nil {
		r.opts.OnResult(set, nil)
	}
	return nil
}

// Run reloads on every value received from trigger (the composition root
// passes a channel notified of SIGHUP; nil means no trigger) and, unless
// polling is off, when the policy files change, until ctx is done. A change
// is loaded once the directory has stayed the same for one poll interval,
// so a file still being written does not cause a reload per write; and a
// state already loaded (or already failed) is not loaded again.
func (r *Reloader) Run(ctx context.Context, trigger <-chan os.Signal) {
	var tick <-chan time.Time
	if r.opts.Interval > 0 {
		t := time.NewTicker(r.opts.Interval)
		defer t.Stop()
		tick = t.C
	}
	prev := fingerprint(r.dir)
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-trigger:
			if !ok {
				trigger = nil
				continue
			}
			_ = r.Reload() // reported through OnResult and the metrics
		case <-tick:
			prev = r.poll(prev)
		}
	}
}

// poll is one tick of the watcher: it reloads when the directory is the
// same as at the previous tick (prev) and differs from what was last
// loaded. It returns the fingerprint for the next tick.
func (r *Reloader) poll(prev string) string {
	fp := fingerprint(r.dir)
	r.mu.Lock()
	changed := fp != r.attempted
	r.mu.Unlock()
	if changed && fp == prev {
		_ = r.Reload()
	}
	return fp
}

// fingerprint describes the policy files of dir as the loader sees them:
// name, size and modification time of each *.yaml and *.yml file. Stat
// follows symbolic links, so the swap of a mounted ConfigMap is seen.
func fingerprint(dir string) string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "error: " + err.Error()
	}
	var b strings.Builder
	for _, e := range entries { // sorted by name
		name := e.Name()
		if ext := filepath.Ext(name); e.IsDir() || (ext != ".yaml" && ext != ".yml") {
			continue
		}
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			fmt.Fprintf(&b, "%q error %v\n", name, err)
			continue
		}
		fmt.Fprintf(&b, "%q %d %d\n", name, fi.Size(), fi.ModTime().UnixNano())
	}
	return b.String()
}
