package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/remediator/remediator/internal/incident"
	"github.com/remediator/remediator/internal/store"
)

// The suite of guarded remediation: scheduled jobs with references, the
// execution ledger, the guards' state, proposals, pause and windows.

// incidents ingests one notification of n firing alerts (fingerprints
// prefix+index) and returns the incident ids. Their firing jobs are left
// in the queue.
func incidents(t *testing.T, st store.Store, prefix string, n int) []string {
	t.Helper()
	alerts := make([]incident.Alert, n)
	for i := range alerts {
		alerts[i] = Alert(fmt.Sprintf("%s%012d", prefix, i), incident.StatusFiring, t0)
	}
	r := mustIngest(t, st, Notification(alerts...))
	ids := make([]string, n)
	for i, a := range r.Alerts {
		ids[i] = a.IncidentID
	}
	return ids
}

// drain claims and completes every job due now.
func drain(t *testing.T, st store.Store) { t.Helper(); allJobs(t, st) }

func claim(t *testing.T, st store.Store, worker string, lease time.Duration) []incident.Job {
	t.Helper()
	jobs, err := st.ClaimJobs(ctx, worker, 100, lease)
	if err != nil {
		t.Fatalf("ClaimJobs: %v", err)
	}
	return jobs
}

func jobRefs(jobs []incident.Job) []string {
	out := make([]string, len(jobs))
	for i, j := range jobs {
		out[i] = j.Ref
	}
	return out
}

func eventTypes(t *testing.T, st store.Store, id string) []string {
	t.Helper()
	_, evs := mustIncident(t, st, id)
	var out []string
	for _, e := range evs {
		out = append(out, e.Type)
	}
	return out
}

func (s suite) jobsEnqueueRef(t *testing.T) {
	clock := NewClock(t0)
	st := s.open(t, store.WithClock(clock.Now))
	ids := incidents(t, st, "e9e9", 2)
	drain(t, st)
	err := st.Enqueue(ctx,
		store.NewJob{IncidentID: ids[0], Kind: incident.JobVerify, Ref: "exec-1", NotificationID: "n1", CorrelationID: "c1"},
		store.NewJob{IncidentID: ids[1], Kind: incident.JobApproved, Ref: "prop-1", CreatedAt: t0.Add(-time.Minute)},
		store.NewJob{IncidentID: ids[1], Kind: incident.JobExpire, Ref: "prop-1", NotBefore: t0.Add(time.Hour)},
	)
	if err != nil {
		t.Fatal(err)
	}
	jobs := claim(t, st, "w", time.Minute)
	if len(jobs) != 2 {
		t.Fatalf("claimed %+v, want the verify and approved jobs", jobs)
	}
	v, a := jobs[0], jobs[1]
	if v.IncidentID != ids[0] || v.Kind != incident.JobVerify || v.Ref != "exec-1" || v.NotificationID != "n1" ||
		v.CorrelationID != "c1" || !v.CreatedAt.Equal(t0) || v.Attempts != 1 {
		t.Errorf("verify job = %+v", v)
	}
	if a.IncidentID != ids[1] || a.Kind != incident.JobApproved || a.Ref != "prop-1" || !a.CreatedAt.Equal(t0.Add(-time.Minute)) {
		t.Errorf("approved job = %+v", a)
	}
	for _, j := range jobs {
		if err := st.CompleteJob(ctx, "w", j.ID); err != nil {
			t.Fatal(err)
		}
	}
	clock.Advance(time.Hour)
	got := claim(t, st, "w", time.Minute)
	if len(got) != 1 || got[0].Kind != incident.JobExpire || got[0].Ref != "prop-1" {
		t.Fatalf("at NotBefore: %+v, want the expire job", got)
	}
	if err := st.CompleteJob(ctx, "w", got[0].ID); err != nil {
		t.Fatal(err)
	}

	// All or nothing: one job of an unknown incident fails the call.
	err = st.Enqueue(ctx, store.NewJob{IncidentID: ids[0], Kind: "x"}, store.NewJob{IncidentID: incident.NewID(), Kind: "y"})
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Enqueue for an unknown incident: %v, want ErrNotFound", err)
	}
	if err := st.Enqueue(ctx, store.NewJob{IncidentID: ids[0]}); err == nil {
		t.Errorf("Enqueue without Kind: no error")
	}
	clock.Advance(time.Hour)
	if got := claim(t, st, "w", time.Minute); len(got) != 0 {
		t.Errorf("a failed Enqueue left jobs: %+v", got)
	}
	if err := st.Enqueue(ctx); err != nil {
		t.Errorf("Enqueue(): %v", err)
	}
}

func (s suite) jobsCompleteWith(t *testing.T) {
	clock := NewClock(t0)
	st := s.open(t, store.WithClock(clock.Now))
	id := incidents(t, st, "c0c0", 1)[0]
	jobs := claim(t, st, "w1", time.Minute)
	if len(jobs) != 1 {
		t.Fatalf("claim: %+v", jobs)
	}
	// A follow-up for an unknown incident fails the completion as a whole.
	bad := []store.NewJob{{IncidentID: id, Kind: incident.JobVerify, Ref: "x1"}, {IncidentID: incident.NewID(), Kind: incident.JobVerify}}
	if err := st.CompleteJobWith(ctx, "w1", jobs[0].ID, bad, incident.Event{IncidentID: id, Type: "applied"}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("CompleteJobWith(unknown incident): %v, want ErrNotFound", err)
	}
	if got := eventTypes(t, st, id); fmt.Sprint(got) != "[received]" {
		t.Errorf("a failed completion appended events: %v", got)
	}
	// Not the lease holder: nothing enqueued.
	next := []store.NewJob{
		{IncidentID: id, Kind: incident.JobVerify, Ref: "exec-1", NotBefore: t0.Add(time.Minute)},
		{IncidentID: id, Kind: incident.JobExpire, Ref: "prop-1", NotBefore: t0.Add(time.Hour)},
	}
	if err := st.CompleteJobWith(ctx, "w2", jobs[0].ID, next); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("CompleteJobWith by non-holder: %v, want ErrLeaseLost", err)
	}
	if err := st.CompleteJobWith(ctx, "w1", jobs[0].ID, next, incident.Event{IncidentID: id, Type: "applied"}); err != nil {
		t.Fatal(err)
	}
	if err := st.CompleteJobWith(ctx, "w1", jobs[0].ID, next); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("second CompleteJobWith: %v, want ErrLeaseLost", err)
	}
	if err := st.CompleteJobWith(ctx, "w1", 1<<40, next); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("CompleteJobWith(unknown job): %v, want ErrNotFound", err)
	}
	if got := eventTypes(t, st, id); fmt.Sprint(got) != "[received applied]" {
		t.Errorf("events = %v", got)
	}
	if got := claim(t, st, "w", time.Minute); len(got) != 0 {
		t.Fatalf("follow-ups handed out before NotBefore: %+v", got)
	}
	clock.Advance(time.Minute)
	got := claim(t, st, "w", time.Minute)
	if len(got) != 1 || got[0].Ref != "exec-1" {
		t.Fatalf("verify follow-up: %+v", got)
	}
	if err := st.CompleteJob(ctx, "w", got[0].ID); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Hour)
	if got := claim(t, st, "w", time.Minute); len(got) != 1 || got[0].Ref != "prop-1" {
		t.Fatalf("expire follow-up: %+v", got)
	}
}

