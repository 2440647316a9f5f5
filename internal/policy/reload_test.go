package policy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func testPolicy(name string) string {
	return fmt.Sprintf(`apiVersion: remediator/v1
kind: Policy
name: %s
match:
  - alertname="%s"
target:
  kind: Deployment
  nameLabel: deployment
remedies:
  - name: escalate
    action: escalate
    params:
      to: platform-team
`, name, name)
}

func writeFile(t *testing.T, dir, name, data string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// gathered returns the registry's samples as "name{labels}" -> value.
func gathered(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var ls []string
			for _, lp := range m.GetLabel() {
				ls = append(ls, lp.GetName()+"="+lp.GetValue())
			}
			sort.Strings(ls)
			key := mf.GetName()
			if len(ls) > 0 {
				key += "{" + strings.Join(ls, ",") + "}"
			}
			switch {
			case m.GetCounter() != nil:
				out[key] = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				out[key] = m.GetGauge().GetValue()
			}
		}
	}
	return out
}

func newTestReloader(t *testing.T, dir string, opts ReloaderOptions) (*Reloader, *prometheus.Registry) {
	t.Helper()
	l, err := NewLoader(DefaultCatalog())
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	opts.Metrics = NewReloadMetrics(reg)
	r, err := NewReloader(dir, l, opts)
	if err != nil {
		t.Fatal(err)
	}
	return r, reg
}

func TestNewReloaderFailsOnBadFirstLoad(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "a.yaml", "name: [\n")
	l, err := NewLoader(DefaultCatalog())
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewReloader(dir, l, ReloaderOptions{})
	var errs Errors
	if r != nil || !errors.As(err, &errs) {
		t.Fatalf("NewReloader = %v, %v; want no reloader and Errors", r, err)
	}
}

// TestReloadKeepsLastGoodSet walks one directory through good and bad
// states; a failed reload must leave the previous set (the same pointer) in
// force.
func TestReloadKeepsLastGoodSet(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "a.yaml", testPolicy("alpha"))
	clock := time.Unix(1000, 0)
	r, reg := newTestReloader(t, dir, ReloaderOptions{Now: func() time.Time { return clock }})
	if got := gathered(t, reg); got["remediator_policies_loaded"] != 1 || got["remediator_policy_last_reload_success"] != 1 ||
		got["remediator_policy_last_reload_timestamp_seconds"] != 1000 || got["remediator_policy_reloads_total{result=failure}"] != 0 {
		t.Fatalf("metrics after start-up: %v", got)
	}

	steps := []struct {
		name    string
		edit    func()
		wantErr string // substring; "" means success
		want    []string
		metrics map[string]float64
	}{
		{
			name: "add a policy",
			edit: func() { writeFile(t, dir, "b.yml", testPolicy("beta")) },
			want: []string{"alpha", "beta"},
			metrics: map[string]float64{
				"remediator_policy_reloads_total{result=success}": 1, "remediator_policy_reloads_total{result=failure}": 0,
				"remediator_policy_last_reload_success": 1, "remediator_policies_loaded": 2,
				"remediator_policy_last_reload_timestamp_seconds": 2000,
			},
		},
		{
			name: "break a file",
			edit: func() {
				writeFile(t, dir, "b.yml", strings.Replace(testPolicy("beta"), "kind: Deployment", "kind: StatefulSet", 1))
			},
			wantErr: filepath.Join(dir, "b.yml") + ":7:9: target.kind must be \"Deployment\"",
			want:    []string{"alpha", "beta"},
			metrics: map[string]float64{
				"remediator_policy_reloads_total{result=success}": 1, "remediator_policy_reloads_total{result=failure}": 1,
				"remediator_policy_last_reload_success": 0, "remediator_policies_loaded": 2,
				"remediator_policy_last_reload_timestamp_seconds": 2000,
			},
		},
		{
			name:    "break YAML too",
			edit:    func() { writeFile(t, dir, "c.yaml", "name: [\n") },
			wantErr: filepath.Join(dir, "c.yaml") + ":",
			want:    []string{"alpha", "beta"},
			metrics: map[string]float64{
				"remediator_policy_reloads_total{result=failure}": 2, "remediator_policy_last_reload_success": 0,
			},
		},
		{
			name: "fix both",
			edit: func() {
				writeFile(t, dir, "b.yml", testPolicy("beta"))
				writeFile(t, dir, "c.yaml", testPolicy("gamma"))
			},
			want: []string{"alpha", "beta", "gamma"},
			metrics: map[string]float64{
				"remediator_policy_reloads_total{result=success}": 2, "remediator_policy_reloads_total{result=failure}": 2,
				"remediator_policy_last_reload_success": 1, "remediator_policies_loaded": 3,
				"remediator_policy_last_reload_timestamp_seconds": 5000,
			},
		},
		{
			name:    "directory gone",
			edit:    func() { _ = os.RemoveAll(dir) },
			wantErr: "no such file or directory",
			want:    []string{"alpha", "beta", "gamma"},
			metrics: map[string]float64{"remediator_policy_last_reload_success": 0, "remediator_policies_loaded": 3},
		},
	}
	for i, st := range steps {
		clock = time.Unix(int64(1000*(i+2)), 0)
		before := r.Current()
		st.edit()
		err := r.Reload()
		switch {
		case st.wantErr == "" && err != nil:
			t.Fatalf("%s: Reload: %v", st.name, err)
		case st.wantErr != "" && (err == nil || !strings.Contains(err.Error(), st.wantErr)):
			t.Fatalf("%s: Reload error = %v, want one containing %q", st.name, err, st.wantErr)
		case st.wantErr != "" && r.Current() != before:
			t.Fatalf("%s: a failed reload replaced the set in force", st.name)
		case st.wantErr == "" && r.Current() == before:
			t.Fatalf("%s: a good reload kept the old set", st.name)
		}
		var names []string
		for _, p := range r.Current().Policies() {
			names = append(names, p.Name)
		}
		if strings.Join(names, ",") != strings.Join(st.want, ",") {
			t.Fatalf("%s: policies in force = %v, want %v", st.name, names, st.want)
		}
		got := gathered(t, reg)
		for k, v := range st.metrics {
			if got[k] != v {
				t.Errorf("%s: %s = %v, want %v", st.name, k, got[k], v)
			}
		}
	}
}

