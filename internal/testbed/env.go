package testbed

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// EnvStateFile names the environment variable that points tests at a running
// bed's state file (from `testbed up`) instead of starting one per process.
const EnvStateFile = "REMEDIATOR_TESTBED"

// Shared owns the one bed of a test process. Use it from TestMain:
//
//	var bed testbed.Shared
//	func TestMain(m *testing.M) { os.Exit(bed.Run(m)) }
//	func TestX(t *testing.T) { env := bed.Get(t); ... }
//
// or the package-level Main and Get, which use a default Shared.
// The bed starts lazily on the first Get (so -run filters that pick no bed
// test cost nothing) and stops when Run returns. With $REMEDIATOR_TESTBED
// set, Get attaches to that bed instead and never stops it.
type Shared struct {
	// Options for Up. Dir defaults to a temp dir (removed if the tests
	// pass); KillWithParent is always set; Postgres is set unless NoPostgres.
	Options    Options
	NoPostgres bool

	mu     sync.Mutex
	inMain bool
	tried  bool
	bed    *Bed
	err    error
	tmpDir string
}

// Run runs the tests and stops the bed if one was started. If tests failed,
// the bed's directory (logs of every process) is kept and its path printed.
func (s *Shared) Run(m *testing.M) int {
	if !flag.Parsed() {
		flag.Parse()
	}
	s.mu.Lock()
	s.inMain = true
	s.mu.Unlock()
	code := m.Run()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.bed != nil && !s.bed.Attached() {
		t0 := time.Now()
		if err := s.bed.Down(); err != nil {
			fmt.Fprintf(os.Stderr, "testbed: stopping the bed: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
		if testing.Verbose() {
			fmt.Fprintf(os.Stderr, "testbed: bed stopped in %.1fs\n", time.Since(t0).Seconds())
		}
	}
	if s.tmpDir != "" {
		if code == 0 {
			_ = os.RemoveAll(s.tmpDir)
		} else {
			fmt.Fprintf(os.Stderr, "testbed: kept the bed's directory with process logs: %s\n", s.tmpDir)
		}
	}
	return code
}

// Get returns the bed for t, starting it on first use. It skips the test in
// -short mode and fails it if the bed cannot start.
func (s *Shared) Get(t testing.TB) *Env {
	t.Helper()
	if testing.Short() {
		t.Skip("testbed: needs the real control plane; skipped with -short")
	}
	bed, err := s.bed0(t)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return &Env{t: t, bed: bed}
}

func (s *Shared) bed0(t testing.TB) (*Bed, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tried {
		return s.bed, s.err
	}
	if f := os.Getenv(EnvStateFile); f != "" {
		s.tried = true
		s.bed, s.err = Attach(f)
		return s.bed, s.err
	}
	if !s.inMain {
		return nil, fmt.Errorf("testbed: no bed: set %s to a running bed's state file, or call testbed.Main(m) (or Shared.Run) from TestMain", EnvStateFile)
	}
	s.tried = true
	opts := s.Options
	if opts.Dir == "" {
		reapStale(os.TempDir())
		d, err := os.MkdirTemp("", tempDirPrefix)
		if err != nil {
			s.err = err
			return nil, err
		}
		s.tmpDir = d
		opts.Dir = d
	}
	opts.KillWithParent = true
	opts.Postgres = !s.NoPostgres
	if opts.Logf == nil && testing.Verbose() {
		opts.Logf = func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) }
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	s.bed, s.err = Up(ctx, opts)
	return s.bed, s.err
}

var defaultShared Shared

const tempDirPrefix = "remediator-testbed-"

// reapStale stops what is left of beds in temp dirs whose owning test
// process died without stopping them (killed by a timeout, say): the
// control plane dies with its owner, but PostgreSQL runs detached.
func reapStale(tmp string) {
	states, _ := filepath.Glob(filepath.Join(tmp, tempDirPrefix+"*", StateFileName))
	for _, sf := range states {
		st, err := readState(sf)
		if err != nil || pidAlive(st.OwnerPID) {
			continue
		}
		if StopFromState(sf, 10*time.Second) == nil {
			_ = os.RemoveAll(filepath.Dir(sf))
		}
	}
}

// Main is TestMain for packages that use Get:
//
//	func TestMain(m *testing.M) { testbed.Main(m) }
func Main(m *testing.M) { os.Exit(defaultShared.Run(m)) }

// Get returns the bed of the test process (see Shared.Get).
func Get(t testing.TB) *Env {
	t.Helper()
	return defaultShared.Get(t)
}

// Env is the bed as one test sees it; helpers register cleanups on that test.
type Env struct {
	t   testing.TB
	bed *Bed
}

// Bed is the underlying bed.
func (e *Env) Bed() *Bed { return e.bed }

// AdminConfig is a cluster-admin rest.Config (a fresh copy each call).
func (e *Env) AdminConfig() *rest.Config { return e.bed.AdminConfig() }

// RemediatorConfig authenticates as ServiceAccount remediator-system/remediator.
func (e *Env) RemediatorConfig() *rest.Config { return e.bed.RemediatorConfig() }

// AdminClient is a clientset for AdminConfig.
func (e *Env) AdminClient() kubernetes.Interface {
	e.t.Helper()
	c, err := e.bed.AdminClient()
	if err != nil {
		e.t.Fatalf("testbed: %v", err)
	}
	return c
}

// RemediatorClient is a clientset for RemediatorConfig.
func (e *Env) RemediatorClient() kubernetes.Interface {
	e.t.Helper()
	c, err := e.bed.RemediatorClient()
	if err != nil {
		e.t.Fatalf("testbed: %v", err)
	}
	return c
}

var nonName = regexp.MustCompile(`[^a-z0-9]+`)

func (e *Env) slug(max int) string {
	s := strings.Trim(nonName.ReplaceAllString(strings.ToLower(e.t.Name()), "-"), "-")
	if len(s) > max {
		s = strings.Trim(s[:max], "-")
	}
	if s == "" {
		s = "test"
	}
	return s
}

// NewNamespace creates a fresh namespace named after the test; it is deleted
// when the test ends.
func (e *Env) NewNamespace() string {
	e.t.Helper()
	ns, err := e.bed.CreateNamespace(e.t.Context(), e.slug(40)+"-")
	if err != nil {
		e.t.Fatalf("%v", err)
	}
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := e.bed.DeleteNamespace(ctx, ns); err != nil {
			e.t.Errorf("testbed: deleting namespace %s: %v", ns, err)
		}
	})
	return ns
}