// jobsSchedule checks the claim order of one incident's jobs: a job
// scheduled for later does not hold back due ones, due jobs go in id order
// one at a time, a retrying job keeps its place, and an expired lease is
// taken over before earlier pending jobs.
func (s suite) jobsSchedule(t *testing.T) {
	type enq struct {
		name  string
		after time.Duration // NotBefore = t0 + after
	}
	// A step advances the clock, then claims (all due jobs, limit 100) and
	// expects the named jobs; then it completes them, or fails them for a
	// retry, or leaves them leased.
	type step struct {
		advance time.Duration
		want    []string
		then    string // "complete" (default), "fail" (retry in 10m), "hold" (lease 1m, not completed)
	}
	cases := []struct {
		name  string
		jobs  []enq
		steps []step
	}{
		{"scheduled job does not block a later due job",
			[]enq{{"expire", time.Hour}, {"approved", 0}},
			[]step{{want: []string{"approved"}}, {advance: 59 * time.Minute}, {advance: time.Minute, want: []string{"expire"}}}},
		{"due jobs go in id order, one at a time",
			[]enq{{"a", 0}, {"b", 0}, {"c", 0}},
			[]step{{want: []string{"a"}}, {want: []string{"b"}}, {want: []string{"c"}}, {}}},
		{"jobs due together go in id order, whatever their NotBefore",
			[]enq{{"a", 2 * time.Minute}, {"b", time.Minute}, {"c", 0}},
			[]step{{want: []string{"c"}}, {advance: 5 * time.Minute, want: []string{"a"}}, {want: []string{"b"}}, {}}},
		{"staggered",
			[]enq{{"a", 10 * time.Minute}, {"b", 0}, {"c", 5 * time.Minute}, {"d", 0}},
			[]step{{want: []string{"b"}}, {want: []string{"d"}}, {}, {advance: 5 * time.Minute, want: []string{"c"}},
				{advance: 5 * time.Minute, want: []string{"a"}}, {}}},
		{"a leased job holds back due jobs, also scheduled ones that came due",
			[]enq{{"a", 0}, {"b", 30 * time.Second}, {"c", 0}},
			[]step{{want: []string{"a"}, then: "hold"}, {advance: 30 * time.Second}, {advance: 25 * time.Second},
				// a's lease (1m) runs out: a is taken over, then b and c go in order.
				{advance: 10 * time.Second, want: []string{"a"}}, {want: []string{"b"}}, {want: []string{"c"}}, {}}},
		{"an expired lease is taken over before earlier pending jobs",
			[]enq{{"a", 2 * time.Minute}, {"b", 0}},
			[]step{{want: []string{"b"}, then: "hold"}, {advance: 3 * time.Minute, want: []string{"b"}},
				{want: []string{"a"}}}},
		{"a job retrying after a failure keeps its place",
			[]enq{{"a", 0}, {"b", 0}},
			[]step{{want: []string{"a"}, then: "fail"}, {advance: 9 * time.Minute}, {advance: time.Minute, want: []string{"a"}},
				{want: []string{"b"}}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clock := NewClock(t0)
			st := s.open(t, store.WithClock(clock.Now))
			ids := incidents(t, st, "5c4e", 2)
			drain(t, st)
			var jobs []store.NewJob
			for _, e := range tc.jobs {
				jobs = append(jobs, store.NewJob{IncidentID: ids[0], Kind: incident.JobVerify, Ref: e.name, NotBefore: t0.Add(e.after)})
			}
			// Another incident's job, always due: never held back by ids[0]'s.
			if err := st.Enqueue(ctx, jobs...); err != nil {
				t.Fatal(err)
			}
			for i, stp := range tc.steps {
				if err := st.Enqueue(ctx, store.NewJob{IncidentID: ids[1], Kind: incident.JobVerify, Ref: "other"}); err != nil {
					t.Fatal(err)
				}
				clock.Advance(stp.advance)
				lease := time.Hour
				if stp.then == "hold" {
					lease = time.Minute
				}
				got := claim(t, st, "w", lease)
				var mine []string
				others := 0
				for _, j := range got {
					if j.IncidentID == ids[1] {
						others++
						if err := st.CompleteJob(ctx, "w", j.ID); err != nil {
							t.Fatal(err)
						}
						continue
					}
					mine = append(mine, j.Ref)
					switch stp.then {
					case "", "complete":
						if err := st.CompleteJob(ctx, "w", j.ID); err != nil {
							t.Fatal(err)
						}
					case "fail":
						if err := st.FailJob(ctx, "w", j.ID, "boom", 10*time.Minute); err != nil {
							t.Fatal(err)
						}
					}
				}
				if fmt.Sprint(mine) != fmt.Sprint(stp.want) {
					t.Fatalf("step %d: claimed %v, want %v", i, mine, stp.want)
				}
				if others != 1 {
					t.Fatalf("step %d: the other incident's due job was held back (%d claimed)", i, others)
				}
			}
		})
	}
}

