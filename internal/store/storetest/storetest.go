// Package storetest is the one test suite every store.Store implementation
// must pass. A backend's tests call Run with a way to make fresh databases
// and to open (and reopen) them.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/remediator/remediator/internal/incident"
	"github.com/remediator/remediator/internal/store"
)

// Backend tells the suite how to get stores.
type Backend struct {
	// NewDSN returns the address of a fresh, empty database.
	NewDSN func(t *testing.T) string
	// Open opens the store at dsn with opts, failing t on error. The suite
	// closes stores itself; Open may also register a Cleanup (Close must be
	// idempotent).
	Open func(t *testing.T, dsn string, opts ...store.Option) store.Store
	// Exec runs one SQL statement on a raw connection to dsn, bypassing
	// the store (the audit tests tamper with records this way). Optional:
	// without it those tests skip.
	Exec func(t *testing.T, dsn, query string) error
	// DropAuditTriggers are the statements that drop the audit tables'
	// append-only triggers, run by Exec before tampering.
	DropAuditTriggers []string
	// SealsOnWrite: the backend seals events into the audit chain in the
	// transaction that writes them (SQLite, which has one writer anyway,
	// when no other write is waiting for it), so SealAudit finds nothing
	// left after a store call made alone. Without it, events stay unsealed
	// until SealAudit (PostgreSQL).
	SealsOnWrite bool
}

// Run runs the whole suite as subtests of t.
func Run(t *testing.T, b Backend) {
	s := suite{b: b}
	t.Run("IngestCases", s.ingestCases)
	t.Run("IngestRecordsEvents", s.ingestRecordsEvents)
	t.Run("IngestLabelsAndTimes", s.ingestLabelsAndTimes)
	t.Run("ConcurrentDuplicates", s.concurrentDuplicates)
	t.Run("ConcurrentMixed", s.concurrentMixed)
	t.Run("TwoStoresOneDatabase", s.twoStores)
	t.Run("LargeNotification", s.largeNotification)
	t.Run("BadNotificationFailsAlone", s.badNotificationFailsAlone)
	t.Run("Reopen", s.reopen)
	t.Run("Notification", s.notification)
	t.Run("IncidentNotFound", s.incidentNotFound)
	t.Run("IncidentsFilter", s.incidentsFilter)
	t.Run("AppendEvents", s.appendEvents)
	t.Run("JobsClaimComplete", s.jobsClaimComplete)
	t.Run("JobsPerIncidentOrder", s.jobsPerIncidentOrder)
	t.Run("JobsLeaseExpiry", s.jobsLeaseExpiry)
	t.Run("JobsFailRetry", s.jobsFailRetry)
	t.Run("JobsConcurrentClaim", s.jobsConcurrentClaim)
	t.Run("JobsEnqueueRef", s.jobsEnqueueRef)
	t.Run("JobsCompleteWith", s.jobsCompleteWith)
	t.Run("JobsSchedule", s.jobsSchedule)
	t.Run("JobsConcurrentOneAtATime", s.jobsConcurrentOneAtATime)
	t.Run("ExecutionLifecycle", s.executionLifecycle)
	t.Run("ExecutionStepRetaken", s.executionStepRetaken)
	t.Run("ExecutionsFilter", s.executionsFilter)
	t.Run("GuardStateContents", s.guardStateContents)
	t.Run("BeginRefusedWhenResolved", s.beginRefusedWhenResolved)
	t.Run("BeginConcurrent", s.beginConcurrent)
	t.Run("Pause", s.pauseState)
	t.Run("MaintenanceWindows", s.maintenanceWindows)
	t.Run("Proposals", s.proposals)
	t.Run("DecideProposal", s.decideProposal)
	t.Run("DecideConcurrent", s.decideConcurrent)
	t.Run("Escalation", s.escalation)
	t.Run("ContextCancelled", s.contextCancelled)
	t.Run("PingClose", s.pingClose)
	runAudit(t, s)
}

type suite struct{ b Backend }

func (s suite) open(t *testing.T, opts ...store.Option) store.Store {
	t.Helper()
	st := s.b.Open(t, s.b.NewDSN(t), opts...)
	t.Cleanup(func() { st.Close() })
	return st
}

// Clock is a settable clock for store.WithClock.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock standing at t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

var (
	t0  = time.Date(2026, 3, 1, 10, 0, 0, 123456000, time.UTC)
	ctx = context.Background()
)

// Alert returns an alert with the given fingerprint and status, starting at
// startsAt, labelled alertname=TestAlert namespace=default plus labels
// (key, value pairs).
func Alert(fp, status string, startsAt time.Time, labels ...string) incident.Alert {
	l := map[string]string{"alertname": "TestAlert", "namespace": "default"}
	for i := 0; i+1 < len(labels); i += 2 {
		l[labels[i]] = labels[i+1]
	}
	a := incident.Alert{
		Status:       status,
		Fingerprint:  fp,
		StartsAt:     startsAt,
		Labels:       l,
		Annotations:  map[string]string{"summary": "test " + fp},
		GeneratorURL: "http://prometheus/graph?g0.expr=up",
	}
	if status == incident.StatusResolved {
		a.EndsAt = startsAt.Add(5 * time.Minute)
	}
	return a
}

// Notification wraps alerts in a notification with a fresh ID, a correlation
// ID and a JSON body.
func Notification(alerts ...incident.Alert) *incident.Notification {
	status := incident.StatusResolved
	for _, a := range alerts {
		if a.Status == incident.StatusFiring {
			status = incident.StatusFiring
		}
	}
	body, _ := json.Marshal(map[string]any{"version": "4", "status": status, "alerts": len(alerts)})
	return &incident.Notification{
		ID:            incident.NewID(),
		CorrelationID: "corr-" + incident.NewID(),
		Receiver:      "web\\.hook",
		GroupKey:      "{}:{alertname=\"TestAlert\"}",
		Status:        status,
		Reason:        "first_notification",
		ExternalURL:   "http://alertmanager:9093",
		Body:          body,
		Alerts:        alerts,
	}
}

