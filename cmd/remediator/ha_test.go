package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Two replicas of the real binary on one PostgreSQL store, with leader
// election on a coordination.k8s.io Lease in the test namespace:
//   - exactly one leads (/readyz "leader", remediator_leader, the Lease's
//     holder); the same notification posted to both replicas at once (two
//     Alertmanagers in HA) makes one incident and one rollback;
//   - the leader killed with kill -9 right after Apply, before the outcome:
//     the other replica takes the Lease, re-claims the job when its store
//     lease ends, reconciles the intent from the cluster — still exactly
//     one change.
func TestTwoReplicasLeaderElection(t *testing.T) {
	serveBinary(t)

	t.Run("concurrent webhooks", func(t *testing.T) {
		t.Parallel()
		target := newDemoTarget(t, leaseRules...)
		dsn := target.env.PostgresDSN()
		a := newReplica(t, "replica-a", haConfig(target, dsn, "replica-a"))
		b := newReplica(t, "replica-b", haConfig(target, dsn, "replica-b"))
		a.start()
		b.start()
		lead, follow := waitOneLeader(t, 20*time.Second, a, b)
		if g, f := lead.leaderGauge(), follow.leaderGauge(); g != "1" || f != "0" {
			t.Errorf("remediator_leader: %s=%s %s=%s, want 1 and 0", lead.name, g, follow.name, f)
		}
		target.requireLeaseHolder(t, lead.name)

		body := firingBody(target.ns, "HighErrorRate", time.Now().Add(-time.Minute))
		var wg sync.WaitGroup
		res := make([]postResult, 2)
		for i, r := range []*replica{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res[i] = postWebhook(r.base, body)
			}()
		}
		wg.Wait()
		newN, dups := 0, 0
		for i, r := range res {
			if r.err != nil || r.code != http.StatusAccepted {
				t.Fatalf("post to replica %d: %d %v %v", i, r.code, r.body, r.err)
			}
			newN += int(r.body["new"].(float64))
			dups += int(r.body["duplicates"].(float64))
		}
		if newN != 1 || dups != 1 {
			t.Errorf("new %d duplicates %d across both replicas, want 1 and 1: %v", newN, dups, res)
		}
		id := a.onlyIncident()
		if idB := b.onlyIncident(); idB != id {
			t.Fatalf("replicas show different incidents %s and %s", id, idB)
		}
		tl := follow.waitTimeline(id, 45*time.Second, "verified rollout", func(tl timeline) bool {
			return tl.count("rollout-complete") > 0 || tl.count("failed") > 0 || tl.count("escalated") > 0 ||
				tl.count("duplicate-execution-prevented") > 0
		})
		if tl.count("intent") != 1 || tl.count("applied") != 1 || tl.count("duplicate-execution-prevented") != 0 ||
			tl.count("failed") != 0 || tl.count("escalated") != 0 || tl.count("matched") != 1 {
			t.Errorf("want one plan, one intent, one applied; timeline:%s", tl)
		}
		target.requireRolledBackOnce(t)
		// Only the leader's worker ran the job.
		if !strings.Contains(lead.p.out.String(), `"msg":"leading: this replica executes actions"`) ||
			strings.Contains(follow.p.out.String(), `"msg":"leading: this replica executes actions"`) {
			t.Errorf("leadership logs: %s should lead, %s should not", lead.name, follow.name)
		}
		t.Logf("leader %s; timeline:%s\ncluster: %s", lead.name, tl, target.state(t))
	})

	t.Run("leader killed at the crash point", func(t *testing.T) {
		t.Parallel()
		target := newDemoTarget(t, leaseRules...)
		dsn := target.env.PostgresDSN()
		a := newReplica(t, "replica-a", haConfig(target, dsn, "replica-a"))
		b := newReplica(t, "replica-b", haConfig(target, dsn, "replica-b"))
		a.start("REMEDIATOR_TEST_CRASH_AFTER=apply")
		waitLeader(t, a, 20*time.Second)
		b.start()
		if l, _ := b.readyLeader(); l {
			t.Fatalf("replica-b leads while replica-a holds the Lease")
		}

		b.fire(firingBody(target.ns, "HighErrorRate", time.Now().Add(-time.Minute))) // to the follower: the leader's worker polls the shared store
		a.waitLog("crash point reached", 30*time.Second)
		target.requireRolledBackOnce(t) // the change is on the cluster; its outcome is not recorded
		killed := time.Now()
		a.kill9()

		waitLeader(t, b, 30*time.Second)
		took := time.Since(killed)
		if g := b.leaderGauge(); g != "1" {
			t.Errorf("replica-b remediator_leader %s after taking over, want 1", g)
		}
		target.requireLeaseHolder(t, "replica-b")
		id := b.onlyIncident()
		tl := b.waitTimeline(id, 45*time.Second, "reconciliation and verified rollout", func(tl timeline) bool {
			return tl.count("rollout-complete") > 0 || tl.count("failed") > 0 || tl.count("escalated") > 0 ||
				tl.count("duplicate-execution-prevented") > 0
		})
		rec, ri := tl.first("reconciled")
		if ri < 0 || tl.count("reconciled") != 1 || !strings.Contains(rec.Reason, "the change is in effect") {
			t.Errorf("want one reconciled event saying the change is in effect; timeline:%s", tl)
		}
		if tl.count("intent") != 1 || tl.count("applied") != 0 || tl.count("duplicate-execution-prevented") != 0 ||
			tl.count("failed") != 0 || tl.count("escalated") != 0 {
			t.Errorf("want the single intent reconciled, no second apply; timeline:%s", tl)
		}
		target.requireRolledBackOnce(t)
		t.Logf("replica-b led %.1fs after kill -9 of replica-a; timeline:%s\ncluster: %s", took.Seconds(), tl, target.state(t))
	})
}

