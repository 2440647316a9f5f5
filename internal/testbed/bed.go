package testbed

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Fixed names inside every bed.
const (
	RemediatorNamespace      = "remediator-system"
	RemediatorServiceAccount = "remediator"
	NodeName                 = "kwok-node-0"
	StateFileName            = "state.json"
	ServiceClusterIPRange    = "10.96.0.0/16"
	adminUser                = "testbed-admin"
)

// Options configure Up.
type Options struct {
	// Dir holds everything of the bed: certs, etcd data, logs, kubeconfigs,
	// state.json. Created if missing; an existing bed's data in it is replaced.
	// With Postgres, Dir is made world-searchable (0755) so the postgres user
	// reaches <Dir>/postgres.
	Dir string
	// BinDir holds etcd, kube-*, kwok and the kwok YAMLs; default DefaultBinDir().
	BinDir string
	// Postgres also starts a PostgreSQL server (internal/testbed/pgserver).
	Postgres bool
	// KillWithParent makes the kernel kill the bed's processes when the
	// process that started them dies (tests). Off for a long-lived CLI bed.
	KillWithParent bool
	// StartTimeout bounds each readiness wait; default 90s.
	StartTimeout time.Duration
	// Logf receives progress lines; nil discards them.
	Logf func(format string, args ...any)
}

// ProcessState records one process of the bed.
type ProcessState struct {
	Name string `json:"name"`
	PID  int    `json:"pid"`
	Exe  string `json:"exe"`
	Log  string `json:"log"`
}

// State describes a running bed; it is written to <Dir>/state.json so other
// processes can Attach.
type State struct {
	Dir                  string         `json:"dir"`
	APIServerURL         string         `json:"apiServerURL"`
	CAFile               string         `json:"caFile"`
	AdminToken           string         `json:"adminToken"`
	AdminKubeconfig      string         `json:"adminKubeconfig"`
	RemediatorKubeconfig string         `json:"remediatorKubeconfig"`
	RemediatorToken      string         `json:"remediatorToken"`
	RemediatorNamespace  string         `json:"remediatorNamespace"`
	RemediatorSA         string         `json:"remediatorServiceAccount"`
	NodeName             string         `json:"nodeName"`
	EtcdURL              string         `json:"etcdURL"`
	KwokServerAddress    string         `json:"kwokServerAddress"`
	PodLogsDir           string         `json:"podLogsDir"`
	DefaultPodLogFile    string         `json:"defaultPodLogFile"`
	PostgresDSN          string         `json:"postgresDSN,omitempty"`
	PostgresDir          string         `json:"postgresDir,omitempty"`
	OwnerPID             int            `json:"ownerPID"`
	Processes            []ProcessState `json:"processes"`
	StartedAt            time.Time      `json:"startedAt"`
	StartupSeconds       float64        `json:"startupSeconds"`
}

// Bed is a running control plane (started by Up) or a handle on one started
// by another process (Attach).
type Bed struct {
	state    State
	attached bool
	procs    []*proc
	pg       postgresServer
	logf     func(string, ...any)

	stopOnce sync.Once
	stopErr  error
}

// State returns a copy of the bed's state.
func (b *Bed) State() State { return b.state }

// StateFile is the path of the bed's state.json.
func (b *Bed) StateFile() string { return filepath.Join(b.state.Dir, StateFileName) }

// Attached reports whether the bed belongs to another process.
func (b *Bed) Attached() bool { return b.attached }

// AdminConfig is a cluster-admin (system:masters) rest.Config.
func (b *Bed) AdminConfig() *rest.Config {
	return b.restConfig(b.state.AdminToken, "testbed-admin")
}

// RemediatorConfig authenticates as the ServiceAccount
// remediator-system/remediator; it can do only what RBAC grants that account.
func (b *Bed) RemediatorConfig() *rest.Config {
	return b.restConfig(b.state.RemediatorToken, "remediator")
}

