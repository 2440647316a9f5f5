package main

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The operator API through the real binary, in enforce mode: bad bodies
// are 400 with a JSON error; the pause switch blocks a firing alert (guard
// pause, on the timeline) and nothing changes on the cluster; resume and
// pause survive restarts (the second one a kill -9).
func TestControlPauseAndValidation(t *testing.T) {
	serveBinary(t)
	t.Parallel()
	target := newDemoTarget(t)
	r := newReplica(t, "serve", serveConfig{
		Store:      "sqlite://" + filepath.Join(t.TempDir(), "r.db"),
		Kubeconfig: target.kubeconfig,
		Namespaces: []string{target.ns},
	})
	r.start()
	requirePause(t, r, false, "", "")

	now := time.Now().UTC()
	bad := []struct {
		name, path, body, want string
	}{
		{"pause without by", "/api/v1/pause", `{"reason":"incident review"}`, `"by" is required`},
		{"pause blank by", "/api/v1/pause", `{"by":"  "}`, `"by" is required`},
		{"pause unknown field", "/api/v1/pause", `{"by":"alice","reson":"typo"}`, `unknown field "reson"`},
		{"pause not JSON", "/api/v1/pause", `by=alice`, "invalid JSON body"},
		{"resume without by", "/api/v1/resume", `{}`, `"by" is required`},
		{"maintenance end before start", "/api/v1/maintenance",
			`{"by":"alice","start":"` + now.Add(2*time.Hour).Format(time.RFC3339) + `","end":"` + now.Add(time.Hour).Format(time.RFC3339) + `"}`,
			`"end" must be after "start"`},
		{"maintenance without end", "/api/v1/maintenance", `{"by":"alice"}`, `"end" is required`},
		{"maintenance without by", "/api/v1/maintenance", `{"end":"` + now.Add(time.Hour).Format(time.RFC3339) + `"}`, `"by" is required`},
		{"maintenance unknown field", "/api/v1/maintenance", `{"by":"alice","end":"` + now.Add(time.Hour).Format(time.RFC3339) + `","namespace":"x"}`, `unknown field "namespace"`},
		{"approve without by", "/api/v1/incidents/x/approve", `{"reason":"ok"}`, `"by" is required`},
	}
	for _, tt := range bad {
		code, m := r.do(http.MethodPost, tt.path, tt.body)
		msg, _ := m["error"].(string)
		if code != http.StatusBadRequest || !strings.Contains(msg, tt.want) {
			t.Errorf("%s: %d %v, want 400 with error containing %q", tt.name, code, m, tt.want)
		}
	}
	requirePause(t, r, false, "", "")
	if _, m := r.do(http.MethodGet, "/api/v1/maintenance", nil); len(m["windows"].([]any)) != 0 {
		t.Errorf("a bad request created a window: %v", m)
	}

	code, m := r.do(http.MethodPost, "/api/v1/pause", map[string]string{"by": "alice", "reason": "incident review"})
	if code != http.StatusOK || m["paused"] != true || m["by"] != "alice" {
		t.Fatalf("pause: %d %v", code, m)
	}
	requirePause(t, r, true, "alice", "incident review")

	r.fire(firingBody(target.ns, "HighErrorRate", time.Now().Add(-time.Minute)))
	id := r.onlyIncident()
	tl := r.waitTimeline(id, 30*time.Second, "blocked and escalated", func(tl timeline) bool {
		return tl.count("escalated") > 0 || tl.count("applied") > 0
	})
	blocked, bi := tl.first("blocked")
	var det struct{ Guard string }
	if bi >= 0 {
		_ = json.Unmarshal(blocked.Details, &det)
	}
	if bi < 0 || det.Guard != "pause" || tl.count("blocked") != 1 || !strings.Contains(blocked.Reason, "alice") {
		t.Errorf("want one blocked event by guard pause naming alice; timeline:%s", tl)
	}
	if tl.count("intent") != 0 || tl.count("applied") != 0 {
		t.Errorf("acted while paused; timeline:%s", tl)
	}
	target.requireUnchanged(t)

	code, m = r.do(http.MethodPost, "/api/v1/resume", map[string]string{"by": "alice", "reason": "review done"})
	if code != http.StatusOK || m["paused"] != false {
		t.Fatalf("resume: %d %v", code, m)
	}
	requirePause(t, r, false, "alice", "review done")

	r.stop()
	r.start()
	requirePause(t, r, false, "alice", "review done")

	if code, m := r.do(http.MethodPost, "/api/v1/pause", map[string]string{"by": "carol", "reason": "change freeze"}); code != http.StatusOK {
		t.Fatalf("pause: %d %v", code, m)
	}
	r.kill9()
	r.start()
	requirePause(t, r, true, "carol", "change freeze")
	t.Logf("timeline of the paused incident:%s", tl)
}

