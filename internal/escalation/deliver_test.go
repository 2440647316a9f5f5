package escalation_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/remediator/remediator/internal/escalation"
	"github.com/remediator/remediator/internal/executor"
	"github.com/remediator/remediator/internal/incident"
	"github.com/remediator/remediator/internal/policy"
	"github.com/remediator/remediator/internal/store"
)

// receiver is a loopback webhook receiver. respond decides each answer
// (nil: 200).
type receiver struct {
	t   *testing.T
	srv *httptest.Server

	mu       sync.Mutex
	requests []receivedRequest
	respond  func(n int, r *http.Request) (status int, header http.Header)
	release  chan struct{} // when set, requests wait for it (a hanging receiver)
}

type receivedRequest struct {
	header  http.Header
	payload escalation.Payload
	raw     []byte
	status  int
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{t: t}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(func() {
		r.unblock()
		r.srv.Close()
	})
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	release := r.release
	r.mu.Unlock()
	if release != nil {
		select {
		case <-release:
		case <-req.Context().Done():
			return
		}
	}
	var p escalation.Payload
	if err := json.Unmarshal(body, &p); err != nil {
		r.t.Errorf("receiver: body is not a payload: %v: %s", err, body)
	}
	r.mu.Lock()
	n := len(r.requests)
	status, header := http.StatusOK, http.Header(nil)
	if r.respond != nil {
		status, header = r.respond(n, req)
	}
	r.requests = append(r.requests, receivedRequest{header: req.Header.Clone(), payload: p, raw: body, status: status})
	r.mu.Unlock()
	for k, v := range header {
		w.Header()[k] = v
	}
	w.WriteHeader(status)
	_, _ = w.Write([]byte(`{"status":"` + http.StatusText(status) + `"}`))
}

// hang makes requests wait until unblock.
func (r *receiver) hang() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.release = make(chan struct{})
}

func (r *receiver) unblock() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.release != nil {
		close(r.release)
		r.release = nil
	}
}

func (r *receiver) got() []receivedRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.requests)
}

// delivered counts the payload IDs answered 2xx.
func (r *receiver) delivered() map[string]int {
	out := map[string]int{}
	for _, q := range r.got() {
		if q.status/100 == 2 {
			out[q.payload.ID]++
		}
	}
	return out
}