func mustIngest(t *testing.T, st store.Store, n *incident.Notification) incident.IngestResult {
	t.Helper()
	res, err := st.Ingest(ctx, n)
	if err != nil {
		t.Fatalf("Ingest: %v", err)
	}
	if res.NotificationID != n.ID {
		t.Fatalf("NotificationID = %q, want %q", res.NotificationID, n.ID)
	}
	if len(res.Alerts) != len(n.Alerts) {
		t.Fatalf("got %d alert outcomes, want %d", len(res.Alerts), len(n.Alerts))
	}
	return res
}

func mustIncident(t *testing.T, st store.Store, id string) (incident.Incident, []incident.Event) {
	t.Helper()
	in, evs, err := st.Incident(ctx, id)
	if err != nil {
		t.Fatalf("Incident(%s): %v", id, err)
	}
	return in, evs
}

func allJobs(t *testing.T, st store.Store) []incident.Job {
	t.Helper()
	var all []incident.Job
	for {
		jobs, err := st.ClaimJobs(ctx, "collector", 1000, time.Hour)
		if err != nil {
			t.Fatalf("ClaimJobs: %v", err)
		}
		if len(jobs) == 0 {
			return all
		}
		for _, j := range jobs {
			if err := st.CompleteJob(ctx, "collector", j.ID); err != nil {
				t.Fatalf("CompleteJob: %v", err)
			}
		}
		all = append(all, jobs...)
	}
}

type step struct {
	alerts   []incident.Alert
	outcomes []string
}

type wantIncident struct {
	fp, status           string
	receipts, duplicates int
	events               []string // type or type:reason
	jobs                 []string // kinds, in order
	resolvedAtFromEndsAt bool
	resolvedAtIsReceived bool
}