func (b *Bed) restConfig(token, agent string) *rest.Config {
	return &rest.Config{
		Host:            b.state.APIServerURL,
		BearerToken:     token,
		TLSClientConfig: rest.TLSClientConfig{CAFile: b.state.CAFile},
		QPS:             100,
		Burst:           200,
		UserAgent:       "remediator-testbed/" + agent,
	}
}

// AdminClient is a typed clientset for AdminConfig.
func (b *Bed) AdminClient() (kubernetes.Interface, error) {
	return kubernetes.NewForConfig(b.AdminConfig())
}

// RemediatorClient is a typed clientset for RemediatorConfig.
func (b *Bed) RemediatorClient() (kubernetes.Interface, error) {
	return kubernetes.NewForConfig(b.RemediatorConfig())
}

func (o *Options) defaults() error {
	if o.Dir == "" {
		return errors.New("testbed: Options.Dir is required")
	}
	d, err := filepath.Abs(o.Dir)
	if err != nil {
		return err
	}
	o.Dir = d
	if o.BinDir == "" {
		if o.BinDir, err = DefaultBinDir(); err != nil {
			return err
		}
	}
	if o.StartTimeout == 0 {
		o.StartTimeout = 90 * time.Second
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	return nil
}

// Up starts etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
// kwok with one Ready node, and (with Options.Postgres) PostgreSQL, all on
// free loopback ports, and writes the kubeconfigs and state.json into Dir.
// On error everything started so far is stopped again. A start that lost a
// race for its free ports ("address already in use") is retried with new ports.
func Up(ctx context.Context, opts Options) (*Bed, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		b, err := up(ctx, opts)
		if err == nil || attempt == 3 || !strings.Contains(err.Error(), "address already in use") {
			return b, err
		}
		opts.Logf("[testbed] port taken by another process, retrying: %v", err)
	}
}

