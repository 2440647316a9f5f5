package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/remediator/remediator/internal/incident"
	"github.com/remediator/remediator/internal/store"
)

// The suite of escalation: priorities that only rise, escalations recorded
// once per cause with their outbox messages in the same transaction,
// acknowledgements, the outbox's leases, and the counts the metrics read.

func (s suite) escalation(t *testing.T) {
	t.Run("RaisePriority", s.raisePriority)
	t.Run("EscalateOnce", s.escalateOnce)
	t.Run("EscalateConcurrent", s.escalateConcurrent)
	t.Run("EscalateFinish", s.escalateFinish)
	t.Run("Acknowledge", s.acknowledge)
	t.Run("OutboxLeases", s.outboxLeases)
	t.Run("OutboxSurvivesReopen", s.outboxReopen)
	t.Run("OpenIncidents", s.openIncidents)
}

func mustState(t *testing.T, st store.Store, id string) store.EscalationState {
	t.Helper()
	es, err := st.EscalationState(ctx, id)
	if err != nil {
		t.Fatalf("EscalationState(%s): %v", id, err)
	}
	return es
}

func deadlineJob(id, p string, at time.Time) []store.NewJob {
	return []store.NewJob{{IncidentID: id, Kind: "deadline", Ref: p, NotBefore: at}}
}

func (s suite) raisePriority(t *testing.T) {
	clock := NewClock(t0)
	st := s.open(t, store.WithClock(clock.Now))
	id := incidents(t, st, "a1a1", 1)[0]
	drain(t, st)
	if es := mustState(t, st, id); es.Priority != "" || es.PrioritySince != nil || es.Status != incident.StatusFiring ||
		es.Level != 0 || es.Escalations != 0 || es.Acknowledged() {
		t.Fatalf("new incident: %+v", es)
	}
	for i, tc := range []struct {
		p          string
		raised     bool
		want       string
		wantSinceM int // minutes after t0 of PrioritySince
	}{
		{"P3", true, "P3", 0},
		{"P3", false, "P3", 0},
		{"P2", true, "P2", 2},
		{"P3", false, "P2", 2}, // never lowered
		{"P0", true, "P0", 4},
		{"P1", false, "P0", 4},
		{"P0", false, "P0", 4},
	} {
		at := t0.Add(time.Duration(i) * time.Minute)
		clock.Advance(time.Minute)
		es, raised, err := st.RaisePriority(ctx, id, tc.p, at, deadlineJob(id, tc.p, at.Add(time.Hour)))
		if err != nil {
			t.Fatalf("step %d RaisePriority(%s): %v", i, tc.p, err)
		}
		since := t0.Add(time.Duration(tc.wantSinceM) * time.Minute)
		if raised != tc.raised || es.Priority != tc.want || es.PrioritySince == nil || !es.PrioritySince.Equal(since) {
			t.Errorf("step %d RaisePriority(%s) = %+v raised %v; want %s since %s raised %v", i, tc.p, es, raised, tc.want, since, tc.raised)
		}
		if got := mustState(t, st, id); got.Priority != tc.want || !got.PrioritySince.Equal(since) {
			t.Errorf("step %d: stored %+v, want %s since %s", i, got, tc.want, since)
		}
	}
	// A deadline job was enqueued with each raise, and only then.
	clock.Advance(24 * time.Hour)
	var refs []string
	for _, j := range allJobs(t, st) {
		if j.Kind == "deadline" {
			refs = append(refs, j.Ref)
		}
	}
	if want := []string{"P3", "P2", "P0"}; !slices.Equal(refs, want) {
		t.Errorf("deadline jobs %v, want %v", refs, want)
	}
	if _, _, err := st.RaisePriority(ctx, id, "P5", time.Time{}, nil); err == nil {
		t.Errorf("RaisePriority(P5): no error")
	}
	if _, _, err := st.RaisePriority(ctx, incident.NewID(), "P1", time.Time{}, nil); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RaisePriority of an unknown incident: %v, want ErrNotFound", err)
	}
	if _, err := st.EscalationState(ctx, incident.NewID()); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("EscalationState of an unknown incident: %v, want ErrNotFound", err)
	}
}