func (s suite) ingestCases(t *testing.T) {
	F, R := incident.StatusFiring, incident.StatusResolved
	fA := Alert("aaaa000000000001", F, t0)
	rA := Alert("aaaa000000000001", R, t0)
	rAnoEnd := rA
	rAnoEnd.EndsAt = time.Time{}
	fA2 := Alert("aaaa000000000001", F, t0.Add(time.Hour)) // same alert, next episode
	fB := Alert("bbbb000000000002", F, t0)
	New, Dup, Res := incident.OutcomeNew, incident.OutcomeDuplicate, incident.OutcomeResolved
	dupFiring := "duplicate:" + store.ReasonAlreadyFiring
	dupResolved := "duplicate:" + store.ReasonAlreadyResolved

	cases := []struct {
		name  string
		steps []step
		want  []wantIncident
	}{
		{"firing new", []step{{[]incident.Alert{fA}, []string{New}}},
			[]wantIncident{{fp: fA.Fingerprint, status: F, receipts: 1, events: []string{"received"}, jobs: []string{"firing"}}}},
		{"firing resent", []step{{[]incident.Alert{fA}, []string{New}}, {[]incident.Alert{fA}, []string{Dup}}},
			[]wantIncident{{fp: fA.Fingerprint, status: F, receipts: 2, duplicates: 1,
				events: []string{"received", dupFiring}, jobs: []string{"firing"}}}},
		{"firing then resolved", []step{{[]incident.Alert{fA}, []string{New}}, {[]incident.Alert{rA}, []string{Res}}},
			[]wantIncident{{fp: fA.Fingerprint, status: R, receipts: 2, resolvedAtFromEndsAt: true,
				events: []string{"received", "resolved"}, jobs: []string{"firing", "resolved"}}}},
		{"resolved without endsAt", []step{{[]incident.Alert{fA}, []string{New}}, {[]incident.Alert{rAnoEnd}, []string{Res}}},
			[]wantIncident{{fp: fA.Fingerprint, status: R, receipts: 2, resolvedAtIsReceived: true,
				events: []string{"received", "resolved"}, jobs: []string{"firing", "resolved"}}}},
		{"late firing after resolved never reopens", []step{
			{[]incident.Alert{fA}, []string{New}}, {[]incident.Alert{rA}, []string{Res}}, {[]incident.Alert{fA}, []string{Dup}}},
			[]wantIncident{{fp: fA.Fingerprint, status: R, receipts: 3, duplicates: 1, resolvedAtFromEndsAt: true,
				events: []string{"received", "resolved", dupResolved}, jobs: []string{"firing", "resolved"}}}},
		{"resolved twice", []step{
			{[]incident.Alert{fA}, []string{New}}, {[]incident.Alert{rA}, []string{Res}}, {[]incident.Alert{rA}, []string{Dup}}},
			[]wantIncident{{fp: fA.Fingerprint, status: R, receipts: 3, duplicates: 1, resolvedAtFromEndsAt: true,
				events: []string{"received", "resolved", dupResolved}, jobs: []string{"firing", "resolved"}}}},
		{"first seen resolved", []step{{[]incident.Alert{rA}, []string{New}}},
			[]wantIncident{{fp: fA.Fingerprint, status: R, receipts: 1, resolvedAtFromEndsAt: true,
				events: []string{"resolved:" + store.ReasonFirstSeenResolve}}}},
		{"first seen resolved then firing re-send", []step{{[]incident.Alert{rA}, []string{New}}, {[]incident.Alert{fA}, []string{Dup}}},
			[]wantIncident{{fp: fA.Fingerprint, status: R, receipts: 2, duplicates: 1, resolvedAtFromEndsAt: true,
				events: []string{"resolved:" + store.ReasonFirstSeenResolve, dupResolved}}}},
		{"same fingerprint twice in one notification", []step{{[]incident.Alert{fA, fA}, []string{New, Dup}}},
			[]wantIncident{{fp: fA.Fingerprint, status: F, receipts: 2, duplicates: 1,
				events: []string{"received", dupFiring}, jobs: []string{"firing"}}}},
		{"firing and resolved in one notification", []step{{[]incident.Alert{fA, rA}, []string{New, Dup}}},
			[]wantIncident{{fp: fA.Fingerprint, status: F, receipts: 2, duplicates: 1,
				events: []string{"received", dupFiring}, jobs: []string{"firing"}}}},
		{"new episode of the same alert", []step{{[]incident.Alert{fA}, []string{New}}, {[]incident.Alert{fA2}, []string{New}}},
			[]wantIncident{
				{fp: fA.Fingerprint, status: F, receipts: 1, events: []string{"received"}, jobs: []string{"firing"}},
				{fp: fA2.Fingerprint, status: F, receipts: 1, events: []string{"received"}, jobs: []string{"firing"}}}},
		{"group grows", []step{{[]incident.Alert{fA}, []string{New}}, {[]incident.Alert{fA, fB}, []string{Dup, New}},
			{[]incident.Alert{rA, fB}, []string{Res, Dup}}},
			[]wantIncident{
				{fp: fA.Fingerprint, status: R, receipts: 3, duplicates: 1, resolvedAtFromEndsAt: true,
					events: []string{"received", dupFiring, "resolved"}, jobs: []string{"firing", "resolved"}},
				{fp: fB.Fingerprint, status: F, receipts: 2, duplicates: 1,
					events: []string{"received", dupFiring}, jobs: []string{"firing"}}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clock := NewClock(t0.Add(time.Minute))
			st := s.open(t, store.WithClock(clock.Now))
			ids := map[string][]string{} // fingerprint -> incident ids in creation order
			var lastReceived time.Time
			for i, stp := range tc.steps {
				clock.Advance(time.Second)
				n := Notification(stp.alerts...)
				res := mustIngest(t, st, n)
				lastReceived = clock.Now()
				for j, a := range res.Alerts {
					if a.Outcome != stp.outcomes[j] {
						t.Errorf("step %d alert %d: outcome %q, want %q", i, j, a.Outcome, stp.outcomes[j])
					}
					if a.Fingerprint != stp.alerts[j].Fingerprint {
						t.Errorf("step %d alert %d: fingerprint %q, want %q", i, j, a.Fingerprint, stp.alerts[j].Fingerprint)
					}
					if a.IncidentID == "" {
						t.Errorf("step %d alert %d: empty incident id", i, j)
					}
					if a.Outcome == incident.OutcomeNew {
						ids[a.Fingerprint] = append(ids[a.Fingerprint], a.IncidentID)
					}
				}
			}
			jobs := allJobs(t, st)
			used := map[string]int{}
			list, err := st.Incidents(ctx, store.IncidentFilter{})
			if err != nil {
				t.Fatal(err)
			}
			if len(list) != len(tc.want) {
				t.Fatalf("%d incidents, want %d", len(list), len(tc.want))
			}
			for _, w := range tc.want {
				k := used[w.fp]
				used[w.fp]++
				if k >= len(ids[w.fp]) {
					t.Fatalf("no incident #%d for %s", k, w.fp)
				}
				id := ids[w.fp][k]
				in, evs := mustIncident(t, st, id)
				if in.Status != w.status || in.Receipts != w.receipts || in.Duplicates != w.duplicates {
					t.Errorf("%s: status/receipts/duplicates = %s/%d/%d, want %s/%d/%d", w.fp,
						in.Status, in.Receipts, in.Duplicates, w.status, w.receipts, w.duplicates)
				}
				switch {
				case w.status == incident.StatusFiring && in.ResolvedAt != nil:
					t.Errorf("%s: firing incident has resolvedAt %v", w.fp, in.ResolvedAt)
				case w.resolvedAtFromEndsAt && (in.ResolvedAt == nil || !in.ResolvedAt.Equal(in.StartsAt.Add(5*time.Minute))):
					t.Errorf("%s: resolvedAt %v, want endsAt %v", w.fp, in.ResolvedAt, in.StartsAt.Add(5*time.Minute))
				case w.resolvedAtIsReceived && (in.ResolvedAt == nil || !in.ResolvedAt.Equal(store.UTC(lastReceived))):
					t.Errorf("%s: resolvedAt %v, want receipt time %v", w.fp, in.ResolvedAt, lastReceived)
				}
				var got []string
				for _, e := range evs {
					if e.Type == incident.EventDuplicate || e.Reason == store.ReasonFirstSeenResolve {
						got = append(got, e.Type+":"+e.Reason)
					} else {
						got = append(got, e.Type)
					}
				}
				if fmt.Sprint(got) != fmt.Sprint(w.events) {
					t.Errorf("%s: events %v, want %v", w.fp, got, w.events)
				}
				var kinds []string
				for _, j := range jobs {
					if j.IncidentID == id {
						kinds = append(kinds, j.Kind)
					}
				}
				if fmt.Sprint(kinds) != fmt.Sprint(w.jobs) {
					t.Errorf("%s: jobs %v, want %v", w.fp, kinds, w.jobs)
				}
			}
		})
	}
}