// TestPollDebounces drives the watcher tick by tick: a change is loaded
// only once the directory has stayed the same for a whole interval, and an
// unchanged directory is never loaded again, even after a failure.
func TestPollDebounces(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "a.yaml", testPolicy("alpha"))
	var results []error
	r, _ := newTestReloader(t, dir, ReloaderOptions{OnResult: func(_ *Set, err error) { results = append(results, err) }})

	prev := fingerprint(dir)
	tick := func(wantReloads int, what string) {
		t.Helper()
		prev = r.poll(prev)
		if len(results) != wantReloads {
			t.Fatalf("%s: %d reloads, want %d", what, len(results), wantReloads)
		}
	}
	tick(0, "nothing changed")
	for i := range 5 { // a file still being written: changes at every tick
		writeFile(t, dir, "b.yaml", testPolicy("beta")[:20*(i+1)])
		tick(0, fmt.Sprintf("write %d", i))
	}
	writeFile(t, dir, "b.yaml", testPolicy("beta"))
	tick(0, "last write")
	tick(1, "stable for one interval")
	if results[0] != nil || r.Current().Get("beta") == nil {
		t.Fatalf("reload: %v, beta in force: %v", results[0], r.Current().Get("beta") != nil)
	}
	tick(1, "stable, already loaded")

	writeFile(t, dir, "b.yaml", "kind: [\n")
	tick(1, "broken write")
	tick(2, "broken, stable")
	if results[1] == nil {
		t.Fatal("broken file loaded without error")
	}
	tick(2, "broken, already tried")
	tick(2, "broken, already tried again")
}

func TestRunWatchesTriggersAndStops(t *testing.T) {
	tests := []struct {
		name     string
		interval time.Duration
		act      func(t *testing.T, dir string, hup chan<- os.Signal)
	}{
		{
			name:     "file change",
			interval: 20 * time.Millisecond,
			act: func(t *testing.T, dir string, _ chan<- os.Signal) {
				// Atomically, so no tick sees a half-written file.
				writeFile(t, dir, "b.yaml.tmp", testPolicy("beta"))
				if err := os.Rename(filepath.Join(dir, "b.yaml.tmp"), filepath.Join(dir, "b.yaml")); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name:     "SIGHUP without polling",
			interval: -1,
			act: func(t *testing.T, dir string, hup chan<- os.Signal) {
				writeFile(t, dir, "b.yaml", testPolicy("beta"))
				hup <- syscall.SIGHUP
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, dir, "a.yaml", testPolicy("alpha"))
			results := make(chan *Set, 10)
			r, _ := newTestReloader(t, dir, ReloaderOptions{
				Interval: tt.interval,
				OnResult: func(s *Set, err error) {
					if err != nil {
						t.Errorf("reload: %v", err)
					}
					results <- s
				},
			})
			ctx, cancel := context.WithCancel(context.Background())
			hup := make(chan os.Signal, 1)
			done := make(chan struct{})
			go func() {
				defer close(done)
				r.Run(ctx, hup)
			}()
			defer func() {
				cancel()
				select {
				case <-done:
				case <-time.After(5 * time.Second):
					t.Fatal("Run did not stop on cancel")
				}
			}()
			old := r.Current()
			tt.act(t, dir, hup)
			select {
			case s := <-results:
				if r.Current() != s || s == old || s.Get("beta") == nil {
					t.Fatalf("after reload: current %p, reported %p, old %p", r.Current(), s, old)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("no reload within 5s")
			}
			if tt.interval > 0 { // the change is loaded once, not at every tick
				time.Sleep(10 * tt.interval)
				if n := len(results); n != 0 {
					t.Fatalf("%d more reloads of an unchanged directory", n)
				}
			}
		})
	}
}