func up(ctx context.Context, opts Options) (_ *Bed, err error) {
	start := time.Now()
	logf := func(format string, args ...any) {
		opts.Logf("[testbed %5.1fs] "+format, append([]any{time.Since(start).Seconds()}, args...)...)
	}
	dir := opts.Dir
	if old, err := readState(filepath.Join(dir, StateFileName)); err == nil && old.running() {
		return nil, fmt.Errorf("testbed: a bed is still running in %s (owner pid %d); stop it first", dir, old.OwnerPID)
	}
	for _, sub := range []string{"etcd", "logs", "certs", "pod-logs", "postgres", "kwok"} {
		if sub == "etcd" || sub == "postgres" {
			if err := os.RemoveAll(filepath.Join(dir, sub)); err != nil {
				return nil, err
			}
		}
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return nil, err
		}
	}
	_ = os.Remove(filepath.Join(dir, StateFileName))
	if opts.Postgres {
		// PostgreSQL runs as the "postgres" user when we are root; it must be
		// able to reach its directory below Dir (os.MkdirTemp makes 0700).
		if err := os.Chmod(dir, 0o755); err != nil {
			return nil, err
		}
	}
	for _, bin := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "kwok-stages.yaml", "kwok-crd-logs.yaml"} {
		if _, err := os.Stat(filepath.Join(opts.BinDir, bin)); err != nil {
			return nil, fmt.Errorf("testbed: %s missing in %s: run hack/testbed/build.sh", bin, opts.BinDir)
		}
	}

	b := &Bed{logf: logf}
	defer func() {
		if err != nil {
			_ = b.stop()
		}
	}()

	// PostgreSQL starts in parallel with the control plane.
	type pgResult struct {
		srv postgresServer
		err error
	}
	pgDone := make(chan pgResult, 1)
	if opts.Postgres {
		go func() {
			srv, err := startPostgres(ctx, filepath.Join(dir, "postgres"))
			pgDone <- pgResult{srv, err}
		}()
	}

	certs, err := writeCerts(filepath.Join(dir, "certs"))
	if err != nil {
		return nil, fmt.Errorf("testbed: certificates: %w", err)
	}
	adminToken := randomToken()
	tokenFile := filepath.Join(dir, "certs", "tokens.csv")
	if err := os.WriteFile(tokenFile, []byte(adminToken+","+adminUser+",testbed-admin-uid,\"system:masters\"\n"), 0o600); err != nil {
		return nil, err
	}
	ports, err := freePorts(4)
	if err != nil {
		return nil, err
	}
	etcdPort, etcdPeerPort, apiPort, kwokPort := ports[0], ports[1], ports[2], ports[3]
	b.state = State{
		Dir:                  dir,
		APIServerURL:         "https://127.0.0.1:" + strconv.Itoa(apiPort),
		CAFile:               certs.CA,
		AdminToken:           adminToken,
		AdminKubeconfig:      filepath.Join(dir, "admin.kubeconfig"),
		RemediatorKubeconfig: filepath.Join(dir, "remediator.kubeconfig"),
		RemediatorNamespace:  RemediatorNamespace,
		RemediatorSA:         RemediatorServiceAccount,
		NodeName:             NodeName,
		EtcdURL:              "http://127.0.0.1:" + strconv.Itoa(etcdPort),
		KwokServerAddress:    "127.0.0.1:" + strconv.Itoa(kwokPort),
		PodLogsDir:           filepath.Join(dir, "pod-logs"),
		DefaultPodLogFile:    filepath.Join(dir, "pod-logs", "default.log"),
		OwnerPID:             os.Getpid(),
		StartedAt:            start.UTC(),
	}
	st := &b.state
	if err := writeKubeconfig(st.AdminKubeconfig, st.APIServerURL, st.CAFile, adminUser, adminToken); err != nil {
		return nil, err
	}
	run := func(name string, args ...string) (*proc, error) {
		bin := filepath.Join(opts.BinDir, name)
		p, err := startProc(name, bin, args, filepath.Join(dir, "logs", name+".log"), opts.KillWithParent)
		if err != nil {
			return nil, err
		}
		b.procs = append(b.procs, p)
		st.Processes = append(st.Processes, ProcessState{Name: name, PID: p.pid(), Exe: bin, Log: p.logPath})
		return p, nil
	}
	httpc := &http.Client{Timeout: 2 * time.Second}

	// etcd
	logf("starting etcd on %s", st.EtcdURL)
	etcd, err := run("etcd",
		"--name=testbed",
		"--data-dir="+filepath.Join(dir, "etcd"),
		"--listen-client-urls="+st.EtcdURL,
		"--advertise-client-urls="+st.EtcdURL,
		"--listen-peer-urls=http://127.0.0.1:"+strconv.Itoa(etcdPeerPort),
		"--initial-advertise-peer-urls=http://127.0.0.1:"+strconv.Itoa(etcdPeerPort),
		"--initial-cluster=testbed=http://127.0.0.1:"+strconv.Itoa(etcdPeerPort),
		"--unsafe-no-fsync=true",
		"--quota-backend-bytes=2147483648",
		"--log-level=warn",
	)
	if err != nil {
		return nil, err
	}
	if err := pollUntil(ctx, opts.StartTimeout, []*proc{etcd}, func(ctx context.Context) (bool, error) {
		return httpOK(ctx, httpc, st.EtcdURL+"/health", "")
	}); err != nil {
		return nil, etcd.failure(fmt.Errorf("not healthy: %w", err))
	}
	logf("etcd healthy")

	// kube-apiserver
	logf("starting kube-apiserver on %s", st.APIServerURL)
	api, err := run("kube-apiserver",
		"--etcd-servers="+st.EtcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port="+strconv.Itoa(apiPort),
		"--cert-dir="+filepath.Join(dir, "certs"),
		"--tls-cert-file="+certs.ServerCert,
		"--tls-private-key-file="+certs.ServerKey,
		"--token-auth-file="+tokenFile,
		"--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+certs.SAPub,
		"--service-account-signing-key-file="+certs.SAKey,
		"--service-cluster-ip-range="+ServiceClusterIPRange,
		"--allow-privileged=true",
		"--endpoint-reconciler-type=none",
		"--profiling=false",
		"--v=1",
	)
	if err != nil {
		return nil, err
	}
	caPool := x509.NewCertPool()
	if pem, err := os.ReadFile(certs.CA); err != nil || !caPool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("testbed: reading CA %s: %v", certs.CA, err)
	}
	tlsc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: caPool}}}
	defer tlsc.CloseIdleConnections()
	if err := pollUntil(ctx, opts.StartTimeout, []*proc{etcd, api}, func(ctx context.Context) (bool, error) {
		return httpOK(ctx, tlsc, st.APIServerURL+"/readyz", adminToken)
	}); err != nil {
		return nil, api.failure(fmt.Errorf("not ready: %w", err))
	}
	logf("kube-apiserver ready")

	admin, err := b.AdminClient()
	if err != nil {
		return nil, err
	}

	// controller-manager and scheduler do not need the CRD; start them now.
	cm, err := run("kube-controller-manager",
		"--kubeconfig="+st.AdminKubeconfig,
		"--leader-elect=false",
		"--controllers=*,-nodeipam,-nodelifecycle,-serviceaccount-token",
		"--service-account-private-key-file="+certs.SAKey,
		"--root-ca-file="+certs.CA,
		"--bind-address=127.0.0.1",
		"--secure-port=0",
		"--concurrent-deployment-syncs=10",
		"--concurrent-replicaset-syncs=10",
		"--v=1",
	)
	if err != nil {
		return nil, err
	}
	sched, err := run("kube-scheduler",
		"--kubeconfig="+st.AdminKubeconfig,
		"--leader-elect=false",
		"--bind-address=127.0.0.1",
		"--secure-port=0",
		"--v=1",
	)
	if err != nil {
		return nil, err
	}

	if err := installKwokLogsCRD(ctx, b.AdminConfig(), filepath.Join(opts.BinDir, "kwok-crd-logs.yaml"), opts.StartTimeout); err != nil {
		return nil, api.failure(fmt.Errorf("installing kwok Logs CRD: %w", err))
	}
	if err := os.WriteFile(st.DefaultPodLogFile, nil, 0o644); err != nil {
		return nil, err
	}
	kwokCfg := filepath.Join(dir, "kwok", "cluster-logs.yaml")
	if err := writeKwokLogsConfig(kwokCfg, st.DefaultPodLogFile); err != nil {
		return nil, err
	}
	logf("starting kwok (kubelet server on %s)", st.KwokServerAddress)
	kwok, err := run("kwok",
		"--kubeconfig="+st.AdminKubeconfig,
		"--config="+filepath.Join(opts.BinDir, "kwok-stages.yaml"),
		"--config="+kwokCfg,
		"--enable-crds=Logs",
		"--manage-all-nodes=true",
		"--cidr=10.0.0.1/24",
		"--node-ip=127.0.0.1",
		"--node-port="+strconv.Itoa(kwokPort),
		"--server-address="+st.KwokServerAddress,
	)
	if err != nil {
		return nil, err
	}
	all := []*proc{etcd, api, cm, sched, kwok}
	if err := createNode(ctx, admin, NodeName); err != nil {
		return nil, err
	}
	if err := pollUntil(ctx, opts.StartTimeout, all, func(ctx context.Context) (bool, error) {
		return nodeReady(ctx, admin, NodeName)
	}); err != nil {
		return nil, kwok.failure(fmt.Errorf("node %s not Ready: %w", NodeName, err))
	}
	if err := removeNotReadyTaint(ctx, admin, NodeName); err != nil {
		return nil, err
	}
	logf("node %s Ready", NodeName)

	tok, err := setupRemediatorIdentity(ctx, admin, opts.StartTimeout)
	if err != nil {
		return nil, cm.failure(err)
	}
	st.RemediatorToken = tok
	if err := writeKubeconfig(st.RemediatorKubeconfig, st.APIServerURL, st.CAFile,
		"system:serviceaccount:"+RemediatorNamespace+":"+RemediatorServiceAccount, tok); err != nil {
		return nil, err
	}
	if err := pollUntil(ctx, opts.StartTimeout, all, func(ctx context.Context) (bool, error) {
		return serviceAccountExists(ctx, admin, "default", "default")
	}); err != nil {
		return nil, cm.failure(fmt.Errorf("default ServiceAccount never appeared: %w", err))
	}

	if opts.Postgres {
		r := <-pgDone
		if r.err != nil {
			return nil, fmt.Errorf("testbed: postgres: %w", r.err)
		}
		b.pg = r.srv
		st.PostgresDSN = r.srv.DSN()
		st.PostgresDir = filepath.Join(dir, "postgres")
		if d, ok := r.srv.(interface{ Dir() string }); ok {
			st.PostgresDir = d.Dir()
		}
		logf("postgres ready")
	}
	st.StartupSeconds = time.Since(start).Seconds()
	if err := writeState(b.StateFile(), b.state); err != nil {
		return nil, err
	}
	logf("bed up in %.1fs; state %s", st.StartupSeconds, b.StateFile())
	return b, nil
}