func (s suite) ingestRecordsEvents(t *testing.T) {
	st := s.open(t)
	n1 := Notification(Alert("cccc000000000001", incident.StatusFiring, t0))
	r1 := mustIngest(t, st, n1)
	n2 := Notification(Alert("cccc000000000001", incident.StatusResolved, t0))
	mustIngest(t, st, n2)
	_, evs := mustIncident(t, st, r1.Alerts[0].IncidentID)
	if len(evs) != 2 {
		t.Fatalf("%d events, want 2", len(evs))
	}
	for i, n := range []*incident.Notification{n1, n2} {
		e := evs[i]
		if e.NotificationID != n.ID || e.CorrelationID != n.CorrelationID || e.Actor != incident.ActorService {
			t.Errorf("event %d: notification/correlation/actor = %q/%q/%q, want %q/%q/%q", i,
				e.NotificationID, e.CorrelationID, e.Actor, n.ID, n.CorrelationID, incident.ActorService)
		}
		if e.IncidentID != r1.Alerts[0].IncidentID || e.ID == 0 || e.Time.IsZero() || e.Time.Location() != time.UTC {
			t.Errorf("event %d: incident %q id %d time %v", i, e.IncidentID, e.ID, e.Time)
		}
	}
	if evs[0].ID >= evs[1].ID {
		t.Errorf("event ids not increasing: %d, %d", evs[0].ID, evs[1].ID)
	}
	jobs := allJobs(t, st)
	if len(jobs) != 2 || jobs[0].NotificationID != n1.ID || jobs[0].CorrelationID != n1.CorrelationID ||
		jobs[1].NotificationID != n2.ID || jobs[0].Attempts != 1 || jobs[0].CreatedAt.IsZero() {
		t.Errorf("jobs = %+v", jobs)
	}
}

func (s suite) ingestLabelsAndTimes(t *testing.T) {
	st := s.open(t)
	local := time.FixedZone("CET", 3600)
	starts := time.Date(2026, 3, 1, 11, 0, 0, 987654321, local)
	a := Alert("dddd000000000001", incident.StatusFiring, starts, "namespace", "shop", "pod", "web-1",
		"weird", "quote\" back\\slash <tag> & \u2028 \x01 ü")
	a.Annotations["description"] = "line1\nline2\t\"x\""
	n := Notification(a)
	n.ReceivedAt = time.Date(2026, 3, 1, 12, 0, 0, 5, local)
	res := mustIngest(t, st, n)
	in, _ := mustIncident(t, st, res.Alerts[0].IncidentID)
	if !in.StartsAt.Equal(starts.Truncate(time.Microsecond)) || in.StartsAt.Location() != time.UTC {
		t.Errorf("StartsAt = %v, want %v in UTC", in.StartsAt, starts)
	}
	if !in.FirstSeen.Equal(store.UTC(n.ReceivedAt)) || !in.LastSeen.Equal(in.FirstSeen) {
		t.Errorf("FirstSeen/LastSeen = %v/%v, want %v", in.FirstSeen, in.LastSeen, n.ReceivedAt)
	}
	if in.Fingerprint != a.Fingerprint || in.AlertName != "TestAlert" || in.Namespace != "shop" ||
		in.GeneratorURL != a.GeneratorURL {
		t.Errorf("incident = %+v", in)
	}
	if fmt.Sprint(in.Labels) != fmt.Sprint(a.Labels) || fmt.Sprint(in.Annotations) != fmt.Sprint(a.Annotations) {
		t.Errorf("labels/annotations = %v %v, want %v %v", in.Labels, in.Annotations, a.Labels, a.Annotations)
	}
	// The caller's notification is not modified.
	if n.ReceivedAt.Location() != local || n.Alerts[0].StartsAt.Location() != local {
		t.Errorf("Ingest modified the caller's notification")
	}
	// A notification without ID gets one; nil label maps are fine.
	bare := &incident.Notification{Alerts: []incident.Alert{{Status: incident.StatusFiring, Fingerprint: "dddd000000000002", StartsAt: starts}}}
	r, err := st.Ingest(ctx, bare)
	if err != nil {
		t.Fatal(err)
	}
	if r.NotificationID == "" || bare.ID != "" {
		t.Errorf("NotificationID %q, caller's ID %q", r.NotificationID, bare.ID)
	}
	in, _ = mustIncident(t, st, r.Alerts[0].IncidentID)
	if len(in.Labels) != 0 || in.AlertName != "" {
		t.Errorf("bare incident = %+v", in)
	}
	// An empty notification is stored.
	r, err = st.Ingest(ctx, Notification())
	if err != nil || len(r.Alerts) != 0 {
		t.Errorf("empty notification: %v %+v", err, r)
	}
}

func (s suite) concurrentDuplicates(t *testing.T) {
	st := s.open(t)
	const workers = 50
	alerts := []incident.Alert{
		Alert("eeee000000000001", incident.StatusFiring, t0),
		Alert("eeee000000000002", incident.StatusFiring, t0),
		Alert("eeee000000000003", incident.StatusResolved, t0),
	}
	results := make([]incident.IngestResult, workers)
	errs := make([]error, workers)
	var start, wg sync.WaitGroup
	start.Add(1)
	for i := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := Notification(alerts...)
			start.Wait()
			results[i], errs[i] = st.Ingest(ctx, n)
		}()
	}
	start.Done()
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("worker %d: %v", i, err)
		}
	}
	for j := range alerts {
		news, dups := 0, 0
		ids := map[string]bool{}
		for _, r := range results {
			switch r.Alerts[j].Outcome {
			case incident.OutcomeNew:
				news++
			case incident.OutcomeDuplicate:
				dups++
			}
			ids[r.Alerts[j].IncidentID] = true
		}
		if news != 1 || dups != workers-1 || len(ids) != 1 {
			t.Errorf("alert %d: %d new, %d duplicate, %d incidents; want 1, %d, 1", j, news, dups, len(ids), workers-1)
		}
		for id := range ids {
			in, evs := mustIncident(t, st, id)
			if in.Receipts != workers || in.Duplicates != workers-1 || len(evs) != workers {
				t.Errorf("alert %d: receipts %d duplicates %d events %d", j, in.Receipts, in.Duplicates, len(evs))
			}
		}
	}
	list, err := st.Incidents(ctx, store.IncidentFilter{})
	if err != nil || len(list) != len(alerts) {
		t.Fatalf("Incidents: %d, %v", len(list), err)
	}
	if jobs := allJobs(t, st); len(jobs) != 2 {
		t.Errorf("%d jobs, want 2 (one per firing episode)", len(jobs))
	}
}