// GrantRemediator gives the remediator's ServiceAccount exactly rules in
// namespace (a Role "remediator" and its RoleBinding), effective on return.
func (e *Env) GrantRemediator(namespace string, rules ...rbacv1.PolicyRule) {
	e.t.Helper()
	if err := e.bed.GrantRemediator(e.t.Context(), namespace, "remediator", rules...); err != nil {
		e.t.Fatalf("%v", err)
	}
}

// GrantRemediatorCluster gives the remediator's ServiceAccount rules in every
// namespace (a ClusterRole and binding named after the test, removed at
// cleanup). Prefer GrantRemediator with a fresh namespace.
func (e *Env) GrantRemediatorCluster(rules ...rbacv1.PolicyRule) {
	e.t.Helper()
	name := "remediator-test-" + e.slug(30) + "-" + randomToken()[:6]
	if err := e.bed.GrantRemediatorCluster(e.t.Context(), name, rules...); err != nil {
		e.t.Fatalf("%v", err)
	}
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := e.bed.RevokeRemediatorCluster(ctx, name); err != nil {
			e.t.Errorf("testbed: %v", err)
		}
	})
}

// PostgresDSN creates a fresh database for the test and returns its DSN.
func (e *Env) PostgresDSN() string {
	e.t.Helper()
	name := strings.ReplaceAll(e.slug(40), "-", "_") + "_" + randomToken()[:8]
	if name[0] >= '0' && name[0] <= '9' {
		name = "t" + name
	}
	dsn, err := e.bed.CreateDatabase(e.t.Context(), name)
	if err != nil {
		e.t.Fatalf("%v", err)
	}
	return dsn
}

// ApplyDemo applies deploy/demo into namespace and waits for the rollout.
func (e *Env) ApplyDemo(namespace string) {
	e.t.Helper()
	if err := ApplyDemo(e.t.Context(), e.AdminConfig(), namespace); err != nil {
		e.t.Fatalf("%v", err)
	}
}

// SetPodLogs makes pods/log of namespace/pod return records (see Bed.SetPodLogs).
func (e *Env) SetPodLogs(namespace, pod string, records ...LogRecord) {
	e.t.Helper()
	if err := e.bed.SetPodLogs(e.t.Context(), namespace, pod, records); err != nil {
		e.t.Fatalf("testbed: %v", err)
	}
}

// StartAlertmanager starts an Alertmanager for the test (Dir defaults to a
// temp dir); it is stopped at cleanup.
func (e *Env) StartAlertmanager(o AlertmanagerOptions) *Alertmanager {
	e.t.Helper()
	return StartTestAlertmanager(e.t, o)
}

// StartTestAlertmanager is StartAlertmanager for a test that needs no
// Kubernetes bed: it does not skip in -short mode by itself.
func StartTestAlertmanager(t testing.TB, o AlertmanagerOptions) *Alertmanager {
	t.Helper()
	if o.Dir == "" {
		o.Dir = filepath.Join(t.TempDir(), "alertmanager")
	}
	o.KillWithParent = true
	am, err := StartAlertmanager(t.Context(), o)
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() {
		if err := am.Stop(); err != nil {
			t.Errorf("testbed: stopping alertmanager: %v", err)
		}
		if t.Failed() {
			t.Logf("alertmanager log (%s):\n%s", am.LogFile, tailFile(am.LogFile, 30))
		}
	})
	return am
}