func outboxMsgs(targets ...string) []store.OutboxMessage {
	out := make([]store.OutboxMessage, len(targets))
	for i, tg := range targets {
		out[i] = store.OutboxMessage{Channel: "webhook", Target: tg, Destination: "http://127.0.0.1:1/" + tg,
			Payload: json.RawMessage(fmt.Sprintf(`{"target": %q,  "n": [1, 2]}`, tg))}
	}
	return out
}

func escalationEvent(id, reason string) incident.Event {
	return incident.Event{IncidentID: id, Type: store.EventEscalated, Reason: reason}
}

func (s suite) escalateOnce(t *testing.T) {
	clock := NewClock(t0)
	st := s.open(t, store.WithClock(clock.Now))
	id := incidents(t, st, "a2a2", 1)[0]
	drain(t, st)
	if _, _, err := st.RaisePriority(ctx, id, "P2", t0, nil); err != nil {
		t.Fatal(err)
	}
	at := t0.Add(2 * time.Hour)
	clock.Advance(2 * time.Hour)
	e := store.Escalation{ID: incident.NewID(), IncidentID: id, Key: "deadline/P2", Priority: "P1", Reason: "deadline",
		Level: 1, At: at, Outbox: outboxMsgs("p1-a", "p1-b")}
	if err := st.Escalate(ctx, e, deadlineJob(id, "P1", at.Add(30*time.Minute)), escalationEvent(id, "to P1")); err != nil {
		t.Fatalf("Escalate: %v", err)
	}
	es := mustState(t, st, id)
	if es.Priority != "P1" || !es.PrioritySince.Equal(at) || es.Level != 1 || es.Escalations != 1 ||
		es.EscalatedPriority != "P1" || es.LastEscalatedAt == nil || !es.LastEscalatedAt.Equal(at) {
		t.Fatalf("after the escalation: %+v", es)
	}
	msgs, err := st.Outbox(ctx, store.OutboxFilter{IncidentID: id})
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 2 || msgs[0].Target != "p1-a" || msgs[1].Target != "p1-b" {
		t.Fatalf("outbox %+v", msgs)
	}
	for i, m := range msgs {
		want := outboxMsgs("p1-a", "p1-b")[i]
		if m.IncidentID != id || m.EscalationID != e.ID || m.Channel != "webhook" || m.Destination != want.Destination ||
			string(m.Payload) != string(want.Payload) || m.State != store.OutboxPending || m.Attempts != 0 ||
			!m.NotBefore.Equal(at) || !m.CreatedAt.Equal(at) || m.DoneAt != nil || m.ID == 0 {
			t.Errorf("message %d = %+v (payload %s)", i, m, m.Payload)
		}
	}

	// The same cause again: nothing at all is written.
	again := e
	again.ID = incident.NewID()
	clock.Advance(time.Minute)
	err = st.Escalate(ctx, again, deadlineJob(id, "P1", at.Add(time.Hour)), escalationEvent(id, "again"))
	if !errors.Is(err, store.ErrExists) {
		t.Fatalf("second Escalate(deadline/P2): %v, want ErrExists", err)
	}
	if n := len(eventTypes(t, st, id)); n != 2 { // received + the first escalated
		t.Errorf("%d events after the refused escalation, want 2: %v", n, eventTypes(t, st, id))
	}
	if d, err := st.OutboxDepth(ctx); err != nil || d != 2 {
		t.Errorf("OutboxDepth = %d, %v; want 2", d, err)
	}
	if es2 := mustState(t, st, id); es2.Escalations != 1 {
		t.Errorf("refused escalation counted: %+v", es2)
	}

	// Another cause at a lower priority: counted, nothing lowered.
	low := store.Escalation{ID: incident.NewID(), IncidentID: id, Key: "job/7", Priority: "P3", Reason: "failed"}
	if err := st.Escalate(ctx, low, nil); err != nil {
		t.Fatal(err)
	}
	es = mustState(t, st, id)
	if es.Priority != "P1" || es.Level != 1 || es.Escalations != 2 || es.EscalatedPriority != "P1" || !es.PrioritySince.Equal(at) {
		t.Errorf("after a lower escalation: %+v", es)
	}
	// Deadline jobs: the one asked for with the first escalation only.
	clock.Advance(24 * time.Hour)
	var jobs []string
	for _, j := range allJobs(t, st) {
		jobs = append(jobs, j.Kind+":"+j.Ref)
	}
	if want := []string{"deadline:P1"}; !slices.Equal(jobs, want) {
		t.Errorf("jobs %v, want %v", jobs, want)
	}

	for _, bad := range []store.Escalation{
		{ID: incident.NewID(), IncidentID: id, Key: "x", Priority: "P9"},
		{ID: incident.NewID(), IncidentID: id, Priority: "P1"},
		{ID: incident.NewID(), IncidentID: id, Key: "y", Priority: "P1", Outbox: []store.OutboxMessage{{Channel: "webhook", Target: "t", Payload: json.RawMessage("{")}}},
	} {
		if err := st.Escalate(ctx, bad, nil); err == nil {
			t.Errorf("Escalate(%+v): no error", bad)
		}
	}
	if err := st.Escalate(ctx, store.Escalation{ID: incident.NewID(), IncidentID: incident.NewID(), Key: "p0", Priority: "P0"}, nil); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Escalate for an unknown incident: %v, want ErrNotFound", err)
	}
}