func requirePause(t *testing.T, r *replica, paused bool, by, reason string) {
	t.Helper()
	code, m := r.do(http.MethodGet, "/api/v1/pause", nil)
	if code != http.StatusOK || m["paused"] != paused || m["by"] != by || m["reason"] != reason {
		t.Errorf("GET /api/v1/pause: %d %v, want paused=%v by=%q reason=%q", code, m, paused, by, reason)
	}
}

// Approval through the binary, in dry-run: the plan is only proposed; an
// approval by bob executes it (the guards run again) with bob as the actor;
// approving again is 409; an incident without a proposal is 404.
func TestControlApproveReject(t *testing.T) {
	serveBinary(t)
	t.Parallel()
	target := newDemoTarget(t)
	r := newReplica(t, "serve", serveConfig{
		Store:      "sqlite://" + filepath.Join(t.TempDir(), "r.db"),
		Mode:       "dry-run",
		Kubeconfig: target.kubeconfig,
		Namespaces: []string{target.ns},
	})
	r.start()

	// An alert no policy matches: an incident without a proposal.
	r.fire(firingBody(target.ns, "SomethingElse", time.Now().Add(-time.Minute)))
	other := r.onlyIncident()
	r.waitTimeline(other, 20*time.Second, "unmatched", has("unmatched"))

	r.fire(firingBody(target.ns, "HighErrorRate", time.Now().Add(-time.Minute)))
	var id string
	for _, i := range r.incidents() {
		if i != other {
			id = i
		}
	}
	if id == "" {
		t.Fatal("no HighErrorRate incident")
	}
	tl := r.waitTimeline(id, 20*time.Second, "proposal", func(tl timeline) bool {
		return tl.count("proposed") > 0 || tl.count("escalated") > 0
	})
	prop, pi := tl.first("proposed")
	if pi < 0 || !strings.Contains(prop.Reason, "dry-run") || !strings.Contains(prop.Reason, "rollback deployment "+target.ns+"/platform-service revision 2 → 1") ||
		!strings.Contains(prop.Reason, "/api/v1/incidents/"+id+"/approve") {
		t.Fatalf("want a dry-run rollback proposal; timeline:%s", tl)
	}
	if tl.count("intent") != 0 || tl.count("applied") != 0 {
		t.Fatalf("dry-run acted; timeline:%s", tl)
	}
	target.requireUnchanged(t)

	for _, tt := range []struct{ name, path string }{
		{"incident without proposal", "/api/v1/incidents/" + other + "/approve"},
		{"reject incident without proposal", "/api/v1/incidents/" + other + "/reject"},
		{"no such incident", "/api/v1/incidents/no-such-incident/approve"},
	} {
		code, m := r.do(http.MethodPost, tt.path, map[string]string{"by": "bob"})
		if code != http.StatusNotFound || m["error"] == nil {
			t.Errorf("%s: %d %v, want 404 with an error", tt.name, code, m)
		}
	}

	code, m := r.do(http.MethodPost, "/api/v1/incidents/"+id+"/approve", map[string]string{"by": "bob", "reason": "rollback looks right"})
	if code != http.StatusOK {
		t.Fatalf("approve: %d %v", code, m)
	}
	if p, _ := m["proposal"].(map[string]any); p == nil || !strings.EqualFold(asString(p, "state"), "approved") {
		t.Errorf("approve answered %v, want the approved proposal", m)
	}
	tl = r.waitTimeline(id, 30*time.Second, "applied rollout", func(tl timeline) bool {
		return tl.count("rollout-complete") > 0 || tl.count("failed") > 0 || tl.count("escalated") > 0 || tl.count("blocked") > 0
	})
	appr, ai := tl.first("approved")
	app, pi2 := tl.first("applied")
	switch {
	case ai < 0 || appr.Actor != "bob":
		t.Errorf("want an approved event by bob; timeline:%s", tl)
	case pi2 < 0 || app.Actor != "bob" || pi2 < ai:
		t.Errorf("want an applied event with actor bob after the approval; timeline:%s", tl)
	case tl.count("applied") != 1 || tl.count("intent") != 1:
		t.Errorf("want exactly one intent and one applied; timeline:%s", tl)
	}
	target.requireRolledBackOnce(t)

	for _, path := range []string{"/approve", "/reject"} {
		code, m := r.do(http.MethodPost, "/api/v1/incidents/"+id+path, map[string]string{"by": "bob"})
		if code != http.StatusConflict || m["error"] == nil {
			t.Errorf("%s again: %d %v, want 409 with an error", path, code, m)
		}
	}
	target.requireRolledBackOnce(t)
	t.Logf("timeline:%s\ncluster: %s", tl, target.state(t))
}

func asString(m map[string]any, k string) string {
	for key, v := range m {
		if strings.EqualFold(key, k) {
			s, _ := v.(string)
			return s
		}
	}
	return ""
}