// concurrentMixed interleaves firing and resolved notifications of many
// episodes from many goroutines; whatever the order, each episode is one
// incident with every receipt counted, and at most one resolved job.
func (s suite) concurrentMixed(t *testing.T) {
	st := s.open(t)
	const episodes, senders = 20, 16
	var wg sync.WaitGroup
	errs := make(chan error, senders*episodes*2)
	for w := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for e := range episodes {
				status := incident.StatusFiring
				if (w+e)%3 == 0 {
					status = incident.StatusResolved
				}
				fp := fmt.Sprintf("ffff%012d", e)
				if _, err := st.Ingest(ctx, Notification(Alert(fp, status, t0), Alert(fp, status, t0))); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	list, err := st.Incidents(ctx, store.IncidentFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != episodes {
		t.Fatalf("%d incidents, want %d", len(list), episodes)
	}
	jobs := allJobs(t, st)
	for _, in := range list {
		_, evs := mustIncident(t, st, in.ID)
		if in.Receipts != senders*2 || len(evs) != senders*2 {
			t.Errorf("%s: receipts %d events %d, want %d", in.Fingerprint, in.Receipts, len(evs), senders*2)
		}
		var received, resolved, resolvedJobs, firingJobs int
		for _, e := range evs {
			switch e.Type {
			case incident.EventReceived:
				received++
			case incident.EventResolved:
				resolved++
			}
		}
		for _, j := range jobs {
			if j.IncidentID == in.ID {
				if j.Kind == incident.JobResolved {
					resolvedJobs++
				} else {
					firingJobs++
				}
			}
		}
		if received+resolved+in.Duplicates != in.Receipts || resolved > 1 || received > 1 || resolvedJobs > 1 || firingJobs != received {
			t.Errorf("%s: received %d resolved %d duplicates %d receipts %d jobs %d/%d", in.Fingerprint,
				received, resolved, in.Duplicates, in.Receipts, firingJobs, resolvedJobs)
		}
		if in.Status != incident.StatusResolved || in.ResolvedAt == nil {
			t.Errorf("%s: status %s, want resolved", in.Fingerprint, in.Status)
		}
	}
}

// twoStores opens two stores on one database (two processes sharing it)
// and posts the same notification through both at once.
func (s suite) twoStores(t *testing.T) {
	dsn := s.b.NewDSN(t)
	a := s.b.Open(t, dsn)
	defer a.Close()
	b := s.b.Open(t, dsn)
	defer b.Close()
	const each = 25
	var wg sync.WaitGroup
	var mu sync.Mutex
	news := 0
	var firstErr error
	for i := range 2 * each {
		st := a
		if i%2 == 1 {
			st = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := st.Ingest(ctx, Notification(Alert("abab000000000001", incident.StatusFiring, t0)))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				firstErr = err
				return
			}
			news += r.Count(incident.OutcomeNew)
		}()
	}
	wg.Wait()
	if firstErr != nil {
		t.Fatal(firstErr)
	}
	list, err := a.Incidents(ctx, store.IncidentFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if news != 1 || len(list) != 1 || list[0].Receipts != 2*each || list[0].Duplicates != 2*each-1 {
		t.Fatalf("news %d incidents %d %+v", news, len(list), list)
	}
}

func (s suite) largeNotification(t *testing.T) {
	st := s.open(t)
	const size = 5000
	alerts := make([]incident.Alert, size)
	for i := range alerts {
		alerts[i] = Alert(fmt.Sprintf("%016x", i), incident.StatusFiring, t0, "pod", fmt.Sprintf("pod-%d", i))
	}
	r := mustIngest(t, st, Notification(alerts...))
	if r.Count(incident.OutcomeNew) != size {
		t.Fatalf("%d new, want %d", r.Count(incident.OutcomeNew), size)
	}
	for i, a := range r.Alerts {
		if a.Fingerprint != alerts[i].Fingerprint {
			t.Fatalf("outcome %d is for %s, want %s", i, a.Fingerprint, alerts[i].Fingerprint)
		}
	}
	r = mustIngest(t, st, Notification(alerts...))
	if r.Count(incident.OutcomeDuplicate) != size {
		t.Fatalf("%d duplicates, want %d", r.Count(incident.OutcomeDuplicate), size)
	}
	in, evs := mustIncident(t, st, r.Alerts[size-1].IncidentID)
	if in.Labels["pod"] != fmt.Sprintf("pod-%d", size-1) || len(evs) != 2 {
		t.Errorf("last incident %+v with %d events", in, len(evs))
	}
	if jobs := allJobs(t, st); len(jobs) != size {
		t.Errorf("%d jobs, want %d", len(jobs), size)
	}
}

// badNotificationFailsAlone sends, concurrently with good ones, a
// notification whose ID is already taken: only it fails.
func (s suite) badNotificationFailsAlone(t *testing.T) {
	st := s.open(t)
	first := Notification(Alert("bad0000000000001", incident.StatusFiring, t0))
	mustIngest(t, st, first)
	var wg sync.WaitGroup
	errs := make([]error, 40)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := Notification(Alert(fmt.Sprintf("bad1%012d", i), incident.StatusFiring, t0))
			if i == 7 {
				n.ID = first.ID
			}
			_, errs[i] = st.Ingest(ctx, n)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if (i == 7) != (err != nil) {
			t.Errorf("notification %d: err = %v", i, err)
		}
	}
	if errs[7] != nil && errors.Is(errs[7], store.ErrUnavailable) {
		t.Errorf("a duplicate notification ID is not an availability problem: %v", errs[7])
	}
	list, err := st.Incidents(ctx, store.IncidentFilter{})
	if err != nil || len(list) != 40 {
		t.Errorf("%d incidents (%v), want 40", len(list), err)
	}
}

func (s suite) reopen(t *testing.T) {
	dsn := s.b.NewDSN(t)
	st := s.b.Open(t, dsn)
	n := Notification(Alert("1234000000000001", incident.StatusFiring, t0))
	r := mustIngest(t, st, n)
	if err := st.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := st.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	st = s.b.Open(t, dsn)
	defer st.Close()
	in, evs := mustIncident(t, st, r.Alerts[0].IncidentID)
	if in.Fingerprint != "1234000000000001" || len(evs) != 1 {
		t.Fatalf("after reopen: %+v, %d events", in, len(evs))
	}
	if _, err := st.Notification(ctx, n.ID); err != nil {
		t.Fatalf("notification after reopen: %v", err)
	}
	r2 := mustIngest(t, st, Notification(Alert("1234000000000001", incident.StatusFiring, t0)))
	if r2.Alerts[0].Outcome != incident.OutcomeDuplicate || r2.Alerts[0].IncidentID != in.ID {
		t.Fatalf("after reopen the episode is not known: %+v", r2)
	}
	if jobs := allJobs(t, st); len(jobs) != 1 {
		t.Fatalf("%d jobs after reopen, want 1", len(jobs))
	}
}

func (s suite) notification(t *testing.T) {
	st := s.open(t)
	n := Notification(Alert("5678000000000001", incident.StatusFiring, t0), Alert("5678000000000002", incident.StatusFiring, t0))
	n.Body = []byte(`{"version":"4","status":"firing","alerts":[{},{}],"extra":"ü\u0000"}`)
	n.ReceivedAt = time.Date(2026, 3, 1, 9, 0, 0, 1500, time.UTC)
	mustIngest(t, st, n)
	got, err := st.Notification(ctx, n.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != n.ID || got.CorrelationID != n.CorrelationID || got.Receiver != n.Receiver || got.GroupKey != n.GroupKey ||
		got.Status != n.Status || got.Reason != n.Reason || got.ExternalURL != n.ExternalURL ||
		string(got.Body) != string(n.Body) || !got.ReceivedAt.Equal(n.ReceivedAt.Truncate(time.Microsecond)) {
		t.Errorf("Notification = %+v\nwant %+v", got, n)
	}
	if _, err := st.Notification(ctx, incident.NewID()); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown notification: %v, want ErrNotFound", err)
	}
}

func (s suite) incidentNotFound(t *testing.T) {
	st := s.open(t)
	if _, _, err := st.Incident(ctx, incident.NewID()); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Incident(unknown) = %v, want ErrNotFound", err)
	}
	if _, _, err := st.Incident(ctx, "not-a-uuid"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Incident(not-a-uuid) = %v, want ErrNotFound", err)
	}
}