// escalateConcurrent: many escalations of one cause at once (a deadline
// job run by two workers) record exactly one.
func (s suite) escalateConcurrent(t *testing.T) {
	dsn := s.b.NewDSN(t)
	a := s.b.Open(t, dsn)
	defer a.Close()
	b := s.b.Open(t, dsn)
	defer b.Close()
	id := incidents(t, a, "a3a3", 1)[0]
	const n = 16
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, exists := 0, 0
	var other []error
	for i := range n {
		st := a
		if i%2 == 1 {
			st = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			e := store.Escalation{ID: incident.NewID(), IncidentID: id, Key: "deadline/P1", Priority: "P0", Reason: "deadline",
				Level: 1, Outbox: outboxMsgs("lead")}
			err := st.Escalate(ctx, e, nil, escalationEvent(id, fmt.Sprint("try ", i)))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case errors.Is(err, store.ErrExists):
				exists++
			default:
				other = append(other, err)
			}
		}()
	}
	wg.Wait()
	if ok != 1 || exists != n-1 || len(other) > 0 {
		t.Fatalf("%d escalated, %d refused as existing, errors %v; want 1 and %d", ok, exists, other, n-1)
	}
	msgs, err := a.Outbox(ctx, store.OutboxFilter{IncidentID: id})
	if err != nil || len(msgs) != 1 {
		t.Fatalf("outbox %+v, %v; want one message", msgs, err)
	}
	if got := eventTypes(t, a, id); !slices.Equal(got, []string{incident.EventReceived, store.EventEscalated}) {
		t.Fatalf("events %v", got)
	}
	if es := mustState(t, a, id); es.Escalations != 1 || es.Priority != "P0" {
		t.Fatalf("state %+v", es)
	}
}

