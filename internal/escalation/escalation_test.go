package escalation_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/remediator/remediator/internal/escalation"
	"github.com/remediator/remediator/internal/executor"
	"github.com/remediator/remediator/internal/incident"
	"github.com/remediator/remediator/internal/policy"
	"github.com/remediator/remediator/internal/store"
)

// Targets nobody listens on: these tests look at the outbox, not at
// delivery.
var quietTargets = escalation.Targets{
	policy.P0: {Webhooks: []escalation.Webhook{{Name: "lead", URL: "http://127.0.0.1:9/lead"}}, Mention: "@oncall-lead"},
	policy.P1: {Webhooks: []escalation.Webhook{{Name: "oncall", URL: "http://127.0.0.1:9/oncall"}}, Mention: "@oncall"},
	policy.P2: {Webhooks: []escalation.Webhook{{Name: "team", URL: "http://127.0.0.1:9/team"}}},
}

func start() time.Time { return time.Now().UTC().Truncate(time.Second) }

// A P1 incident not acknowledged within 30 minutes escalates to P0 once —
// also across a restart, and when the deadline job runs twice — and not
// when it was acknowledged or resolved before.
func TestP1DeadlineEscalatesExactlyOnce(t *testing.T) {
	ack := func(e *env, id string, _ incident.Alert) {
		ev := incident.Event{IncidentID: id, Type: store.EventAcknowledged, Actor: "alice", Reason: "acknowledged by alice"}
		if _, err := e.st.Acknowledge(context.Background(), id, "alice", "looking", time.Time{}, ev); err != nil {
			e.t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name      string
		at29      func(e *env, id string, a incident.Alert)
		escalates bool
	}{
		{"unacknowledged", nil, true},
		{"acknowledged at 29m", ack, false},
		{"restart at 29m", func(e *env, _ string, _ incident.Alert) { e.restart() }, true},
		{"resolved at 29m", func(e *env, _ string, a incident.Alert) { e.resolve(a) }, false},
		{"deadline job runs twice", func(e *env, _ string, _ incident.Alert) {
			e.queue.failNext = func(j incident.Job) bool { return j.Kind == escalation.KindDeadline }
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t0 := start()
			e := newEnv(t, t0, withTargets(quietTargets))
			id, a := e.fire("P1")
			e.drain()
			if st := e.state(id); st.Priority != "P1" || st.PrioritySince == nil || !st.PrioritySince.Equal(t0) {
				t.Fatalf("after planning: %+v", st)
			}
			if got := typesOf(e.timeline(id)); !slices.Contains(got, executor.EventProposed) || slices.Contains(got, executor.EventEscalated) {
				t.Fatalf("timeline after planning: %v", got)
			}
			e.advance(29 * time.Minute)
			if tc.at29 != nil {
				tc.at29(e, id, a)
				e.drain()
			}
			e.advance(time.Minute - time.Second) // 29:59
			if n := len(ofType(e.timeline(id), executor.EventEscalated)); n != 0 {
				t.Fatalf("escalated before the deadline:%s", dump(e.timeline(id)))
			}
			e.advance(time.Second) // 30:00
			if tc.name == "deadline job runs twice" {
				e.advance(time.Minute) // the lease of the job whose completion failed
			}
			evs := e.timeline(id)
			esc := ofType(evs, executor.EventEscalated)
			if !tc.escalates {
				if len(esc) != 0 || e.escalations("P0", escalation.ReasonDeadline) != 0 || len(e.outbox(id)) != 0 {
					t.Fatalf("escalated:%s", dump(evs))
				}
				e.advance(24 * time.Hour)
				if n := len(ofType(e.timeline(id), executor.EventEscalated)); n != 0 {
					t.Fatalf("escalated later:%s", dump(e.timeline(id)))
				}
				return
			}
			if len(esc) != 1 {
				t.Fatalf("%d escalated events at 30m, want 1:%s", len(esc), dump(evs))
			}
			ev := esc[0]
			if !ev.Time.Equal(t0.Add(30*time.Minute)) && tc.name != "deadline job runs twice" {
				t.Errorf("escalated at %s, want %s", ev.Time, t0.Add(30*time.Minute))
			}
			for k, want := range map[string]any{"priority": "P0", "previousPriority": "P1", "reason": "deadline",
				"level": float64(1), "key": "deadline/P1", "mention": "@oncall-lead"} {
				if got := detail(t, ev, k); got != want {
					t.Errorf("escalated %s = %v, want %v", k, got, want)
				}
			}
			if st := e.state(id); st.Priority != "P0" || st.Level != 1 || st.Escalations != 1 || st.EscalatedPriority != "P0" {
				t.Errorf("state %+v", st)
			}
			msgs := e.outbox(id)
			if len(msgs) != 1 || msgs[0].Target != "lead" || msgs[0].State != store.OutboxPending {
				t.Fatalf("outbox %+v, want one message to the P0 target", msgs)
			}
			if got := e.escalations("P0", escalation.ReasonDeadline); got != 1 {
				t.Errorf("remediator_escalations_total{P0,deadline} = %v", got)
			}
			// P0 is the top: nothing more however long nobody answers.
			e.advance(24 * time.Hour)
			if n := len(ofType(e.timeline(id), executor.EventEscalated)); n != 1 {
				t.Fatalf("%d escalations after a day, want 1:%s", n, dump(e.timeline(id)))
			}
		})
	}
}

// The ladder of deadlines: P3 → P2 after 24h, → P1 2h later, → P0 30m
// later; each level's targets are told once.
func TestDeadlinesClimbTheLevels(t *testing.T) {
	t0 := start()
	e := newEnv(t, t0, withTargets(quietTargets))
	id, _ := e.fire("P3")
	e.drain()
	steps := []struct {
		after    time.Duration
		priority string
		target   string // "" when the level has no target
	}{
		{24 * time.Hour, "P2", "team"},
		{2 * time.Hour, "P1", "oncall"},
		{30 * time.Minute, "P0", "lead"},
	}
	for i, s := range steps {
		e.advance(s.after - time.Second)
		if n := len(ofType(e.timeline(id), executor.EventEscalated)); n != i {
			t.Fatalf("step %d: %d escalations a second early:%s", i, n, dump(e.timeline(id)))
		}
		e.advance(time.Second)
		esc := ofType(e.timeline(id), executor.EventEscalated)
		if len(esc) != i+1 || detail(t, esc[i], "priority") != s.priority || detail(t, esc[i], "level") != float64(i+1) {
			t.Fatalf("step %d: escalations:%s", i, dump(e.timeline(id)))
		}
		if st := e.state(id); st.Priority != s.priority || st.Level != i+1 {
			t.Fatalf("step %d: state %+v", i, st)
		}
	}
	var targets []string
	for _, m := range e.outbox(id) {
		targets = append(targets, m.Target)
	}
	if want := []string{"team", "oncall", "lead"}; !slices.Equal(targets, want) {
		t.Fatalf("outbox targets %v, want %v", targets, want)
	}
}

// Outcomes escalate at once, at the incident's priority, with the reason.
func TestOutcomesEscalateImmediately(t *testing.T) {
	for _, tc := range []struct {
		name     string
		opts     []envOption
		setup    func(e *env)
		priority string
		wait     time.Duration // fake time until the outcome is known
		reason   string
		want     []string // the timeline
	}{
		{
			name: "failed", opts: []envOption{enforce}, setup: func(e *env) { e.act.fail.Store(true) },
			priority: "P1", reason: escalation.ReasonFailed,
			want: []string{incident.EventReceived, "matched", "diagnosed", "planned", executor.EventIntent, executor.EventFailed, executor.EventEscalated},
		},
		{
			name: "blocked by a guard", opts: []envOption{enforce, allowedNamespaces("elsewhere")},
			priority: "P2", reason: escalation.ReasonBlocked,
			want: []string{incident.EventReceived, "matched", "diagnosed", "planned", executor.EventBlocked, executor.EventEscalated},
		},
		{
			name: "ineffective: the ladder's end", opts: []envOption{enforce},
			priority: "P2", wait: 5 * time.Minute, reason: escalation.ReasonIneffective,
			want: []string{incident.EventReceived, "matched", "diagnosed", "planned", executor.EventIntent, executor.EventApplied,
				executor.EventRolledOut, executor.EventIneffective, "matched", "diagnosed", "planned", executor.EventEscalated},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t0 := start()
			e := newEnv(t, t0, append(tc.opts, withTargets(quietTargets))...)
			if tc.setup != nil {
				tc.setup(e)
			}
			id, _ := e.fire(tc.priority)
			e.drain()
			if tc.wait > 0 {
				if n := len(ofType(e.timeline(id), executor.EventEscalated)); n != 0 {
					t.Fatalf("escalated before the outcome:%s", dump(e.timeline(id)))
				}
				e.advance(tc.wait)
			}
			evs := e.timeline(id)
			if got := typesOf(evs); !slices.Equal(got, tc.want) {
				t.Fatalf("timeline\n got %v\nwant %v%s", got, tc.want, dump(evs))
			}
			esc := ofType(evs, executor.EventEscalated)[0]
			if !esc.Time.Equal(t0.Add(tc.wait)) {
				t.Errorf("escalated at %s, want at once (%s)", esc.Time, t0.Add(tc.wait))
			}
			if detail(t, esc, "reason") != tc.reason || detail(t, esc, "priority") != tc.priority {
				t.Errorf("escalated %s", esc.Details)
			}
			if got := e.escalations(tc.priority, tc.reason); got != 1 {
				t.Errorf("remediator_escalations_total{%s,%s} = %v", tc.priority, tc.reason, got)
			}
			msgs := e.outbox(id)
			want := quietTargets[policy.Priority(tc.priority)].Webhooks[0].Name
			if len(msgs) != 1 || msgs[0].Target != want {
				t.Fatalf("outbox %+v, want one message to %s", msgs, want)
			}
			if tc.reason == escalation.ReasonFailed {
				xs, err := e.st.Executions(context.Background(), store.ExecutionFilter{IncidentID: id})
				if err != nil || len(xs) != 1 || xs[0].State != store.ExecFailed {
					t.Fatalf("executions %+v, %v", xs, err)
				}
				// The payload lists what was done, with its outcome.
				if !strings.Contains(string(msgs[0].Payload), `"state":"failed"`) {
					t.Errorf("payload %s", msgs[0].Payload)
				}
			}
		})
	}
}