// jobsConcurrentOneAtATime runs many claimers on two stores sharing one
// database over incidents with many jobs, some scheduled far ahead: no two
// jobs of one incident are ever leased at once, each incident's due jobs
// run in id order, and scheduled jobs hold nothing back.
func (s suite) jobsConcurrentOneAtATime(t *testing.T) {
	dsn := s.b.NewDSN(t)
	a := s.b.Open(t, dsn)
	defer a.Close()
	b := s.b.Open(t, dsn)
	defer b.Close()
	const nInc, perInc = 6, 12
	ids := incidents(t, a, "0a0a", nInc)
	var jobs []store.NewJob
	due := nInc // the firing jobs
	for k := range perInc {
		for i, id := range ids {
			j := store.NewJob{IncidentID: id, Kind: incident.JobVerify, Ref: fmt.Sprintf("%d-%d", i, k)}
			if k%3 == 1 {
				j.NotBefore = time.Now().Add(time.Hour) // never due in this test
				j.Ref = "later"
			} else {
				due++
			}
			jobs = append(jobs, j)
		}
	}
	if err := a.Enqueue(ctx, jobs...); err != nil {
		t.Fatal(err)
	}
	var (
		mu       sync.Mutex
		leased   = map[string]bool{}
		lastID   = map[string]int64{}
		done     atomic.Int64
		wg       sync.WaitGroup
		deadline = time.Now().Add(60 * time.Second)
	)
	for w := range 8 {
		st := a
		if w%2 == 1 {
			st = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("w%d", w)
			for done.Load() < int64(due) {
				if time.Now().After(deadline) {
					t.Errorf("%s: timed out with %d of %d jobs done", name, done.Load(), due)
					return
				}
				got, err := st.ClaimJobs(ctx, name, 3, time.Minute)
				if err != nil {
					t.Error(err)
					return
				}
				if len(got) == 0 {
					time.Sleep(time.Millisecond)
					continue
				}
				mu.Lock()
				for _, j := range got {
					if j.Ref == "later" {
						t.Errorf("scheduled job %d handed out early", j.ID)
					}
					if leased[j.IncidentID] {
						t.Errorf("two jobs of incident %s leased at once", j.IncidentID)
					}
					if j.ID <= lastID[j.IncidentID] {
						t.Errorf("incident %s: job %d after job %d", j.IncidentID, j.ID, lastID[j.IncidentID])
					}
					leased[j.IncidentID], lastID[j.IncidentID] = true, j.ID
				}
				mu.Unlock()
				time.Sleep(200 * time.Microsecond)
				for _, j := range got {
					mu.Lock()
					leased[j.IncidentID] = false // before the commit: a claim can only follow it
					mu.Unlock()
					if err := st.CompleteJob(ctx, name, j.ID); err != nil {
						t.Error(err)
					}
					done.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if done.Load() != int64(due) {
		t.Errorf("%d jobs done, want %d", done.Load(), due)
	}
}

// execution returns an execution of step on the deployment shop/web.
func execution(incidentID string, step int) store.Execution {
	return store.Execution{
		ID: incident.NewID(), IncidentID: incidentID, Step: step,
		Policy: "web-errors", Remedy: "restart", Action: "restart",
		Namespace: "shop", Kind: "Deployment", Name: "web",
		Mode: "enforce", Change: json.RawMessage(`{"action": "restart",  "target":{"kind":"Deployment"}}`),
		Owner: "replica-1",
	}
}

func targetQuery(incidentID string) store.GuardQuery {
	return store.GuardQuery{IncidentID: incidentID, Namespace: "shop", Kind: "Deployment", Name: "web"}
}

func mustBegin(t *testing.T, st store.Store, e store.Execution, events ...incident.Event) {
	t.Helper()
	if err := st.BeginExecution(ctx, e, targetQuery(e.IncidentID), nil, events...); err != nil {
		t.Fatalf("BeginExecution(%s step %d): %v", e.IncidentID, e.Step, err)
	}
}

func executions(t *testing.T, st store.Store, f store.ExecutionFilter) []store.Execution {
	t.Helper()
	list, err := st.Executions(ctx, f)
	if err != nil {
		t.Fatalf("Executions: %v", err)
	}
	return list
}

func (s suite) executionLifecycle(t *testing.T) {
	clock := NewClock(t0)
	st := s.open(t, store.WithClock(clock.Now))
	id := incidents(t, st, "e1e1", 1)[0]
	e := execution(id, 0)
	e.CreatedAt = t0.Add(-time.Second)
	e.State, e.Reason = store.ExecApplied, "first try" // the store writes intents: State is ignored
	mustBegin(t, st, e, incident.Event{IncidentID: id, Type: "intent", Reason: "about to restart"})

	list := executions(t, st, store.ExecutionFilter{IncidentID: id})
	if len(list) != 1 {
		t.Fatalf("%d executions, want 1", len(list))
	}
	got := list[0]
	want := e
	want.State, want.UpdatedAt = store.ExecIntent, e.CreatedAt
	if !reflect.DeepEqual(got, want) {
		t.Errorf("stored execution\n got %+v\nwant %+v", got, want)
	}
	if string(got.Change) != string(e.Change) {
		t.Errorf("Change not kept byte for byte: %s", got.Change)
	}
	if got.TargetKey() != "Deployment/shop/web" {
		t.Errorf("TargetKey = %q", got.TargetKey())
	}
	if types := eventTypes(t, st, id); fmt.Sprint(types) != "[received intent]" {
		t.Errorf("events = %v", types)
	}

	// Exactly once per (incident, step), and per ID.
	dup := execution(id, 0)
	if err := st.BeginExecution(ctx, dup, targetQuery(id), nil, incident.Event{IncidentID: id, Type: "intent"}); !errors.Is(err, store.ErrExists) {
		t.Errorf("second execution of step 0: %v, want ErrExists", err)
	}
	sameID := execution(id, 5)
	sameID.ID = e.ID
	if err := st.BeginExecution(ctx, sameID, targetQuery(id), nil); !errors.Is(err, store.ErrExists) {
		t.Errorf("execution with a taken ID: %v, want ErrExists", err)
	}
	if n := len(eventTypes(t, st, id)); n != 2 {
		t.Errorf("a refused begin appended events: %d", n)
	}
	// Bad input.
	if err := st.BeginExecution(ctx, execution(incident.NewID(), 0), store.GuardQuery{}, nil); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("execution of an unknown incident: %v, want ErrNotFound", err)
	}
	noID := execution(id, 1)
	noID.ID = ""
	if err := st.BeginExecution(ctx, noID, targetQuery(id), nil); err == nil {
		t.Errorf("execution without ID: no error")
	}
	other := execution(id, 1)
	q := targetQuery(id)
	q.Name = "api"
	if err := st.BeginExecution(ctx, other, q, nil); err == nil {
		t.Errorf("guard query about another target: no error")
	}
	badJSON := execution(id, 1)
	badJSON.Change = json.RawMessage(`{"x":`)
	if err := st.BeginExecution(ctx, badJSON, targetQuery(id), nil); err == nil {
		t.Errorf("invalid Change JSON: no error")
	}
	// An empty GuardQuery means e's incident and target.
	noChange := execution(id, 1)
	noChange.Change = nil
	if err := st.BeginExecution(ctx, noChange, store.GuardQuery{}, nil); err != nil {
		t.Fatalf("BeginExecution with an empty GuardQuery: %v", err)
	}
	if l := executions(t, st, store.ExecutionFilter{IncidentID: id}); len(l) != 2 || l[1].Change != nil {
		t.Errorf("executions = %+v", l)
	}

	// Transitions.
	type tr struct {
		from    []string
		to      string
		wantErr error // nil, ErrConflict or ErrNotFound
	}
	clock.Advance(time.Minute)
	applyAt := store.UTC(clock.Now())
	for i, x := range []tr{
		{[]string{store.ExecApplied}, store.ExecVerified, store.ErrConflict},
		{nil, store.ExecApplied, store.ErrConflict},
		{[]string{store.ExecIntent}, store.ExecApplied, nil},
		{[]string{store.ExecIntent}, store.ExecAbandoned, store.ErrConflict},
		{store.InFlightStates, store.ExecVerified, nil},
		{store.InFlightStates, store.ExecFailed, store.ErrConflict},
	} {
		if i == 4 {
			clock.Advance(time.Minute)
		}
		err := st.FinishExecution(ctx, e.ID, x.from, x.to, fmt.Sprintf("reason %d", i),
			incident.Event{IncidentID: id, Type: x.to})
		if x.wantErr == nil && err != nil || x.wantErr != nil && !errors.Is(err, x.wantErr) {
			t.Fatalf("transition %d %v->%s: %v, want %v", i, x.from, x.to, err, x.wantErr)
		}
	}
	got = executions(t, st, store.ExecutionFilter{IncidentID: id, States: []string{store.ExecVerified}})[0]
	if got.State != store.ExecVerified || got.Reason != "reason 4" || got.AppliedAt == nil || !got.AppliedAt.Equal(applyAt) ||
		!got.UpdatedAt.Equal(applyAt.Add(time.Minute)) || !got.CreatedAt.Equal(e.CreatedAt) {
		t.Errorf("after intent->applied->verified: %+v (appliedAt %v)", got, got.AppliedAt)
	}
	if types := eventTypes(t, st, id); fmt.Sprint(types) != "[received intent applied verified]" {
		t.Errorf("events = %v: a refused transition appended some", types)
	}
	if err := st.FinishExecution(ctx, "no-such-execution", store.InFlightStates, store.ExecFailed, ""); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("FinishExecution(unknown): %v, want ErrNotFound", err)
	}
	if err := st.FinishExecution(ctx, noChange.ID, store.InFlightStates, "bogus", ""); err == nil {
		t.Errorf("FinishExecution to an unknown state: no error")
	}
	// The transition and its events are one: an event for an unknown
	// incident leaves the execution as it was.
	err := st.FinishExecution(ctx, noChange.ID, store.InFlightStates, store.ExecAbandoned, "",
		incident.Event{IncidentID: incident.NewID(), Type: "abandoned"})
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("FinishExecution with an event of an unknown incident: %v", err)
	}
	if l := executions(t, st, store.ExecutionFilter{IncidentID: id, States: store.InFlightStates}); len(l) != 1 || l[0].ID != noChange.ID {
		t.Errorf("in flight after a failed finish: %+v", l)
	}
}

func (s suite) executionsFilter(t *testing.T) {
	clock := NewClock(t0)
	st := s.open(t, store.WithClock(clock.Now))
	ids := incidents(t, st, "f1f1", 3)
	var all []string
	for i := range 9 {
		clock.Advance(time.Second)
		e := execution(ids[i%3], i)
		e.Name = []string{"web", "api", "db"}[i%3]
		e.Namespace = []string{"shop", "shop", "data"}[i%3]
		if err := st.BeginExecution(ctx, e, store.GuardQuery{}, nil); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			if err := st.FinishExecution(ctx, e.ID, []string{store.ExecIntent}, store.ExecApplied, ""); err != nil {
				t.Fatal(err)
			}
		}
		all = append(all, e.ID)
	}
	check := func(f store.ExecutionFilter, want ...int) {
		t.Helper()
		var got, exp []string
		for _, e := range executions(t, st, f) {
			got = append(got, e.ID)
		}
		for _, i := range want {
			exp = append(exp, all[i])
		}
		if fmt.Sprint(got) != fmt.Sprint(exp) {
			t.Errorf("Executions(%+v) = %v, want %v", f, got, exp)
		}
	}
	check(store.ExecutionFilter{}, 0, 1, 2, 3, 4, 5, 6, 7, 8)
	check(store.ExecutionFilter{Limit: 2}, 0, 1)
	check(store.ExecutionFilter{IncidentID: ids[1]}, 1, 4, 7)
	check(store.ExecutionFilter{States: []string{store.ExecApplied}}, 0, 2, 4, 6, 8)
	check(store.ExecutionFilter{States: []string{store.ExecApplied, store.ExecIntent}, Namespace: "shop"}, 0, 1, 3, 4, 6, 7)
	check(store.ExecutionFilter{Kind: "Deployment", Namespace: "shop", Name: "api", States: []string{store.ExecIntent}}, 1, 7)
	check(store.ExecutionFilter{IncidentID: incident.NewID()})
	if l := executions(t, st, store.ExecutionFilter{Name: "nothing"}); l == nil || len(l) != 0 {
		t.Errorf("no match: %#v, want an empty list", l)
	}
}