func targetsTo(t *testing.T, url string) escalation.Targets {
	token := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(token, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return escalation.Targets{
		policy.P0: {Webhooks: []escalation.Webhook{{Name: "lead", URL: url + "/lead", BearerTokenFile: token, Timeout: 2 * time.Second}}, Mention: "@oncall-lead"},
		policy.P1: {Webhooks: []escalation.Webhook{{Name: "oncall", URL: url + "/oncall", BearerTokenFile: token, Timeout: 2 * time.Second}}, Mention: "@oncall"},
	}
}

func (e *env) deliverOnce() int {
	e.t.Helper()
	n, err := e.deliverer.RunOnce(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}

// The notification is the documented JSON, POSTed with the token, and
// recorded as notified.
func TestDeliverWebhook(t *testing.T) {
	rcv := newReceiver(t)
	t0 := start()
	e := newEnv(t, t0, enforce, withTargets(targetsTo(t, rcv.srv.URL)))
	e.act.fail.Store(true)
	id, a := e.fire("P1")
	e.drain()
	if n := e.deliverOnce(); n != 1 {
		t.Fatalf("delivered %d messages, want 1", n)
	}
	got := rcv.got()
	if len(got) != 1 {
		t.Fatalf("%d requests", len(got))
	}
	q := got[0]
	if h := q.header; h.Get("Authorization") != "Bearer s3cret" || h.Get("Content-Type") != "application/json" ||
		h.Get("Idempotency-Key") == "" || h.Get("User-Agent") != "test" {
		t.Errorf("headers %v", h)
	}
	p := q.payload
	if p.Version != "1" || p.Type != "escalation" || p.DedupKey != id || p.Priority != "P1" || p.Reason != escalation.ReasonFailed ||
		p.Level != 0 || p.Target.Name != "oncall" || p.Target.Channel != "webhook" || p.Target.Mention != "@oncall" ||
		p.Incident.ID != id || p.Incident.AlertName != "Broken" || p.Incident.Labels["deployment"] != "web" ||
		p.Incident.Status != incident.StatusFiring || !p.Incident.StartsAt.Equal(a.StartsAt) || p.Incident.Acknowledged ||
		p.RespondBy == nil || !p.RespondBy.Equal(t0.Add(30*time.Minute)) || !p.Time.Equal(t0) {
		t.Errorf("payload %s", q.raw)
	}
	if len(p.Actions) != 1 || p.Actions[0].Action != "restart" || p.Actions[0].State != store.ExecFailed ||
		p.Actions[0].Target != "Deployment/shop/web" {
		t.Errorf("actions %+v", p.Actions)
	}
	if p.Links.Incident != "https://remediator.example/api/v1/incidents/"+id ||
		p.Links.Acknowledge != "https://remediator.example/api/v1/incidents/"+id+"/ack" || p.Links.Source != a.GeneratorURL {
		t.Errorf("links %+v", p.Links)
	}
	if !strings.Contains(p.Summary, "[P1] Broken (shop)") || !strings.Contains(p.Summary, "restart Deployment/shop/web: failed") ||
		!strings.Contains(p.Summary, "Acknowledge: POST https://remediator.example/api/v1/incidents/"+id+"/ack") {
		t.Errorf("summary %q", p.Summary)
	}
	msgs := e.outbox(id)
	if len(msgs) != 1 || msgs[0].State != store.OutboxSent || msgs[0].Attempts != 1 || string(msgs[0].Payload) != string(q.raw) {
		t.Fatalf("outbox %+v", msgs)
	}
	n := ofType(e.timeline(id), store.EventNotified)
	if len(n) != 1 || detail(t, n[0], "ok") != true || detail(t, n[0], "channel") != "webhook" || detail(t, n[0], "target") != "oncall" {
		t.Fatalf("notified events:%s", dump(e.timeline(id)))
	}
	if v := gauge(t, e.reg, "remediator_notifications_total", map[string]string{"channel": "webhook", "outcome": "sent"}); v != 1 {
		t.Errorf("notifications sent = %v", v)
	}
	if v := gauge(t, e.reg, "remediator_outbox_depth", nil); v != 0 {
		t.Errorf("outbox depth %v", v)
	}
	if v := gauge(t, e.reg, "remediator_incidents_open", map[string]string{"priority": "P1"}); v != 1 {
		t.Errorf("incidents open{P1} = %v", v)
	}
	// Nothing is sent twice.
	e.clock.Advance(time.Hour)
	if n := e.deliverOnce(); n != 0 || len(rcv.got()) != 1 {
		t.Fatalf("sent again: %d", n)
	}
}

// Failed attempts are retried with exponential backoff, or when the
// receiver's Retry-After says; a 4xx other than 429 is final.
func TestDeliverRetries(t *testing.T) {
	type answer struct {
		status     int
		retryAfter string // "" none; "+90s" an HTTP date 90s ahead; else seconds
	}
	for _, tc := range []struct {
		name    string
		answers []answer        // then 200
		waits   []time.Duration // expected between attempts
		final   string          // the message's final state
	}{
		{"500 twice", []answer{{500, ""}, {500, ""}}, []time.Duration{time.Second, 2 * time.Second}, store.OutboxSent},
		{"429 with Retry-After seconds", []answer{{429, "120"}}, []time.Duration{120 * time.Second}, store.OutboxSent},
		{"503 with Retry-After date", []answer{{503, "+90s"}}, []time.Duration{90 * time.Second}, store.OutboxSent},
		{"429 without Retry-After", []answer{{429, ""}, {502, ""}, {504, ""}}, []time.Duration{time.Second, 2 * time.Second, 4 * time.Second}, store.OutboxSent},
		{"404 is final", []answer{{404, ""}}, nil, store.OutboxFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rcv := newReceiver(t)
			t0 := start()
			e := newEnv(t, t0, enforce, withTargets(targetsTo(t, rcv.srv.URL)))
			rcv.respond = func(n int, _ *http.Request) (int, http.Header) {
				if n >= len(tc.answers) {
					return http.StatusAccepted, nil
				}
				a := tc.answers[n]
				h := http.Header{}
				switch {
				case a.retryAfter == "+90s":
					h.Set("Retry-After", e.now().Add(90*time.Second).UTC().Format(http.TimeFormat))
				case a.retryAfter != "":
					h.Set("Retry-After", a.retryAfter)
				}
				return a.status, h
			}
			e.act.fail.Store(true)
			id, _ := e.fire("P1")
			e.drain()
			if n := e.deliverOnce(); n != 1 {
				t.Fatalf("first attempt: %d messages", n)
			}
			for i, w := range tc.waits {
				e.clock.Advance(w - time.Second)
				if n := e.deliverOnce(); n != 0 {
					t.Fatalf("retry %d sent %s early", i+1, time.Second)
				}
				e.clock.Advance(time.Second)
				if n := e.deliverOnce(); n != 1 {
					t.Fatalf("retry %d not sent after %s", i+1, w)
				}
			}
			e.clock.Advance(24 * time.Hour)
			if n := e.deliverOnce(); n != 0 {
				t.Fatalf("attempts after the end: %d", n)
			}
			msgs := e.outbox(id)
			if len(msgs) != 1 || msgs[0].State != tc.final || msgs[0].Attempts != len(tc.waits)+1 {
				t.Fatalf("outbox %+v", msgs)
			}
			if got := len(rcv.got()); got != len(tc.waits)+1 {
				t.Fatalf("receiver got %d requests, want %d", got, len(tc.waits)+1)
			}
			// The timeline: the first failure, and the end.
			var oks []any
			for _, ev := range ofType(e.timeline(id), store.EventNotified) {
				oks = append(oks, detail(t, ev, "ok"))
			}
			want := []any{false, true}
			if tc.final == store.OutboxFailed {
				want = []any{false}
			}
			if !slices.Equal(oks, want) {
				t.Fatalf("notified ok %v, want %v:%s", oks, want, dump(e.timeline(id)))
			}
			if tc.final == store.OutboxFailed {
				if ev := ofType(e.timeline(id), store.EventNotified)[0]; detail(t, ev, "final") != true || detail(t, ev, "status") != float64(404) {
					t.Errorf("final failure %s", ev.Details)
				}
			}
		})
	}
}

// A 5-minute outage of the receiver, with a restart in the middle of it,
// loses nothing: every notification of every escalation made before and
// during the outage arrives once it is over, exactly once.
func TestOutageLosesNothing(t *testing.T) {
	rcv := newReceiver(t)
	t0 := start()
	e := newEnv(t, t0, enforce, withTargets(targetsTo(t, rcv.srv.URL)))
	outageEnd := t0.Add(5 * time.Minute)
	rcv.respond = func(int, *http.Request) (int, http.Header) {
		if e.now().Before(outageEnd) {
			return http.StatusServiceUnavailable, nil
		}
		return http.StatusOK, nil
	}
	e.act.fail.Store(true)
	var ids []string
	const step = 2 * time.Second
	for now := time.Duration(0); now < 15*time.Minute; now += step {
		switch now {
		case 0, time.Minute, 4 * time.Minute: // escalations during the outage (P1: failed)
			id, _ := e.fire("P1")
			ids = append(ids, id)
			e.drain()
		case 2*time.Minute + 30*time.Second:
			e.restart()
		}
		for e.deliverOnce() > 0 {
		}
		e.clock.Advance(step)
	}
	want := map[string]int{}
	for _, id := range ids {
		msgs := e.outbox(id)
		if len(msgs) != 1 || msgs[0].State != store.OutboxSent {
			t.Fatalf("incident %s: outbox %+v", id, msgs)
		}
		want[msgs[0].EscalationID+"/oncall"] = 1
		evs := e.timeline(id)
		n := ofType(evs, store.EventNotified)
		if len(n) != 2 || detail(t, n[0], "ok") != false || detail(t, n[1], "ok") != true {
			t.Fatalf("incident %s notified events:%s", id, dump(evs))
		}
		if !n[1].Time.Before(outageEnd.Add(5*time.Minute+step)) || n[1].Time.Before(outageEnd) {
			t.Errorf("incident %s delivered at %s (outage ended %s)", id, n[1].Time, outageEnd)
		}
	}
	got := rcv.delivered()
	if len(got) != len(want) {
		t.Fatalf("delivered %v, want %v", got, want)
	}
	for k := range want {
		if got[k] != 1 {
			t.Fatalf("delivered %v, want each of %v once", got, want)
		}
	}
	if v := gauge(t, e.reg, "remediator_outbox_depth", nil); v != 0 {
		t.Errorf("outbox depth %v after the outage", v)
	}
}

// A receiver that hangs does not delay remediation: the firing jobs of
// P0 incidents (each of which notifies at once) complete as fast as with a
// healthy receiver, while their notifications wait in the outbox; once
// the receiver answers again, all arrive. Real time, real loops.
func TestOutageDoesNotDelayRemediation(t *testing.T) {
	if testing.Short() {
		t.Skip("measures wall time")
	}
	const incidents = 4
	run := func(t *testing.T, outage bool) (time.Duration, *receiver, *env, []string) {
		rcv := newReceiver(t)
		if outage {
			rcv.hang()
		}
		e := newEnv(t, start(), realTime, enforce, withTargets(targetsTo(t, rcv.srv.URL)))
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); _ = e.worker.Run(ctx) }()
		go func() { defer wg.Done(); _ = e.deliverer.Run(ctx) }()
		t.Cleanup(func() { cancel(); rcv.unblock(); wg.Wait() })
		var worst time.Duration
		var ids []string
		for i := range incidents {
			sent := time.Now()
			id := e.send(e.alertOn("P0", fmt.Sprintf("web-%d", i)))
			ids = append(ids, id)
			e.worker.Kick()
			deadline := time.Now().Add(30 * time.Second)
			for {
				if at, ok := e.queue.completed(id, incident.JobFiring); ok {
					worst = max(worst, at.Sub(sent))
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("firing job of %s not completed:%s", id, dump(e.timeline(id)))
				}
				time.Sleep(time.Millisecond)
			}
			if got := typesOf(e.timeline(id)); !slices.Contains(got, executor.EventApplied) || !slices.Contains(got, executor.EventEscalated) {
				t.Fatalf("timeline %v", got)
			}
		}
		return worst, rcv, e, ids
	}
	healthy, _, _, _ := run(t, false)
	hung, rcv, e, ids := run(t, true)
	t.Logf("slowest firing job: %s with a healthy receiver, %s with a hanging one", healthy, hung)
	if limit := max(2*healthy, healthy+time.Second); hung > limit {
		t.Errorf("a hanging receiver delayed remediation: %s vs %s", hung, healthy)
	}
	// The notifications wait; none is lost.
	if d, err := e.st.OutboxDepth(context.Background()); err != nil || d != incidents {
		t.Errorf("outbox depth during the outage = %d, %v; want %d", d, err, incidents)
	}
	rcv.unblock()
	deadline := time.Now().Add(30 * time.Second)
	for {
		d, err := e.st.OutboxDepth(context.Background())
		if err == nil && d == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("outbox depth %d, %v after the receiver came back", d, err)
		}
		e.deliverer.Kick()
		time.Sleep(20 * time.Millisecond)
	}
	got := rcv.delivered()
	for _, id := range ids {
		msgs := e.outbox(id)
		if len(msgs) != 1 || msgs[0].State != store.OutboxSent || got[msgs[0].EscalationID+"/lead"] < 1 {
			t.Fatalf("incident %s: outbox %+v, delivered %v", id, msgs, got)
		}
	}
}