// A P0 incident is handed to the P0 targets at once, even when the
// remediation works, and only once.
func TestP0NotifiesAtOnce(t *testing.T) {
	for _, mode := range []string{"dry-run", "enforce"} {
		t.Run(mode, func(t *testing.T) {
			t0 := start()
			opts := []envOption{withTargets(quietTargets)}
			if mode == "enforce" {
				opts = append(opts, enforce)
			}
			e := newEnv(t, t0, opts...)
			id, a := e.fire("P0")
			e.drain()
			evs := e.timeline(id)
			want := []string{incident.EventReceived, "matched", "diagnosed", "planned", executor.EventEscalated, executor.EventProposed}
			if mode == "enforce" {
				want = []string{incident.EventReceived, "matched", "diagnosed", "planned", executor.EventEscalated,
					executor.EventIntent, executor.EventApplied, executor.EventRolledOut}
			}
			if got := typesOf(evs); !slices.Equal(got, want) {
				t.Fatalf("timeline\n got %v\nwant %v%s", got, want, dump(evs))
			}
			esc := ofType(evs, executor.EventEscalated)[0]
			if detail(t, esc, "reason") != escalation.ReasonP0 || detail(t, esc, "priority") != "P0" || !esc.Time.Equal(t0) {
				t.Errorf("escalated %s at %s", esc.Details, esc.Time)
			}
			e.resolve(a)
			e.advance(time.Hour)
			if n := len(ofType(e.timeline(id), executor.EventEscalated)); n != 1 {
				t.Fatalf("%d escalations, want 1:%s", n, dump(e.timeline(id)))
			}
			if msgs := e.outbox(id); len(msgs) != 1 || msgs[0].Target != "lead" {
				t.Fatalf("outbox %+v", msgs)
			}
		})
	}
}

// Without a target for its priority, an escalation is still recorded.
func TestEscalationWithoutTargets(t *testing.T) {
	e := newEnv(t, start(), enforce)
	e.act.fail.Store(true)
	id, _ := e.fire("P3")
	e.drain()
	esc := ofType(e.timeline(id), executor.EventEscalated)
	if len(esc) != 1 || !strings.Contains(esc[0].Reason, "no notification target is configured for P3") {
		t.Fatalf("escalations:%s", dump(e.timeline(id)))
	}
	if msgs := e.outbox(id); len(msgs) != 0 {
		t.Fatalf("outbox %+v", msgs)
	}
}