// guardStateContents builds a history and checks every part of the
// GuardState, and that BeginExecution's decide sees exactly what GuardState
// returns.
func (s suite) guardStateContents(t *testing.T) {
	clock := NewClock(t0)
	st := s.open(t, store.WithClock(clock.Now))
	ids := incidents(t, st, "95e5", 8)
	now := t0.Add(2 * time.Hour)
	// Executions on the target (shop/web) and elsewhere, at various times.
	type past struct {
		inc   int
		ago   time.Duration
		name  string
		state string
	}
	history := []past{
		{0, 90 * time.Minute, "web", store.ExecVerified},  // 0: outside the last hour and the lookback
		{1, 60 * time.Minute, "web", store.ExecFailed},    // 1: exactly 1h ago: not in the last hour; at Since
		{2, 50 * time.Minute, "web", store.ExecAbandoned}, // 2: abandoned: not counted in the last hour
		{3, 40 * time.Minute, "api", store.ExecApplied},   // 3: another target
		{4, 30 * time.Minute, "web", store.ExecApplied},   // 4: in flight
		{5, 20 * time.Minute, "web", store.ExecIntent},    // 5: in flight
		{6, 10 * time.Minute, "db", store.ExecIneffective},
	}
	var execs []store.Execution
	for _, h := range history {
		e := execution(ids[h.inc], 0)
		e.Name, e.CreatedAt = h.name, now.Add(-h.ago)
		if err := st.BeginExecution(ctx, e, store.GuardQuery{}, nil); err != nil {
			t.Fatal(err)
		}
		if h.state != store.ExecIntent {
			if err := st.FinishExecution(ctx, e.ID, []string{store.ExecIntent}, h.state, "r"); err != nil {
				t.Fatal(err)
			}
		}
		list := executions(t, st, store.ExecutionFilter{IncidentID: ids[h.inc]})
		execs = append(execs, list[0])
	}
	windows := []store.Window{
		{ID: "past", Start: now.Add(-3 * time.Hour), End: now.Add(-time.Hour), Reason: "over"},
		{ID: "ends-now", Start: now.Add(-time.Hour), End: now},
		{ID: "later", Start: now.Add(time.Hour), End: now.Add(2 * time.Hour), Namespaces: []string{"shop", "data"}, By: "bob"},
		{ID: "current", Start: now.Add(-10 * time.Minute), End: now.Add(10 * time.Minute), Reason: "upgrade", By: "alice"},
	}
	for _, w := range windows {
		if err := st.AddWindow(ctx, w); err != nil {
			t.Fatal(err)
		}
	}
	pause := store.PauseState{Paused: true, By: "alice", Reason: "freeze", At: now.Add(-time.Minute)}
	if err := st.SetPause(ctx, pause); err != nil {
		t.Fatal(err)
	}

	q := store.GuardQuery{IncidentID: ids[7], Namespace: "shop", Kind: "Deployment", Name: "web",
		Since: now.Add(-time.Hour), Now: now}
	gs, err := st.GuardState(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	names := func(ws []store.Window) (out []string) {
		for _, w := range ws {
			out = append(out, w.ID)
		}
		return out
	}
	idx := func(list []store.Execution) (out []int) {
		for _, e := range list {
			out = append(out, slices.IndexFunc(execs, func(x store.Execution) bool { return x.ID == e.ID }))
		}
		return out
	}
	if gs.IncidentStatus != incident.StatusFiring {
		t.Errorf("IncidentStatus = %q", gs.IncidentStatus)
	}
	if gs.Pause != pause {
		t.Errorf("Pause = %+v, want %+v", gs.Pause, pause)
	}
	if got := names(gs.Windows); fmt.Sprint(got) != "[current later]" {
		t.Errorf("Windows = %v, want [current later] (End > Now, by Start)", got)
	}
	if len(gs.Windows) != 2 || len(gs.InFlight) != 2 {
		t.Fatalf("GuardState = %+v", gs)
	}
	if w := gs.Windows[1]; !reflect.DeepEqual(w.Namespaces, []string{"shop", "data"}) || w.By != "bob" ||
		!w.Start.Equal(now.Add(time.Hour)) || w.CreatedAt.IsZero() {
		t.Errorf("window = %+v", w)
	}
	if gs.Windows[0].Namespaces != nil {
		t.Errorf("window without namespaces: %#v, want nil", gs.Windows[0].Namespaces)
	}
	if got := idx(gs.InFlight); fmt.Sprint(got) != "[4 5]" {
		t.Errorf("InFlight = %v, want [4 5]", got)
	}
	if !reflect.DeepEqual(gs.InFlight[0], execs[4]) {
		t.Errorf("InFlight[0] = %+v\nwant %+v", gs.InFlight[0], execs[4])
	}
	if got := idx(gs.TargetRecent); fmt.Sprint(got) != "[5 4 2 1]" {
		t.Errorf("TargetRecent = %v, want [5 4 2 1] (since Since, newest first, any state)", got)
	}
	if gs.GlobalLastHour != 4 {
		t.Errorf("GlobalLastHour = %d, want 4 (3, 4, 5, 6)", gs.GlobalLastHour)
	}

	// BeginExecution's decide sees the same.
	refuse := errors.New("refused")
	var seen store.GuardState
	err = st.BeginExecution(ctx, execution(ids[7], 0), q, func(g store.GuardState) error { seen = g; return refuse })
	if err != refuse {
		t.Fatalf("BeginExecution with a refusing decide: %v, want the decide's error unchanged", err)
	}
	if !reflect.DeepEqual(seen, gs) {
		t.Errorf("decide saw\n%+v\nGuardState returned\n%+v", seen, gs)
	}
	if l := executions(t, st, store.ExecutionFilter{IncidentID: ids[7]}); len(l) != 0 {
		t.Errorf("a refused begin wrote %+v", l)
	}

	// Zero Now is the store's clock; another target has its own lock.
	clock.Advance(2*time.Hour + 30*time.Minute) // now + 30m
	gs, err = st.GuardState(ctx, store.GuardQuery{Namespace: "shop", Kind: "Deployment", Name: "api"})
	if err != nil {
		t.Fatal(err)
	}
	if gs.IncidentStatus != "" || fmt.Sprint(idx(gs.InFlight)) != "[3]" || fmt.Sprint(idx(gs.TargetRecent)) != "[3]" ||
		gs.GlobalLastHour != 2 || fmt.Sprint(names(gs.Windows)) != "[later]" {
		t.Errorf("at now+30m for api: %+v", gs)
	}
	if _, err := st.GuardState(ctx, store.GuardQuery{IncidentID: incident.NewID()}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GuardState(unknown incident): %v, want ErrNotFound", err)
	}
}

// beginRefusedWhenResolved: decide sees the status Ingest wrote.
func (s suite) beginRefusedWhenResolved(t *testing.T) {
	st := s.open(t)
	ids := incidents(t, st, "4e50", 2)
	mustIngest(t, st, Notification(Alert("4e50000000000000", incident.StatusResolved, t0)))
	errResolved := errors.New("the alert resolved")
	decide := func(g store.GuardState) error {
		if g.IncidentStatus == incident.StatusResolved {
			return fmt.Errorf("guard: %w", errResolved)
		}
		return nil
	}
	err := st.BeginExecution(ctx, execution(ids[0], 0), targetQuery(ids[0]), decide, incident.Event{IncidentID: ids[0], Type: "intent"})
	if !errors.Is(err, errResolved) {
		t.Fatalf("begin on a resolved incident: %v, want errResolved", err)
	}
	if types := eventTypes(t, st, ids[0]); fmt.Sprint(types) != "[received resolved]" {
		t.Errorf("events = %v", types)
	}
	if err := st.BeginExecution(ctx, execution(ids[1], 0), targetQuery(ids[1]), decide); err != nil {
		t.Fatalf("begin on a firing incident: %v", err)
	}
	if l := executions(t, st, store.ExecutionFilter{}); len(l) != 1 || l[0].IncidentID != ids[1] {
		t.Errorf("executions = %+v", l)
	}
}

// beginConcurrent races 50 BeginExecution calls on one target, through two
// stores sharing the database, with a decide that refuses while the target
// has an execution in flight: exactly one intent is written. Then again,
// after that execution finished.
func (s suite) beginConcurrent(t *testing.T) {
	dsn := s.b.NewDSN(t)
	a := s.b.Open(t, dsn)
	defer a.Close()
	b := s.b.Open(t, dsn)
	defer b.Close()
	const n = 50
	ids := incidents(t, a, "bc0c", n)
	errBusy := errors.New("target busy")
	decide := func(g store.GuardState) error {
		if len(g.InFlight) > 0 {
			return errBusy
		}
		return nil
	}
	for round := range 2 {
		var start, wg sync.WaitGroup
		start.Add(1)
		errs := make([]error, n)
		for i := range n {
			st := a
			if i%2 == 1 {
				st = b
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				e := execution(ids[i], round)
				start.Wait()
				errs[i] = st.BeginExecution(ctx, e, targetQuery(ids[i]), decide,
					incident.Event{IncidentID: ids[i], Type: "intent"})
			}()
		}
		start.Done()
		wg.Wait()
		won := -1
		for i, err := range errs {
			switch {
			case err == nil && won >= 0:
				t.Errorf("round %d: incidents %d and %d both began an execution on one target", round, won, i)
			case err == nil:
				won = i
			case err != errBusy:
				t.Errorf("round %d: begin %d: %v, want errBusy", round, i, err)
			}
		}
		if won < 0 {
			t.Fatalf("round %d: nobody began", round)
		}
		inflight := executions(t, b, store.ExecutionFilter{Kind: "Deployment", Namespace: "shop", Name: "web", States: store.InFlightStates})
		if len(inflight) != 1 || inflight[0].IncidentID != ids[won] {
			t.Fatalf("round %d: in flight = %+v", round, inflight)
		}
		intents := 0
		for _, id := range ids {
			for _, typ := range eventTypes(t, a, id) {
				intents += btoi(typ == "intent")
			}
		}
		if intents != round+1 {
			t.Errorf("round %d: %d intent events, want %d: refused begins appended events", round, intents, round+1)
		}
		if err := a.FinishExecution(ctx, inflight[0].ID, store.InFlightStates, store.ExecVerified, "done"); err != nil {
			t.Fatal(err)
		}
	}
	if l := executions(t, a, store.ExecutionFilter{}); len(l) != 2 {
		t.Errorf("%d executions, want 2", len(l))
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (s suite) pauseState(t *testing.T) {
	clock := NewClock(t0)
	dsn := s.b.NewDSN(t)
	st := s.b.Open(t, dsn, store.WithClock(clock.Now))
	defer st.Close()
	id := incidents(t, st, "9a05", 1)[0]
	p, err := st.Pause(ctx)
	if err != nil || p != (store.PauseState{}) {
		t.Fatalf("initial pause = %+v, %v; want the zero value", p, err)
	}
	on := store.PauseState{Paused: true, By: "alice", Reason: "change freeze", At: t0.Add(time.Minute)}
	if err := st.SetPause(ctx, on, incident.Event{IncidentID: id, Type: "paused", Actor: "alice"}); err != nil {
		t.Fatal(err)
	}
	if p, err := st.Pause(ctx); err != nil || p != on {
		t.Errorf("Pause = %+v, %v; want %+v", p, err, on)
	}
	// The pause and its events are one.
	off := store.PauseState{By: "bob", Reason: "thaw"}
	if err := st.SetPause(ctx, off, incident.Event{IncidentID: incident.NewID(), Type: "resumed"}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SetPause with an event of an unknown incident: %v", err)
	}
	if p, _ := st.Pause(ctx); p != on {
		t.Errorf("a failed SetPause changed the pause: %+v", p)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st = s.b.Open(t, dsn, store.WithClock(clock.Now))
	defer st.Close()
	if p, err := st.Pause(ctx); err != nil || p != on {
		t.Errorf("after reopen: %+v, %v", p, err)
	}
	if gs, err := st.GuardState(ctx, targetQuery(id)); err != nil || gs.Pause != on {
		t.Errorf("GuardState.Pause = %+v, %v", gs.Pause, err)
	}
	clock.Advance(time.Hour)
	if err := st.SetPause(ctx, off); err != nil {
		t.Fatal(err)
	}
	want := off
	want.At = store.UTC(clock.Now()) // At defaults to now
	if p, err := st.Pause(ctx); err != nil || p != want {
		t.Errorf("after resume: %+v, %v; want %+v", p, err, want)
	}
	if types := eventTypes(t, st, id); fmt.Sprint(types) != "[received paused]" {
		t.Errorf("events = %v", types)
	}
}

func (s suite) maintenanceWindows(t *testing.T) {
	clock := NewClock(t0)
	st := s.open(t, store.WithClock(clock.Now))
	w := store.Window{ID: "w1", Start: t0.Add(time.Hour), End: t0.Add(2 * time.Hour), Namespaces: []string{"shop"},
		Reason: "upgrade", By: "alice"}
	if err := st.AddWindow(ctx, w); err != nil {
		t.Fatal(err)
	}
	want := w
	want.CreatedAt = t0
	if got, err := st.Windows(ctx, t0); err != nil || len(got) != 1 || !reflect.DeepEqual(got[0], want) {
		t.Fatalf("Windows = %+v, %v; want [%+v]", got, err, want)
	}
	if err := st.AddWindow(ctx, w); !errors.Is(err, store.ErrExists) {
		t.Errorf("AddWindow with a taken ID: %v, want ErrExists", err)
	}
	for _, bad := range []store.Window{
		{ID: "w2", Start: t0, End: t0},
		{ID: "w3", Start: t0, End: t0.Add(-time.Second)},
		{Start: t0, End: t0.Add(time.Hour)},
	} {
		if err := st.AddWindow(ctx, bad); err == nil {
			t.Errorf("AddWindow(%+v): no error", bad)
		}
	}
	if got, err := st.Windows(ctx, t0.Add(2*time.Hour)); err != nil || got == nil || len(got) != 0 {
		t.Errorf("Windows after the end = %#v, %v; want empty", got, err)
	}
	if err := st.DeleteWindow(ctx, "w1"); err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteWindow(ctx, "w1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second DeleteWindow: %v, want ErrNotFound", err)
	}
	if got, _ := st.Windows(ctx, t0); len(got) != 0 {
		t.Errorf("deleted window listed: %+v", got)
	}
}

func proposal(incidentID string, step int, expires time.Time) store.Proposal {
	return store.Proposal{
		ID: incident.NewID(), IncidentID: incidentID, Step: step,
		Policy: "web-errors", Remedy: "rollback", Action: "rollback",
		Namespace: "shop", Kind: "Deployment", Name: "web",
		Plan: json.RawMessage(`{"action":"rollback", "toRevision": 3}`), CreatedAt: t0, ExpiresAt: expires,
	}
}

func (s suite) proposals(t *testing.T) {
	clock := NewClock(t0)
	st := s.open(t, store.WithClock(clock.Now))
	ids := incidents(t, st, "940b", 2)
	id := ids[0]
	drain(t, st)
	exp := t0.Add(time.Hour)
	p := proposal(id, 1, exp)
	p.State, p.DecidedBy = "approved", "forged" // the store writes pending proposals
	expire := []store.NewJob{{IncidentID: id, Kind: incident.JobExpire, Ref: p.ID, NotBefore: exp}}
	if err := st.Propose(ctx, p, expire, incident.Event{IncidentID: id, Type: "proposed"}); err != nil {
		t.Fatal(err)
	}
	want := p
	want.State, want.DecidedBy = store.ProposalPending, ""
	got, err := st.Proposal(ctx, p.ID)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("Proposal = %+v, %v\nwant %+v", got, err, want)
	}
	if string(got.Plan) != string(p.Plan) {
		t.Errorf("Plan not kept byte for byte: %s", got.Plan)
	}
	// Exactly once per (incident, step); all or nothing.
	if err := st.Propose(ctx, proposal(id, 1, exp), nil); !errors.Is(err, store.ErrExists) {
		t.Errorf("second proposal of step 1: %v, want ErrExists", err)
	}
	if err := st.Propose(ctx, proposal(incident.NewID(), 1, exp), nil); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("proposal of an unknown incident: %v, want ErrNotFound", err)
	}
	orphan := proposal(id, 2, exp)
	if err := st.Propose(ctx, orphan, []store.NewJob{{IncidentID: incident.NewID(), Kind: incident.JobExpire}}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("proposal with a job of an unknown incident: %v, want ErrNotFound", err)
	}
	if _, err := st.Proposal(ctx, orphan.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a failed Propose stored its proposal: %v", err)
	}
	if err := st.Propose(ctx, proposal(id, 3, time.Time{}), nil); err == nil {
		t.Errorf("proposal without ExpiresAt: no error")
	}
	clock.Advance(time.Second)
	p2 := proposal(id, 2, exp)
	p2.CreatedAt = time.Time{} // defaults to now
	p2.Plan = nil
	if err := st.Propose(ctx, p2, nil); err != nil {
		t.Fatal(err)
	}
	list, err := st.Proposals(ctx, id)
	if err != nil || len(list) != 2 || list[0].ID != p.ID || list[1].ID != p2.ID || !list[1].CreatedAt.Equal(store.UTC(clock.Now())) ||
		list[1].Plan != nil {
		t.Errorf("Proposals = %+v, %v", list, err)
	}
	if list, err := st.Proposals(ctx, ids[1]); err != nil || list == nil || len(list) != 0 {
		t.Errorf("Proposals(none) = %#v, %v; want empty", list, err)
	}
	if _, err := st.Proposal(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Proposal(unknown): %v", err)
	}
	if types := eventTypes(t, st, id); fmt.Sprint(types) != "[received proposed]" {
		t.Errorf("events = %v", types)
	}
	if jobs := claim(t, st, "w", time.Minute); len(jobs) != 0 {
		t.Errorf("expiry job handed out before ExpiresAt: %+v", jobs)
	}
}

// decideProposal walks decisions through a table: each case proposes anew
// and applies decisions in order.
func (s suite) decideProposal(t *testing.T) {
	type decision struct {
		to      string
		at      time.Duration // after t0; the proposal expires at t0+1h
		wantErr error         // nil, ErrConflict, ErrExpired, or errAny
		state   string        // the proposal's state afterwards
	}
	errAny := errors.New("any error")
	H := time.Hour
	cases := []struct {
		name string
		ds   []decision
	}{
		{"approve", []decision{{store.ProposalApproved, 59 * time.Minute, nil, store.ProposalApproved}}},
		{"approve twice", []decision{{store.ProposalApproved, 0, nil, store.ProposalApproved},
			{store.ProposalApproved, time.Minute, store.ErrConflict, store.ProposalApproved}}},
		{"approve at expiry", []decision{{store.ProposalApproved, H, store.ErrExpired, store.ProposalPending},
			{store.ProposalExpired, H, nil, store.ProposalExpired}}},
		{"approve after expiry", []decision{{store.ProposalApproved, 2 * H, store.ErrExpired, store.ProposalPending}}},
		{"reject then approve", []decision{{store.ProposalRejected, 0, nil, store.ProposalRejected},
			{store.ProposalApproved, 0, store.ErrConflict, store.ProposalRejected}}},
		{"reject after expiry", []decision{{store.ProposalRejected, 2 * H, nil, store.ProposalRejected}}},
		{"expire early (the alert resolved)", []decision{{store.ProposalExpired, time.Minute, nil, store.ProposalExpired},
			{store.ProposalRejected, 0, store.ErrConflict, store.ProposalExpired}}},
		{"not a decision", []decision{{store.ProposalPending, 0, errAny, store.ProposalPending},
			{"bogus", 0, errAny, store.ProposalPending}}},
	}
	clock := NewClock(t0)
	st := s.open(t, store.WithClock(clock.Now))
	ids := incidents(t, st, "dec1", len(cases))
	drain(t, st)
	for ci, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id := ids[ci]
			p := proposal(id, 0, t0.Add(H))
			if err := st.Propose(ctx, p, nil); err != nil {
				t.Fatal(err)
			}
			var wantJobs []string
			wantEvents := []string{"received"}
			for i, d := range tc.ds {
				by := fmt.Sprintf("person-%d", i)
				next := []store.NewJob{{IncidentID: id, Kind: incident.JobApproved, Ref: p.ID}}
				got, err := st.DecideProposal(ctx, p.ID, d.to, by, "because", t0.Add(d.at), next,
					incident.Event{IncidentID: id, Type: d.to})
				switch {
				case d.wantErr == nil && err != nil,
					d.wantErr == errAny && err == nil,
					d.wantErr != nil && d.wantErr != errAny && !errors.Is(err, d.wantErr):
					t.Fatalf("decision %d (%s): %v, want %v", i, d.to, err, d.wantErr)
				}
				if d.wantErr == nil {
					wantJobs = append(wantJobs, p.ID)
					wantEvents = append(wantEvents, d.to)
					if got.State != d.to || got.DecidedBy != by || got.Reason != "because" || got.DecidedAt == nil ||
						!got.DecidedAt.Equal(t0.Add(d.at)) || got.ID != p.ID || !got.ExpiresAt.Equal(p.ExpiresAt) {
						t.Errorf("decision %d returned %+v", i, got)
					}
				} else if d.wantErr != errAny && (got.ID != p.ID || got.State != d.state) {
					t.Errorf("refused decision %d returned %+v, want the current proposal (%s)", i, got, d.state)
				}
				stored, err := st.Proposal(ctx, p.ID)
				if err != nil || stored.State != d.state {
					t.Fatalf("after decision %d: %+v, %v; want state %s", i, stored, err, d.state)
				}
				if d.wantErr == nil && !reflect.DeepEqual(stored, got) {
					t.Errorf("stored %+v\nreturned %+v", stored, got)
				}
			}
			if types := eventTypes(t, st, id); fmt.Sprint(types) != fmt.Sprint(wantEvents) {
				t.Errorf("events %v, want %v", types, wantEvents)
			}
			var refs []string
			for _, j := range allJobs(t, st) {
				if j.IncidentID == id && j.Kind == incident.JobApproved {
					refs = append(refs, j.Ref)
				}
			}
			if fmt.Sprint(refs) != fmt.Sprint(wantJobs) {
				t.Errorf("jobs %v, want %v", refs, wantJobs)
			}
		})
	}
	if _, err := st.DecideProposal(ctx, "nope", store.ProposalApproved, "x", "", time.Time{}, nil); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("DecideProposal(unknown): %v, want ErrNotFound", err)
	}
	// All or nothing: an event of an unknown incident leaves it pending.
	p := proposal(ids[0], 9, t0.Add(H))
	if err := st.Propose(ctx, p, nil); err != nil {
		t.Fatal(err)
	}
	_, err := st.DecideProposal(ctx, p.ID, store.ProposalApproved, "x", "", t0, nil, incident.Event{IncidentID: incident.NewID(), Type: "approved"})
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("DecideProposal with an event of an unknown incident: %v", err)
	}
	if got, _ := st.Proposal(ctx, p.ID); got.State != store.ProposalPending {
		t.Errorf("a failed decision changed the proposal: %+v", got)
	}
	// A zero at is now.
	clock.Advance(time.Minute)
	got, err := st.DecideProposal(ctx, p.ID, store.ProposalApproved, "x", "", time.Time{}, nil)
	if err != nil || got.DecidedAt == nil || !got.DecidedAt.Equal(store.UTC(clock.Now())) {
		t.Errorf("decision at zero time: %+v, %v", got, err)
	}
}