func (s suite) incidentsFilter(t *testing.T) {
	clock := NewClock(t0)
	st := s.open(t, store.WithClock(clock.Now))
	var ids []string
	for i := range 12 {
		clock.Advance(time.Second)
		name := "Alpha"
		if i%3 == 0 {
			name = "Beta"
		}
		status := incident.StatusFiring
		if i%4 == 0 {
			status = incident.StatusResolved
		}
		a := Alert(fmt.Sprintf("a1b2%012d", i), status, t0)
		a.Labels["alertname"] = name
		r := mustIngest(t, st, Notification(a))
		ids = append(ids, r.Alerts[0].IncidentID)
	}
	check := func(f store.IncidentFilter, want ...int) {
		t.Helper()
		list, err := st.Incidents(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, in := range list {
			got = append(got, in.ID)
		}
		var exp []string
		for _, i := range want {
			exp = append(exp, ids[i])
		}
		if fmt.Sprint(got) != fmt.Sprint(exp) {
			t.Errorf("Incidents(%+v) = %v, want %v", f, got, exp)
		}
	}
	check(store.IncidentFilter{}, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0)
	check(store.IncidentFilter{Limit: 3}, 11, 10, 9)
	check(store.IncidentFilter{Status: incident.StatusResolved}, 8, 4, 0)
	check(store.IncidentFilter{AlertName: "Beta"}, 9, 6, 3, 0)
	check(store.IncidentFilter{AlertName: "Beta", Status: incident.StatusFiring, Limit: 1}, 9)
	check(store.IncidentFilter{AlertName: "Gamma"})
	list, err := st.Incidents(ctx, store.IncidentFilter{Limit: 1000})
	if err != nil || len(list) != 12 {
		t.Errorf("Limit 1000: %d, %v", len(list), err)
	}
}

func (s suite) appendEvents(t *testing.T) {
	st := s.open(t)
	r := mustIngest(t, st, Notification(Alert("9999000000000001", incident.StatusFiring, t0)))
	id := r.Alerts[0].IncidentID
	at := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	err := st.AppendEvents(ctx,
		incident.Event{IncidentID: id, Time: at, Type: "diagnosed", Actor: "worker-1", Reason: "probes done",
			Details: json.RawMessage(`{"probes":3}`)},
		incident.Event{IncidentID: id, Type: incident.EventUnmatched, CorrelationID: "c1"},
	)
	if err != nil {
		t.Fatal(err)
	}
	_, evs := mustIncident(t, st, id)
	if len(evs) != 3 {
		t.Fatalf("%d events, want 3", len(evs))
	}
	d := evs[1]
	if d.Type != "diagnosed" || d.Actor != "worker-1" || d.Reason != "probes done" || !d.Time.Equal(at) {
		t.Errorf("event = %+v", d)
	}
	var details map[string]int
	if err := json.Unmarshal(d.Details, &details); err != nil || details["probes"] != 3 {
		t.Errorf("details = %s (%v)", d.Details, err)
	}
	if u := evs[2]; u.Actor != incident.ActorService || u.Time.IsZero() || u.CorrelationID != "c1" || u.Details != nil {
		t.Errorf("defaults not applied: %+v", u)
	}
	if !(evs[0].ID < evs[1].ID && evs[1].ID < evs[2].ID) {
		t.Errorf("ids not increasing: %d %d %d", evs[0].ID, evs[1].ID, evs[2].ID)
	}
	err = st.AppendEvents(ctx, incident.Event{IncidentID: id, Type: "x"}, incident.Event{IncidentID: incident.NewID(), Type: "y"})
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("event for unknown incident: %v, want ErrNotFound", err)
	}
	if _, evs := mustIncident(t, st, id); len(evs) != 3 {
		t.Errorf("a failed AppendEvents left %d events, want 3", len(evs))
	}
	if err := st.AppendEvents(ctx); err != nil {
		t.Errorf("AppendEvents(): %v", err)
	}
}