// Down stops every process the bed started, waiting for each to exit (the
// kube-apiserver takes seconds to release its port), and PostgreSQL. On an
// attached bed Down does nothing: the owner stops it.
func (b *Bed) Down() error {
	if b == nil || b.attached {
		return nil
	}
	return b.stop()
}

func (b *Bed) stop() error {
	b.stopOnce.Do(func() {
		var errs []error
		byName := map[string]*proc{}
		for _, p := range b.procs {
			byName[p.name] = p
		}
		// Clients first, then the API server, then etcd.
		for _, group := range [][]string{{"kwok", "kube-scheduler", "kube-controller-manager"}, {"kube-apiserver"}, {"etcd"}} {
			var wg sync.WaitGroup
			var mu sync.Mutex
			for _, n := range group {
				p := byName[n]
				if p == nil {
					continue
				}
				wg.Go(func() {
					if err := p.stop(30 * time.Second); err != nil {
						mu.Lock()
						errs = append(errs, err)
						mu.Unlock()
					}
				})
			}
			wg.Wait()
		}
		if b.pg != nil {
			if err := b.pg.Stop(); err != nil {
				errs = append(errs, fmt.Errorf("postgres: %w", err))
			}
		}
		if b.state.Dir != "" {
			_ = os.Remove(b.StateFile())
		}
		b.stopErr = errors.Join(errs...)
	})
	return b.stopErr
}

