// Package leader makes one replica of the service the one that acts. Every
// replica accepts and stores webhooks; only the holder of a
// coordination.k8s.io Lease (client-go leaderelection) runs the worker that
// plans and changes the cluster. Losing the Lease cancels the worker's
// context at once; jobs it was running are given up and their store leases
// expire, so the next leader takes them and reconciles any intent without
// outcome by reading the cluster (see internal/executor).
package leader

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// Config of the election. Durations follow kube-controller-manager's
// defaults (15s/10s/2s) when zero.
type Config struct {
	Namespace, Name string // the Lease
	Identity        string // this replica, unique
	LeaseDuration   time.Duration
	RenewDeadline   time.Duration
	RetryPeriod     time.Duration
}

// Elector runs a function while this replica leads.
type Elector struct {
	cfg    Config
	kube   kubernetes.Interface
	log    *zap.Logger
	leader atomic.Bool
	gauge  prometheus.Gauge
}

// New makes an elector; reg (may be nil) gets remediator_leader.
func New(cfg Config, kube kubernetes.Interface, reg prometheus.Registerer, log *zap.Logger) (*Elector, error) {
	if cfg.Namespace == "" || cfg.Name == "" || cfg.Identity == "" {
		return nil, fmt.Errorf("leader election: namespace, name and identity are required")
	}
	if kube == nil {
		return nil, fmt.Errorf("leader election needs a Kubernetes client")
	}
	if cfg.LeaseDuration == 0 {
		cfg.LeaseDuration = 15 * time.Second
	}
	if cfg.RenewDeadline == 0 {
		cfg.RenewDeadline = 10 * time.Second
	}
	if cfg.RetryPeriod == 0 {
		cfg.RetryPeriod = 2 * time.Second
	}
	if log == nil {
		log = zap.NewNop()
	}
	e := &Elector{cfg: cfg, kube: kube, log: log, gauge: Gauge(reg)}
	return e, nil
}

// Gauge registers remediator_leader on reg (nil: unregistered).
func Gauge(reg prometheus.Registerer) prometheus.Gauge {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "remediator_leader",
		Help: "1 when this replica holds the leader Lease and executes actions, else 0.",
	})
	if reg != nil {
		reg.MustRegister(g)
	}
	return g
}

// IsLeader reports whether this replica leads now.
func (e *Elector) IsLeader() bool { return e.leader.Load() }

// Run campaigns until ctx ends; while leading it runs lead with a context
// cancelled when leadership is lost. After a loss it campaigns again.
func (e *Elector) Run(ctx context.Context, lead func(ctx context.Context)) {
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: e.cfg.Namespace, Name: e.cfg.Name},
		Client:     e.kube.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: e.cfg.Identity},
	}
	for ctx.Err() == nil {
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock:            lock,
			LeaseDuration:   e.cfg.LeaseDuration,
			RenewDeadline:   e.cfg.RenewDeadline,
			RetryPeriod:     e.cfg.RetryPeriod,
			ReleaseOnCancel: true,
			Name:            e.cfg.Name,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(lctx context.Context) {
					e.leader.Store(true)
					e.gauge.Set(1)
					e.log.Info("leading: this replica executes actions", zap.String("identity", e.cfg.Identity))
					lead(lctx)
				},
				OnStoppedLeading: func() {
					e.leader.Store(false)
					e.gauge.Set(0)
					e.log.Info("not leading: this replica only accepts webhooks", zap.String("identity", e.cfg.Identity))
				},
				OnNewLeader: func(id string) {
					if id != e.cfg.Identity {
						e.log.Info("leader elected", zap.String("leader", id))
					}
				},
			},
		})
		if err != nil {
			e.log.Error("leader election misconfigured", zap.Error(err))
			return
		}
		le.Run(ctx)
		select {
		case <-ctx.Done():
		case <-time.After(e.cfg.RetryPeriod):
		}
	}
}