func (s suite) escalateFinish(t *testing.T) {
	clock := NewClock(t0)
	st := s.open(t, store.WithClock(clock.Now))
	id := incidents(t, st, "a4a4", 1)[0]
	drain(t, st)
	x := execution(id, 0)
	mustBegin(t, st, x)
	clock.Advance(time.Second)
	fin := &store.ExecutionChange{ID: x.ID, From: []string{store.ExecIntent}, To: store.ExecFailed, Reason: "restart failed: boom"}
	e := store.Escalation{ID: incident.NewID(), IncidentID: id, Key: "failed/" + x.ID, Priority: "P2", Reason: "failed",
		Finish: fin, Outbox: outboxMsgs("p2")}
	failed := incident.Event{IncidentID: id, Type: "failed", Reason: "boom"}
	if err := st.Escalate(ctx, e, nil, failed, escalationEvent(id, "failed")); err != nil {
		t.Fatal(err)
	}
	xs := executions(t, st, store.ExecutionFilter{IncidentID: id})
	if len(xs) != 1 || xs[0].State != store.ExecFailed || xs[0].Reason != fin.Reason || !xs[0].UpdatedAt.Equal(store.UTC(clock.Now())) {
		t.Fatalf("execution after Escalate with Finish: %+v", xs)
	}
	if got := eventTypes(t, st, id); !slices.Equal(got, []string{incident.EventReceived, "failed", store.EventEscalated}) {
		t.Fatalf("events %v", got)
	}
	// An outcome that conflicts rolls the escalation back with it.
	e2 := store.Escalation{ID: incident.NewID(), IncidentID: id, Key: "failed/again", Priority: "P0", Reason: "failed",
		Finish: fin, Outbox: outboxMsgs("p0")}
	if err := st.Escalate(ctx, e2, nil, escalationEvent(id, "x")); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("Escalate finishing a failed execution from intent: %v, want ErrConflict", err)
	}
	missing := *fin
	missing.ID = incident.NewID()
	e3 := e2
	e3.ID, e3.Finish = incident.NewID(), &missing
	if err := st.Escalate(ctx, e3, nil); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Escalate finishing an unknown execution: %v, want ErrNotFound", err)
	}
	if es := mustState(t, st, id); es.Priority != "P2" || es.Escalations != 1 {
		t.Errorf("refused escalations changed the incident: %+v", es)
	}
	if d, _ := st.OutboxDepth(ctx); d != 1 {
		t.Errorf("OutboxDepth %d, want 1", d)
	}
	// The key was not taken by the refused ones.
	e2.ID, e2.Finish = incident.NewID(), nil
	if err := st.Escalate(ctx, e2, nil); err != nil {
		t.Errorf("Escalate(failed/again) after its refusal: %v", err)
	}
}

func (s suite) acknowledge(t *testing.T) {
	clock := NewClock(t0)
	st := s.open(t, store.WithClock(clock.Now))
	id := incidents(t, st, "a5a5", 1)[0]
	clock.Advance(29 * time.Minute)
	ev := incident.Event{IncidentID: id, Type: store.EventAcknowledged, Actor: "alice", Reason: "acknowledged by alice: on it"}
	es, err := st.Acknowledge(ctx, id, "alice", "on it", time.Time{}, ev)
	at := store.UTC(clock.Now())
	if err != nil || !es.Acknowledged() || !es.AcknowledgedAt.Equal(at) || es.AcknowledgedBy != "alice" || es.AckReason != "on it" {
		t.Fatalf("Acknowledge = %+v, %v", es, err)
	}
	clock.Advance(time.Minute)
	es, err = st.Acknowledge(ctx, id, "bob", "me too", time.Time{}, incident.Event{IncidentID: id, Type: store.EventAcknowledged, Actor: "bob"})
	if !errors.Is(err, store.ErrAcknowledged) || !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second Acknowledge: %v, want ErrAcknowledged", err)
	}
	if es.AcknowledgedBy != "alice" || !es.AcknowledgedAt.Equal(at) {
		t.Errorf("second Acknowledge returned %+v, want alice's", es)
	}
	if got := mustState(t, st, id); got.AcknowledgedBy != "alice" || got.AckReason != "on it" || !got.AcknowledgedAt.Equal(at) {
		t.Errorf("stored %+v", got)
	}
	_, evs := mustIncident(t, st, id)
	if got := eventTypes(t, st, id); !slices.Equal(got, []string{incident.EventReceived, store.EventAcknowledged}) {
		t.Fatalf("events %v", got)
	}
	if a := evs[1]; a.Actor != "alice" || !a.Time.Equal(at) {
		t.Errorf("acknowledged event %+v", a)
	}
	if _, err := st.Acknowledge(ctx, incident.NewID(), "alice", "", time.Time{}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Acknowledge of an unknown incident: %v, want ErrNotFound", err)
	}
}

func escalateWith(t *testing.T, st store.Store, id, key string, targets ...string) store.Escalation {
	t.Helper()
	e := store.Escalation{ID: incident.NewID(), IncidentID: id, Key: key, Priority: "P1", Reason: "failed", Outbox: outboxMsgs(targets...)}
	if err := st.Escalate(ctx, e, nil); err != nil {
		t.Fatalf("Escalate(%s): %v", key, err)
	}
	return e
}

