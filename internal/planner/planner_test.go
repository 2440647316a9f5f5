package planner

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/remediator/remediator/internal/action"
	"github.com/remediator/remediator/internal/policy"
	"github.com/remediator/remediator/internal/probe"
	"github.com/remediator/remediator/internal/testbed"
)

func TestMain(m *testing.M) { testbed.Main(m) }

// shippedPolicies loads the shipped policies with their dependency
// endpoints (the runbook's database:5432 and redis:6379) pointed at addr.
func shippedPolicies(t *testing.T, addr string) *policy.Set {
	t.Helper()
	dir := t.TempDir()
	files, err := filepath.Glob(filepath.Join("..", "..", "policies", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no shipped policies: %v", err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		s := strings.NewReplacer("database:5432", addr, "redis:6379", addr).Replace(string(b))
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	set, err := policy.Load(dir, policy.DefaultCatalog())
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// upAddr is a dependency that answers; downAddr one that refuses.
func upAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return ln.Addr().String()
}

func downAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// demoNamespace is a fresh namespace running platform-service, with the
// remediator granted exactly what its probes and actions declare they need.
func demoNamespace(t *testing.T) (*testbed.Env, string) {
	t.Helper()
	env := testbed.Get(t)
	ns := env.NewNamespace()
	env.ApplyDemo(ns)
	var acts []action.Action
	for _, a := range action.New(env.RemediatorClient()) {
		acts = append(acts, a)
	}
	env.GrantRemediator(ns, append(probe.AllRules(), action.Rules(acts...)...)...)
	return env, ns
}

func alert(name, ns string) policy.Alert {
	return policy.Alert{Status: "firing", StartsAt: time.Now().Add(-5 * time.Minute),
		Labels: map[string]string{"alertname": name, "namespace": ns, "deployment": testbed.DemoDeployment, "severity": "critical"}}
}

// The runbook's HighErrorRate branches on a real cluster, through the
// remediator's own least-privilege identity: a bad rollout minutes ago with
// errors in the logs → rollback; the same state with a dependency down →
// escalate and no action.
func TestPlanHighErrorRateOnTheBed(t *testing.T) {
	env, ns := demoNamespace(t)
	ctx := context.Background()
	admin := env.AdminClient()

	// A new image: revision 2, minutes old at most.
	d, err := admin.AppsV1().Deployments(ns).Get(ctx, testbed.DemoDeployment, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	d.Spec.Template.Spec.Containers[0].Image = "registry.example/platform-service:v1.1.0-bad"
	if _, err := admin.AppsV1().Deployments(ns).Update(ctx, d, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := testbed.WaitForRollout(ctx, admin, ns, testbed.DemoDeployment, time.Minute); err != nil {
		t.Fatal(err)
	}
	pods, err := testbed.ReadyPods(ctx, admin, ns, "app="+testbed.DemoDeployment)
	if err != nil || len(pods) == 0 {
		t.Fatalf("pods: %v %d", err, len(pods))
	}
	for _, p := range pods {
		env.SetPodLogs(ns, p.Name,
			testbed.LogRecord{Line: `{"level":"ERROR","msg":"upstream returned 502 for order 1234"}`},
			testbed.LogRecord{Line: `{"level":"ERROR","msg":"upstream returned 502 for order 99"}`},
			testbed.LogRecord{Line: `{"level":"info","msg":"ok","path":"/orders","responseTimeMs":12}`})
	}

	probes := probe.New(probe.Config{Kube: env.RemediatorClient()})
	tests := []struct {
		name, dep, remedy, action string
		priority                  policy.Priority
	}{
		{"recent bad rollout", upAddr(t), "rollback-recent-rollout", "rollback", "P0"},
		// P1: the dependency's outage is its owners' (the policy's first priority rule).
		{"dependency down", downAddr(t), "dependency-down", "escalate", "P1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set := shippedPolicies(t, tt.dep)
			p := &Planner{Policies: func() *policy.Set { return set }, Probes: probes, Kube: env.RemediatorClient(),
				Actions: action.New(env.RemediatorClient())}
			plan, err := p.Plan(ctx, alert("HighErrorRate", ns))
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range plan.Evidence {
				// No metrics.k8s.io and no Prometheus here.
				if r.Err != nil && r.Probe != "resources" && r.ID != "cpuSaturation" {
					t.Errorf("probe %s failed: %v", r.Probe, r.Err)
				}
			}
			d := plan.Decision
			if plan.Policy != "high-error-rate" || d.Remedy != tt.remedy || d.Action != tt.action || d.Priority != tt.priority {
				t.Fatalf("plan %+v decision %+v", plan, d)
			}
			want := "would rollback deployment " + ns + "/platform-service revision 2 → 1"
			if tt.action == "escalate" {
				want = "escalate (P1): remedy dependency-down"
			}
			if got := Summary(plan, "dry-run"); !strings.Contains(got, want) {
				t.Errorf("summary %q, want it to contain %q", got, want)
			}
			if tt.action == "rollback" {
				c := plan.Change
				if c == nil || c.Rollback == nil || c.Rollback.FromRevision != 2 || c.Rollback.ToRevision != 1 || len(plan.Blocks) != 0 ||
					!strings.Contains(c.Summary, "v1.1.0-bad") || !strings.Contains(c.Summary, "v1.0.0") {
					t.Fatalf("change %+v %+v blocks %v error %q", c, c.Rollback, plan.Blocks, plan.ChangeError)
				}
			}
		})
	}
}

// fake is a probe returning fixed evidence.
type fake struct {
	name string
	ev   probe.Evidence
}

func (f fake) Name() string { return f.name }
func (f fake) Run(context.Context, probe.Target, probe.Params) (probe.Evidence, error) {
	return f.ev, nil
}

// Saturation without a recent rollout → scale. The bed serves no
// metrics.k8s.io and its ReplicaSets are seconds old, so this branch uses
// probes with fixed evidence.
func TestPlanSaturationScales(t *testing.T) {
	set := shippedPolicies(t, "127.0.0.1:1")
	probes := map[string]probe.Probe{
		"rolloutHistory": fake{"rolloutHistory", probe.RolloutHistoryEvidence{CurrentRevision: 4, NewestRolloutAge: 3 * time.Hour,
			Revisions: []probe.Revision{{Revision: 4}, {Revision: 3}}}},
		"resources":         fake{"resources", probe.ResourcesEvidence{Available: true, CPUNearLimitPercent: 80}},
		"errorDistribution": fake{"errorDistribution", probe.ErrorDistributionEvidence{Total: 40}},
		"dependencies":      fake{"dependencies", probe.DependenciesEvidence{AllReachable: true}},
	}
	p := &Planner{Policies: func() *policy.Set { return set }, Probes: probes}
	plan, err := p.Plan(context.Background(), alert("HighErrorRate", "prod"))
	if err != nil {
		t.Fatal(err)
	}
	if d := plan.Decision; d.Remedy != "scale-out" || d.Action != "scale" {
		t.Fatalf("decision %+v", d)
	}
}

func TestPlanRefusesBadTargetsAndUnmatched(t *testing.T) {
	set := shippedPolicies(t, "127.0.0.1:1")
	p := &Planner{Policies: func() *policy.Set { return set }, Probes: map[string]probe.Probe{}}
	a := alert("HighErrorRate", "prod")
	a.Labels["deployment"] = "*"
	plan, err := p.Plan(context.Background(), a)
	if err != nil {
		t.Fatal(err)
	}
	if plan.TargetError == "" || plan.Decision.Action != "escalate" || !plan.Decision.Escalated || len(plan.Evidence) != 0 {
		t.Fatalf("wildcard target: %+v %+v", plan, plan.Decision)
	}
	plan, err = p.Plan(context.Background(), alert("Watchdog", "prod"))
	if err != nil || plan.Matched {
		t.Fatalf("Watchdog: %+v %v", plan, err)
	}
	none := &Planner{Policies: func() *policy.Set { return nil }}
	if plan, _ := none.Plan(context.Background(), alert("HighErrorRate", "prod")); plan.Matched || !strings.Contains(plan.Why, "no policies") {
		t.Fatalf("no set: %+v", plan)
	}
	// A policy step whose probe is not configured is recorded, not fatal.
	plan, err = p.Plan(context.Background(), alert("HighErrorRate", "prod"))
	if err != nil || plan.Decision == nil || len(plan.Evidence) != 5 {
		t.Fatalf("unconfigured probes: %+v %v", plan, err)
	}
	for _, r := range plan.Evidence {
		if r.Err == nil || !strings.Contains(r.Err.Error(), "not configured") {
			t.Errorf("%s: %v", r.ID, r.Err)
		}
	}
}