func haConfig(target *demoTarget, dsn, identity string) serveConfig {
	return serveConfig{Store: dsn, Kubeconfig: target.kubeconfig, Namespaces: []string{target.ns},
		Identity: identity, LeaseNamespace: target.ns}
}

// waitOneLeader waits until exactly one replica reports leadership on
// /readyz, and returns it and the other.
func waitOneLeader(t *testing.T, d time.Duration, a, b *replica) (lead, follow *replica) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		la, _ := a.readyLeader()
		lb, _ := b.readyLeader()
		switch {
		case la && lb:
			t.Fatalf("both replicas report leader")
		case la:
			return a, b
		case lb:
			return b, a
		}
		if time.Now().After(deadline) {
			t.Fatalf("no leader within %s", d)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func waitLeader(t *testing.T, r *replica, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		if l, _ := r.readyLeader(); l {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not lead within %s", r.name, d)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// requireLeaseHolder checks the Lease object on the cluster.
func (d *demoTarget) requireLeaseHolder(t *testing.T, identity string) {
	t.Helper()
	l, err := d.admin.CoordinationV1().Leases(d.ns).Get(context.Background(), "remediator-leader", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity != identity {
		t.Errorf("Lease holder %v, want %s", l.Spec.HolderIdentity, identity)
	}
}

type postResult struct {
	code int
	body map[string]any
	err  error
}

func (p postResult) String() string { return fmt.Sprintf("%d %v %v", p.code, p.body, p.err) }

// postWebhook posts a notification (safe to call from any goroutine).
func postWebhook(base, body string) postResult {
	req, err := http.NewRequest(http.MethodPost, base+"/webhook/alertmanager", bytes.NewReader([]byte(body)))
	if err != nil {
		return postResult{err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+bedToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return postResult{err: err}
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	err = json.Unmarshal(raw, &m)
	return postResult{code: resp.StatusCode, body: m, err: err}
}