func (s suite) jobsClaimComplete(t *testing.T) {
	st := s.open(t)
	var ids []string
	for i := range 5 {
		r := mustIngest(t, st, Notification(Alert(fmt.Sprintf("j0b0%012d", i), incident.StatusFiring, t0)))
		ids = append(ids, r.Alerts[0].IncidentID)
	}
	jobs, err := st.ClaimJobs(ctx, "w1", 3, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 3 {
		t.Fatalf("claimed %d, want 3", len(jobs))
	}
	for i, j := range jobs {
		if j.IncidentID != ids[i] || j.Kind != incident.JobFiring || j.Attempts != 1 {
			t.Errorf("job %d = %+v, want oldest first for %s", i, j, ids[i])
		}
	}
	more, err := st.ClaimJobs(ctx, "w2", 10, time.Minute)
	if err != nil || len(more) != 2 {
		t.Fatalf("second claim: %d, %v; want the 2 left", len(more), err)
	}
	if none, err := st.ClaimJobs(ctx, "w3", 10, time.Minute); err != nil || len(none) != 0 {
		t.Fatalf("third claim: %d, %v; want none", len(none), err)
	}
	if err := st.CompleteJob(ctx, "w2", jobs[0].ID); !errors.Is(err, store.ErrLeaseLost) {
		t.Errorf("CompleteJob by non-holder: %v, want ErrLeaseLost", err)
	}
	if err := st.FailJob(ctx, "w2", jobs[0].ID, "x", 0); !errors.Is(err, store.ErrLeaseLost) {
		t.Errorf("FailJob by non-holder: %v, want ErrLeaseLost", err)
	}
	if err := st.CompleteJob(ctx, "w1", jobs[0].ID); err != nil {
		t.Errorf("CompleteJob by holder: %v", err)
	}
	if err := st.CompleteJob(ctx, "w1", jobs[0].ID); !errors.Is(err, store.ErrLeaseLost) {
		t.Errorf("CompleteJob twice: %v, want ErrLeaseLost", err)
	}
	if err := st.CompleteJob(ctx, "w1", 1<<40); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("CompleteJob(unknown): %v, want ErrNotFound", err)
	}
	if jobs, err := st.ClaimJobs(ctx, "w1", 0, time.Minute); err != nil || len(jobs) != 0 {
		t.Errorf("ClaimJobs(limit 0) = %d, %v", len(jobs), err)
	}
}

