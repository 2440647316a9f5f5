package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/remediator/remediator/internal/store"
)

// testControl is the real store's pause and windows, with a recorded
// approve/reject path (the executor's is tested in internal/executor).
type testControl struct {
	store.Store
	decisions *[]string
}

func (c *testControl) Decide(_ context.Context, id string, approve bool, by, reason string) (store.Proposal, error) {
	switch id {
	case "none":
		return store.Proposal{}, fmt.Errorf("%w: incident none has no proposal", store.ErrNotFound)
	case "decided":
		return store.Proposal{ID: "p1", State: store.ProposalRejected}, fmt.Errorf("%w: the proposal of incident decided is rejected", store.ErrConflict)
	case "late":
		return store.Proposal{ID: "p2", State: store.ProposalPending}, store.ErrExpired
	}
	*c.decisions = append(*c.decisions, fmt.Sprintf("%s %v %s %s", id, approve, by, reason))
	return store.Proposal{ID: "p0", IncidentID: id, State: map[bool]string{true: store.ProposalApproved, false: store.ProposalRejected}[approve], DecidedBy: by}, nil
}

func TestControlAPI(t *testing.T) {
	f := newFixture(t)
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	past := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	for _, tc := range []struct {
		name, method, path, body string
		auth                     bool
		status                   int
		want                     string // substring of the response
	}{
		{"no credentials", "POST", "/api/v1/pause", `{"by":"alice"}`, false, 401, "credentials"},
		{"pause needs by", "POST", "/api/v1/pause", `{"reason":"x"}`, true, 400, `\"by\" is required`},
		{"unknown field", "POST", "/api/v1/pause", `{"by":"alice","pasued":true}`, true, 400, "unknown field"},
		{"not json", "POST", "/api/v1/pause", `by=alice`, true, 400, "invalid JSON"},
		{"not paused yet", "GET", "/api/v1/pause", ``, true, 200, `"paused":false`},
		{"pause", "POST", "/api/v1/pause", `{"by":"alice","reason":"incident review"}`, true, 200, `"paused":true`},
		{"paused", "GET", "/api/v1/pause", ``, true, 200, `"reason":"incident review"`},
		{"resume", "POST", "/api/v1/resume", `{"by":"bob"}`, true, 200, `"paused":false`},
		{"window end before start", "POST", "/api/v1/maintenance", `{"by":"a","start":"` + future + `","end":"` + past + `"}`, true, 400, "after"},
		{"window in the past", "POST", "/api/v1/maintenance", `{"by":"a","start":"2020-01-01T00:00:00Z","end":"` + past + `"}`, true, 400, "past"},
		{"window without end", "POST", "/api/v1/maintenance", `{"by":"a"}`, true, 400, "end"},
		{"window wildcard ns", "POST", "/api/v1/maintenance", `{"by":"a","end":"` + future + `","namespaces":["*"]}`, true, 400, "namespace"},
		{"window too long", "POST", "/api/v1/maintenance", `{"by":"a","end":"2099-01-01T00:00:00Z"}`, true, 400, "7 days"},
		{"window", "POST", "/api/v1/maintenance", `{"by":"a","end":"` + future + `","namespaces":["shop"],"reason":"db upgrade"}`, true, 201, `"reason":"db upgrade"`},
		{"delete unknown window", "DELETE", "/api/v1/maintenance/nope", ``, true, 404, "no such"},
		{"approve", "POST", "/api/v1/incidents/i1/approve", `{"by":"carol","reason":"looks right"}`, true, 200, `"approved"`},
		{"reject", "POST", "/api/v1/incidents/i2/reject", `{"by":"dave"}`, true, 200, `"rejected"`},
		{"approve needs by", "POST", "/api/v1/incidents/i3/approve", `{}`, true, 400, "by"},
		{"no proposal", "POST", "/api/v1/incidents/none/approve", `{"by":"carol"}`, true, 404, "no proposal"},
		{"already decided", "POST", "/api/v1/incidents/decided/approve", `{"by":"carol"}`, true, 409, "rejected"},
		{"expired", "POST", "/api/v1/incidents/late/approve", `{"by":"carol"}`, true, 409, "expired"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hdr := map[string]string{"Content-Type": "application/json"}
			if tc.auth {
				hdr = authJSON
			}
			var body []byte
			if tc.body != "" {
				body = []byte(tc.body)
			}
			resp, b := f.do(tc.method, tc.path, body, hdr)
			if resp.StatusCode != tc.status || !strings.Contains(string(b), tc.want) {
				t.Fatalf("%s %s: %d %s; want %d containing %s", tc.method, tc.path, resp.StatusCode, b, tc.status, tc.want)
			}
			if resp.StatusCode >= 400 && !json.Valid(b) {
				t.Fatalf("error body is not JSON: %s", b)
			}
		})
	}
	if got := strings.Join(f.decisions, "|"); got != "i1 true carol looks right|i2 false dave " {
		t.Fatalf("decisions %q", got)
	}

	// The pause switch and windows are in the store: they survive a restart.
	f.do("POST", "/api/v1/pause", []byte(`{"by":"alice","reason":"freeze"}`), authJSON)
	f.restart()
	resp, b := f.do("GET", "/api/v1/pause", nil, authJSON)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), `"paused":true`) || !strings.Contains(string(b), `"by":"alice"`) {
		t.Fatalf("pause after restart: %d %s", resp.StatusCode, b)
	}
	_, b = f.do("GET", "/api/v1/maintenance", nil, authJSON)
	var list struct{ Windows []store.Window }
	must(t, json.Unmarshal(b, &list))
	if len(list.Windows) != 1 || list.Windows[0].Namespaces[0] != "shop" {
		t.Fatalf("windows after restart: %s", b)
	}
	resp, _ = f.do("DELETE", "/api/v1/maintenance/"+list.Windows[0].ID, nil, authJSON)
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("delete window: %d", resp.StatusCode)
	}
	resp, b = f.do("GET", "/readyz", nil, nil)
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"leader":true`) {
		t.Fatalf("readyz: %d %s", resp.StatusCode, b)
	}
}
