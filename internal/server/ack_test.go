package server

import (
	"context"
	"strings"
	"testing"

	"github.com/remediator/remediator/internal/store"
)

// POST /api/v1/incidents/{id}/ack records who took the incident, once; the
// incident's view shows its escalation state.
func TestAcknowledgeAPI(t *testing.T) {
	f := newFixture(t)
	resp, _ := f.post(testdata(t, "firing.json"))
	if resp.StatusCode != 202 {
		t.Fatalf("webhook: %d", resp.StatusCode)
	}
	id := f.incidents()[0].ID
	if _, _, err := f.store.RaisePriority(context.Background(), id, "P1", f.srv.opt.Now(), nil); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path, body string
		hdr              map[string]string
		status           int
		want             string
	}{
		{"no credentials", "/api/v1/incidents/" + id + "/ack", `{"by":"alice"}`, map[string]string{"Content-Type": "application/json"}, 401, "credentials"},
		{"needs by", "/api/v1/incidents/" + id + "/ack", `{"reason":"x"}`, authJSON, 400, `\"by\" is required`},
		{"unknown field", "/api/v1/incidents/" + id + "/ack", `{"by":"alice","who":"x"}`, authJSON, 400, "unknown field"},
		{"unknown incident", "/api/v1/incidents/nope/ack", `{"by":"alice"}`, authJSON, 404, "no incident"},
		{"ack", "/api/v1/incidents/" + id + "/ack", `{"by":"alice","reason":"on it"}`, authJSON, 200, `"acknowledgedBy":"alice"`},
		{"ack again", "/api/v1/incidents/" + id + "/ack", `{"by":"bob"}`, authJSON, 409, `"acknowledgedBy":"alice"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, b := f.do("POST", tc.path, []byte(tc.body), tc.hdr)
			if resp.StatusCode != tc.status || !strings.Contains(string(b), tc.want) {
				t.Fatalf("%d %s; want %d containing %s", resp.StatusCode, b, tc.status, tc.want)
			}
		})
	}
	var view struct {
		Escalation store.EscalationState
		Timeline   []struct{ Type, Actor, Reason string }
	}
	resp, b := f.do("GET", "/api/v1/incidents/"+id, nil, authJSON)
	if resp.StatusCode != 200 {
		t.Fatalf("GET: %d %s", resp.StatusCode, b)
	}
	decodeJSON(t, b, &view)
	if es := view.Escalation; es.Priority != "P1" || es.AcknowledgedBy != "alice" || es.AckReason != "on it" || es.AcknowledgedAt == nil {
		t.Errorf("escalation %+v", es)
	}
	var acks []string
	for _, e := range view.Timeline {
		if e.Type == store.EventAcknowledged {
			acks = append(acks, e.Actor+": "+e.Reason)
		}
	}
	if len(acks) != 1 || acks[0] != "alice: acknowledged by alice: on it" {
		t.Errorf("acknowledged events %v", acks)
	}
}