func claimOutbox(t *testing.T, st store.Store, owner string, lease time.Duration) []store.OutboxMessage {
	t.Helper()
	msgs, err := st.ClaimOutbox(ctx, owner, 100, lease)
	if err != nil {
		t.Fatalf("ClaimOutbox(%s): %v", owner, err)
	}
	return msgs
}

func targetsOf(msgs []store.OutboxMessage) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.Target
	}
	return out
}

func (s suite) outboxLeases(t *testing.T) {
	clock := NewClock(t0)
	st := s.open(t, store.WithClock(clock.Now))
	ids := incidents(t, st, "a6a6", 2)
	escalateWith(t, st, ids[0], "k1", "a", "b")
	escalateWith(t, st, ids[1], "k2", "c")

	got := claimOutbox(t, st, "d1", time.Minute)
	if !slices.Equal(targetsOf(got), []string{"a", "b", "c"}) {
		t.Fatalf("first claim %v", targetsOf(got))
	}
	for _, m := range got {
		if m.State != store.OutboxLeased || m.Attempts != 1 {
			t.Errorf("claimed %+v", m)
		}
	}
	if again := claimOutbox(t, st, "d2", time.Minute); len(again) != 0 {
		t.Fatalf("leased messages claimed again: %v", targetsOf(again))
	}
	a, b, c := got[0], got[1], got[2]

	// a is delivered; its event is appended with the settlement.
	sent := incident.Event{IncidentID: a.IncidentID, Type: store.EventNotified, Reason: "delivered"}
	if err := st.SettleOutbox(ctx, "d1", a.ID, store.OutboxResult{State: store.OutboxSent}, sent); err != nil {
		t.Fatal(err)
	}
	// b fails and is retried in 30s.
	if err := st.SettleOutbox(ctx, "d1", b.ID, store.OutboxResult{State: store.OutboxPending, NotBefore: t0.Add(30 * time.Second), Error: "HTTP 500"}); err != nil {
		t.Fatal(err)
	}
	// Only the lease holder settles; a settled message is not leased.
	if err := st.SettleOutbox(ctx, "d2", c.ID, store.OutboxResult{State: store.OutboxSent}); !errors.Is(err, store.ErrLeaseLost) {
		t.Errorf("settle by another owner: %v, want ErrLeaseLost", err)
	}
	if err := st.SettleOutbox(ctx, "d1", a.ID, store.OutboxResult{State: store.OutboxSent}); !errors.Is(err, store.ErrLeaseLost) {
		t.Errorf("settle twice: %v, want ErrLeaseLost", err)
	}
	if err := st.SettleOutbox(ctx, "d1", 1<<40, store.OutboxResult{State: store.OutboxSent}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("settle of an unknown message: %v, want ErrNotFound", err)
	}
	if err := st.SettleOutbox(ctx, "d1", c.ID, store.OutboxResult{State: "bogus"}); err == nil {
		t.Errorf("settle as bogus: no error")
	}
	if d, err := st.OutboxDepth(ctx); err != nil || d != 2 {
		t.Errorf("OutboxDepth = %d, %v; want 2 (b pending, c leased)", d, err)
	}

	clock.Advance(29 * time.Second)
	if got := claimOutbox(t, st, "d2", time.Minute); len(got) != 0 {
		t.Fatalf("claimed before NotBefore / lease end: %v", targetsOf(got))
	}
	clock.Advance(time.Second)
	got = claimOutbox(t, st, "d2", time.Minute)
	if len(got) != 1 || got[0].ID != b.ID || got[0].Attempts != 2 || got[0].LastError != "HTTP 500" {
		t.Fatalf("at NotBefore: %+v, want b on its second attempt", got)
	}
	// c's lease (1 minute) expires: another owner takes it over.
	clock.Advance(30 * time.Second)
	got = claimOutbox(t, st, "d3", time.Minute)
	if len(got) != 1 || got[0].ID != c.ID || got[0].Attempts != 2 {
		t.Fatalf("after c's lease: %+v", got)
	}
	if err := st.SettleOutbox(ctx, "d1", c.ID, store.OutboxResult{State: store.OutboxSent}); !errors.Is(err, store.ErrLeaseLost) {
		t.Errorf("settle after losing the lease: %v, want ErrLeaseLost", err)
	}
	if err := st.SettleOutbox(ctx, "d3", c.ID, store.OutboxResult{State: store.OutboxFailed, Error: "HTTP 404"}); err != nil {
		t.Fatal(err)
	}
	if err := st.SettleOutbox(ctx, "d2", b.ID, store.OutboxResult{State: store.OutboxSent}); err != nil {
		t.Fatal(err)
	}
	if d, _ := st.OutboxDepth(ctx); d != 0 {
		t.Errorf("OutboxDepth %d, want 0", d)
	}
	all, err := st.Outbox(ctx, store.OutboxFilter{})
	if err != nil || len(all) != 3 {
		t.Fatalf("Outbox: %+v, %v", all, err)
	}
	states := map[string]string{}
	for _, m := range all {
		states[m.Target] = m.State
		if m.DoneAt == nil {
			t.Errorf("%s settled without DoneAt", m.Target)
		}
	}
	if states["a"] != store.OutboxSent || states["b"] != store.OutboxSent || states["c"] != store.OutboxFailed {
		t.Errorf("states %v", states)
	}
	failed, err := st.Outbox(ctx, store.OutboxFilter{States: []string{store.OutboxFailed}})
	if err != nil || len(failed) != 1 || failed[0].LastError != "HTTP 404" {
		t.Errorf("failed messages %+v, %v", failed, err)
	}
	mine, err := st.Outbox(ctx, store.OutboxFilter{IncidentID: ids[0]})
	if err != nil || !slices.Equal(targetsOf(mine), []string{"a", "b"}) {
		t.Errorf("messages of incident 0: %+v, %v", mine, err)
	}
	if got := eventTypes(t, st, ids[0]); !slices.Equal(got, []string{incident.EventReceived, store.EventNotified}) {
		t.Errorf("events %v", got)
	}
}

