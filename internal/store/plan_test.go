package store

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/remediator/remediator/internal/incident"
)

// fresh simulates a database that has never seen any of the episodes.
func fresh(p *IngestPlan) []UpsertResult {
	rs := make([]UpsertResult, len(p.Upserts))
	for i, u := range p.Upserts {
		rs[i] = UpsertResult{ID: u.ProposedID, Status: u.Status}
		if u.Status == incident.StatusResolved {
			rs[i].ResolvedBy = u.NotificationID
		}
	}
	return rs
}

func TestPlanAcrossNotificationsInOneBatch(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	fire := incident.Alert{Status: incident.StatusFiring, Fingerprint: "f1", StartsAt: t0}
	res := incident.Alert{Status: incident.StatusResolved, Fingerprint: "f1", StartsAt: t0, EndsAt: t0.Add(time.Minute)}
	ns := []*incident.Notification{
		{ID: "n1", Alerts: []incident.Alert{fire}},
		{ID: "n2", Alerts: []incident.Alert{fire}},
		{ID: "n3", Alerts: []incident.Alert{res, res}},
		{ID: "n4", Alerts: []incident.Alert{res, fire}},
	}
	p := NewIngestPlan(t0, ns)
	if len(p.Upserts) != 1 {
		t.Fatalf("%d upserts, want 1", len(p.Upserts))
	}
	out := p.Resolve(fresh(p))
	want := [][]string{{"new"}, {"duplicate"}, {"resolved", "duplicate"}, {"duplicate", "duplicate"}}
	for i, r := range out.Results {
		for j, a := range r.Alerts {
			if a.Outcome != want[i][j] {
				t.Errorf("notification %d alert %d: %s, want %s", i, j, a.Outcome, want[i][j])
			}
		}
	}
	if len(out.Updates) != 1 {
		t.Fatalf("updates = %+v", out.Updates)
	}
	u := out.Updates[0]
	if u.Receipts != 5 || u.Duplicates != 4 || !u.Resolve || u.ResolvedBy != "n3" || !u.ResolvedAt.Equal(t0.Add(time.Minute)) {
		t.Errorf("update = %+v", u)
	}
	if len(out.Jobs) != 2 || out.Jobs[0].Kind != incident.JobFiring || out.Jobs[1].Kind != incident.JobResolved {
		t.Errorf("jobs = %+v", out.Jobs)
	}
	if len(out.Events) != 6 || out.Events[5].Reason != ReasonAlreadyResolved {
		t.Errorf("events = %+v", out.Events)
	}
}

func TestAppendJSONMap(t *testing.T) {
	m := map[string]string{"b": "x\"y\\z\n\t\u0001<>&", "a": "ü\u2028", "bad": "\xff"}
	got := AppendJSONMap(nil, m)
	var back map[string]string
	if err := json.Unmarshal(got, &back); err != nil {
		t.Fatalf("%s: %v", got, err)
	}
	want, _ := json.Marshal(m)
	if string(got) != string(want) {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	if s := string(AppendJSONMap(nil, nil)); s != "{}" {
		t.Errorf("nil map = %s", s)
	}
}

func TestCommitterRetriesOneByOne(t *testing.T) {
	bad := errors.New("bad notification")
	var mu sync.Mutex
	batches := 0
	run := func(ctx context.Context, ns []*incident.Notification) ([]incident.IngestResult, error) {
		mu.Lock()
		batches++
		mu.Unlock()
		time.Sleep(5 * time.Millisecond)
		rs := make([]incident.IngestResult, len(ns))
		for i, n := range ns {
			if n.ID == "bad" {
				return nil, bad
			}
			rs[i].NotificationID = n.ID
		}
		return rs, nil
	}
	c := NewCommitter(run, 1, 64, time.Second)
	var wg sync.WaitGroup
	errs := make([]error, 30)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := "ok"
			if i == 3 {
				id = "bad"
			}
			r, err := c.Ingest(context.Background(), &incident.Notification{ID: id})
			if err == nil && r.NotificationID != id {
				err = errors.New("wrong result")
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	c.Close()
	for i, err := range errs {
		if (i == 3) != errors.Is(err, bad) || (i != 3 && err != nil) {
			t.Errorf("caller %d: %v", i, err)
		}
	}
	if batches >= 30+30 {
		t.Errorf("%d batches: no grouping", batches)
	}
	if _, err := c.Ingest(context.Background(), &incident.Notification{}); !errors.Is(err, ErrUnavailable) {
		t.Errorf("after Close: %v", err)
	}
}