// decideConcurrent: of many concurrent approvals (two stores) exactly one
// wins and enqueues its job.
func (s suite) decideConcurrent(t *testing.T) {
	dsn := s.b.NewDSN(t)
	a := s.b.Open(t, dsn)
	defer a.Close()
	b := s.b.Open(t, dsn)
	defer b.Close()
	id := incidents(t, a, "dc0c", 1)[0]
	drain(t, a)
	p := proposal(id, 0, time.Now().Add(time.Hour))
	if err := a.Propose(ctx, p, nil); err != nil {
		t.Fatal(err)
	}
	const n = 20
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		st := a
		if i%2 == 1 {
			st = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = st.DecideProposal(ctx, p.ID, store.ProposalApproved, fmt.Sprintf("p%d", i), "", time.Time{},
				[]store.NewJob{{IncidentID: id, Kind: incident.JobApproved, Ref: p.ID}},
				incident.Event{IncidentID: id, Type: "approved"})
		}()
	}
	wg.Wait()
	ok := 0
	for i, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, store.ErrConflict):
			t.Errorf("approval %d: %v, want ErrConflict", i, err)
		}
	}
	if ok != 1 {
		t.Errorf("%d approvals succeeded, want 1", ok)
	}
	if jobs := allJobs(t, a); len(jobs) != 1 || jobs[0].Ref != p.ID {
		t.Errorf("jobs = %+v, want one approved job", jobs)
	}
	if types := eventTypes(t, a, id); fmt.Sprint(types) != "[received approved]" {
		t.Errorf("events = %v", types)
	}
}