func (s suite) jobsPerIncidentOrder(t *testing.T) {
	st := s.open(t)
	ra := mustIngest(t, st, Notification(Alert("0rd0000000000001", incident.StatusFiring, t0)))
	mustIngest(t, st, Notification(Alert("0rd0000000000001", incident.StatusResolved, t0)))
	rb := mustIngest(t, st, Notification(Alert("0rd0000000000002", incident.StatusFiring, t0)))
	a, b := ra.Alerts[0].IncidentID, rb.Alerts[0].IncidentID

	jobs, err := st.ClaimJobs(ctx, "w1", 10, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	// Only the head job of each incident: a's firing (not its resolved) and b's firing.
	if len(jobs) != 2 || jobs[0].IncidentID != a || jobs[0].Kind != incident.JobFiring || jobs[1].IncidentID != b {
		t.Fatalf("first claim = %+v", jobs)
	}
	if more, _ := st.ClaimJobs(ctx, "w2", 10, time.Minute); len(more) != 0 {
		t.Fatalf("a second job of a busy incident was handed out: %+v", more)
	}
	if err := st.CompleteJob(ctx, "w1", jobs[0].ID); err != nil {
		t.Fatal(err)
	}
	next, err := st.ClaimJobs(ctx, "w2", 10, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(next) != 1 || next[0].IncidentID != a || next[0].Kind != incident.JobResolved {
		t.Fatalf("after completing a's firing job: %+v", next)
	}
}

func (s suite) jobsLeaseExpiry(t *testing.T) {
	clock := NewClock(t0)
	st := s.open(t, store.WithClock(clock.Now))
	mustIngest(t, st, Notification(Alert("1ea5000000000001", incident.StatusFiring, t0)))
	jobs, err := st.ClaimJobs(ctx, "crashed", 10, 30*time.Second)
	if err != nil || len(jobs) != 1 {
		t.Fatalf("claim: %d, %v", len(jobs), err)
	}
	clock.Advance(29 * time.Second)
	if again, _ := st.ClaimJobs(ctx, "w2", 10, 30*time.Second); len(again) != 0 {
		t.Fatalf("job reclaimed before its lease expired")
	}
	clock.Advance(2 * time.Second)
	again, err := st.ClaimJobs(ctx, "w2", 10, 30*time.Second)
	if err != nil || len(again) != 1 || again[0].ID != jobs[0].ID || again[0].Attempts != 2 {
		t.Fatalf("reclaim after expiry: %+v, %v", again, err)
	}
	if err := st.CompleteJob(ctx, "crashed", jobs[0].ID); !errors.Is(err, store.ErrLeaseLost) {
		t.Errorf("old holder completed a reclaimed job: %v", err)
	}
	if err := st.CompleteJob(ctx, "w2", jobs[0].ID); err != nil {
		t.Errorf("new holder: %v", err)
	}
	// An expired lease nobody took over can still be completed by its holder.
	mustIngest(t, st, Notification(Alert("1ea5000000000002", incident.StatusFiring, t0)))
	slow, _ := st.ClaimJobs(ctx, "slow", 10, time.Second)
	clock.Advance(time.Minute)
	if len(slow) != 1 {
		t.Fatalf("claim: %+v", slow)
	}
	if err := st.CompleteJob(ctx, "slow", slow[0].ID); err != nil {
		t.Errorf("holder of an expired, untaken lease: %v", err)
	}
}

func (s suite) jobsFailRetry(t *testing.T) {
	clock := NewClock(t0)
	st := s.open(t, store.WithClock(clock.Now))
	mustIngest(t, st, Notification(Alert("fa11000000000001", incident.StatusFiring, t0)))
	mustIngest(t, st, Notification(Alert("fa11000000000001", incident.StatusResolved, t0)))
	jobs, _ := st.ClaimJobs(ctx, "w1", 10, time.Minute)
	if len(jobs) != 1 {
		t.Fatalf("claim: %+v", jobs)
	}
	if err := st.FailJob(ctx, "w1", jobs[0].ID, "apiserver timeout", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := st.CompleteJob(ctx, "w1", jobs[0].ID); !errors.Is(err, store.ErrLeaseLost) {
		t.Errorf("completing a released job: %v", err)
	}
	if got, _ := st.ClaimJobs(ctx, "w1", 10, time.Minute); len(got) != 0 {
		t.Fatalf("claimed before retryAfter (or the later job jumped the queue): %+v", got)
	}
	clock.Advance(11 * time.Second)
	got, err := st.ClaimJobs(ctx, "w2", 10, time.Minute)
	if err != nil || len(got) != 1 || got[0].ID != jobs[0].ID || got[0].Attempts != 2 {
		t.Fatalf("retry claim: %+v, %v", got, err)
	}
	if err := st.FailJob(ctx, "w2", 1<<40, "x", 0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("FailJob(unknown): %v", err)
	}
}

func (s suite) jobsConcurrentClaim(t *testing.T) {
	st := s.open(t)
	const n = 60
	for i := range n {
		mustIngest(t, st, Notification(Alert(fmt.Sprintf("c1a1%012d", i), incident.StatusFiring, t0)))
	}
	var mu sync.Mutex
	seen := map[int64]string{}
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("w%d", w)
			for {
				jobs, err := st.ClaimJobs(ctx, name, 4, time.Minute)
				if err != nil {
					t.Error(err)
					return
				}
				if len(jobs) == 0 {
					return
				}
				for _, j := range jobs {
					mu.Lock()
					if other, dup := seen[j.ID]; dup {
						t.Errorf("job %d claimed by %s and %s", j.ID, other, name)
					}
					seen[j.ID] = name
					mu.Unlock()
					if err := st.CompleteJob(ctx, name, j.ID); err != nil {
						t.Error(err)
					}
				}
			}
		}()
	}
	wg.Wait()
	if len(seen) != n {
		t.Errorf("%d jobs done, want %d", len(seen), n)
	}
}

func (s suite) contextCancelled(t *testing.T) {
	st := s.open(t)
	c, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := st.Ingest(c, Notification(Alert("ca00000000000001", incident.StatusFiring, t0))); !errors.Is(err, context.Canceled) {
		t.Errorf("Ingest with cancelled context: %v", err)
	}
	if list, _ := st.Incidents(ctx, store.IncidentFilter{}); len(list) != 0 {
		t.Errorf("a cancelled Ingest stored %d incidents", len(list))
	}
}

func (s suite) pingClose(t *testing.T) {
	st := s.b.Open(t, s.b.NewDSN(t))
	if err := st.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	// Ingests in flight when Close starts are committed (Close drains).
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, failed := 0, 0
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := st.Ingest(ctx, Notification(Alert(fmt.Sprintf("c105%012d", i), incident.StatusFiring, t0)))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case errors.Is(err, store.ErrUnavailable):
				failed++
			default:
				t.Errorf("Ingest during Close: %v", err)
			}
		}()
	}
	time.Sleep(time.Millisecond)
	if err := st.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	wg.Wait()
	if ok+failed != 20 {
		t.Errorf("ok %d + failed %d != 20", ok, failed)
	}
	if _, err := st.Ingest(ctx, Notification(Alert("c105000000000099", incident.StatusFiring, t0))); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Ingest after Close: %v, want ErrUnavailable", err)
	}
	if err := st.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