// Attach returns a handle on a bed started by another process, read from its
// state file. The handle's Down does nothing.
func Attach(stateFile string) (*Bed, error) {
	st, err := readState(stateFile)
	if err != nil {
		return nil, err
	}
	if !st.running() {
		return nil, fmt.Errorf("testbed: the bed in %s is not running (owner pid %d gone)", stateFile, st.OwnerPID)
	}
	return &Bed{state: st, attached: true, logf: func(string, ...any) {}}, nil
}

// StopFromState stops a bed started by another process: it signals the owner
// (a `testbed up` process) and waits for it, then makes sure every recorded
// process and PostgreSQL are gone. Missing state file: nothing to do.
func StopFromState(stateFile string, grace time.Duration) error {
	st, err := readState(stateFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	if st.OwnerPID != os.Getpid() {
		if err := stopPID(st.OwnerPID, "", grace); err != nil {
			errs = append(errs, err)
		}
	}
	// Whatever the owner did not stop (it may have crashed): children in
	// reverse start order.
	for i := len(st.Processes) - 1; i >= 0; i-- {
		p := st.Processes[i]
		if err := stopPID(p.PID, p.Exe, grace); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p.Name, err))
		}
	}
	if st.PostgresDir != "" {
		if err := stopPostgresDir(st.PostgresDir, grace); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		_ = os.Remove(stateFile)
	}
	return errors.Join(errs...)
}

func (s State) running() bool {
	if !pidAlive(s.OwnerPID) {
		return false
	}
	for _, p := range s.Processes {
		if p.Name == "kube-apiserver" && !pidRuns(p.PID, p.Exe) {
			return false
		}
	}
	return true
}

func writeState(path string, st State) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func readState(path string) (State, error) {
	var st State
	b, err := os.ReadFile(path)
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("testbed: state file %s: %w", path, err)
	}
	return st, nil
}