// executionStepRetaken: an abandoned intent frees its rung; any other state
// keeps it; of concurrent re-decisions exactly one takes it.
func (s suite) executionStepRetaken(t *testing.T) {
	dsn := s.b.NewDSN(t)
	a := s.b.Open(t, dsn)
	defer a.Close()
	b := s.b.Open(t, dsn)
	defer b.Close()
	ids := incidents(t, a, "5e7a", 2)
	id := ids[0]
	first := execution(id, 0)
	mustBegin(t, a, first)
	for _, state := range []string{store.ExecIntent, store.ExecApplied, store.ExecFailed} {
		if state != store.ExecIntent {
			if err := a.FinishExecution(ctx, first.ID, store.ExecStates, state, ""); err != nil {
				t.Fatal(err)
			}
		}
		if err := a.BeginExecution(ctx, execution(id, 0), store.GuardQuery{}, nil); !errors.Is(err, store.ErrExists) {
			t.Errorf("step 0 again while the first is %s: %v, want ErrExists", state, err)
		}
	}
	// Abandoned: the rung is free again (the reconciler found the change
	// never landed), and exactly one of many concurrent re-decisions wins.
	other := execution(ids[1], 0)
	mustBegin(t, a, other)
	if err := a.FinishExecution(ctx, other.ID, []string{store.ExecIntent}, store.ExecAbandoned, "never applied"); err != nil {
		t.Fatal(err)
	}
	const n = 20
	var wg sync.WaitGroup
	errs := make([]error, n)
	retries := make([]store.Execution, n)
	for i := range n {
		st := a
		if i%2 == 1 {
			st = b
		}
		retries[i] = execution(ids[1], 0)
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = st.BeginExecution(ctx, retries[i], store.GuardQuery{}, nil)
		}()
	}
	wg.Wait()
	won := -1
	for i, err := range errs {
		switch {
		case err == nil && won >= 0:
			t.Errorf("step 0 of one incident retaken twice (%d and %d)", won, i)
		case err == nil:
			won = i
		case !errors.Is(err, store.ErrExists):
			t.Errorf("retake %d: %v, want ErrExists", i, err)
		}
	}
	list := executions(t, a, store.ExecutionFilter{IncidentID: ids[1]})
	if won < 0 || len(list) != 2 || list[0].State != store.ExecAbandoned || list[1].ID != retries[won].ID || list[1].State != store.ExecIntent {
		t.Fatalf("executions of the retaken step: %+v", list)
	}
	// The abandoned one cannot come back while its rung is taken.
	if err := a.FinishExecution(ctx, other.ID, []string{store.ExecAbandoned}, store.ExecIntent, ""); !errors.Is(err, store.ErrExists) {
		t.Errorf("reviving the abandoned execution: %v, want ErrExists", err)
	}
	if got := executions(t, a, store.ExecutionFilter{IncidentID: ids[1], States: []string{store.ExecAbandoned}}); len(got) != 1 {
		t.Errorf("a refused revival changed the execution: %+v", got)
	}
}