// outboxReopen: messages and their leases survive a restart.
func (s suite) outboxReopen(t *testing.T) {
	clock := NewClock(t0)
	dsn := s.b.NewDSN(t)
	st := s.b.Open(t, dsn, store.WithClock(clock.Now))
	id := incidents(t, st, "a7a7", 1)[0]
	escalateWith(t, st, id, "k", "x", "y")
	if got := claimOutbox(t, st, "before-restart", time.Minute); len(got) != 2 {
		t.Fatalf("claim %v", targetsOf(got))
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st = s.b.Open(t, dsn, store.WithClock(clock.Now))
	defer st.Close()
	if d, err := st.OutboxDepth(ctx); err != nil || d != 2 {
		t.Fatalf("OutboxDepth after reopen = %d, %v", d, err)
	}
	if got := claimOutbox(t, st, "after-restart", time.Minute); len(got) != 0 {
		t.Fatalf("claimed while leased: %v", targetsOf(got))
	}
	clock.Advance(time.Minute)
	if got := claimOutbox(t, st, "after-restart", time.Minute); !slices.Equal(targetsOf(got), []string{"x", "y"}) {
		t.Fatalf("after the leases: %v", targetsOf(got))
	}
}

func (s suite) openIncidents(t *testing.T) {
	st := s.open(t)
	ids := incidents(t, st, "a8a8", 5)
	for i, p := range []string{"P0", "P1", "P1", "P3"} {
		if _, _, err := st.RaisePriority(ctx, ids[i], p, time.Time{}, nil); err != nil {
			t.Fatal(err)
		}
	}
	// ids[4] has no priority. Resolve ids[3] (P3).
	mustIngest(t, st, Notification(Alert("a8a8"+fmt.Sprintf("%012d", 3), incident.StatusResolved, t0)))
	got, err := st.OpenIncidents(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"P0": 1, "P1": 2, "": 1}
	if len(got) != len(want) {
		t.Fatalf("OpenIncidents = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("OpenIncidents = %v, want %v", got, want)
		}
	}
}
