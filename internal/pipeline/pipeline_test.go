package pipeline

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/remediator/remediator/internal/incident"
)

func record(name string, calls *[]string) Stage {
	return StageFunc(func(_ context.Context, w *Work) error {
		*calls = append(*calls, name)
		w.Record(name, "", nil)
		return nil
	})
}

func TestSeqOrderStopAndError(t *testing.T) {
	var calls []string
	w := NewWork(incident.Job{IncidentID: "i"}, "dry-run", nil)
	stop := StageFunc(func(_ context.Context, w *Work) error { calls = append(calls, "stop"); w.Stop(); return nil })
	if err := (Seq{record("a", &calls), stop, record("b", &calls)}).Exec(context.Background(), w); err != nil {
		t.Fatal(err)
	}
	if strings.Join(calls, ",") != "a,stop" {
		t.Fatalf("calls %v", calls)
	}
	calls = nil
	boom := errors.New("boom")
	fail := StageFunc(func(context.Context, *Work) error { return boom })
	err := (Seq{record("a", &calls), fail, record("b", &calls)}).Exec(context.Background(), NewWork(incident.Job{}, "", nil))
	if !errors.Is(err, boom) || strings.Join(calls, ",") != "a" {
		t.Fatalf("err %v calls %v", err, calls)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	calls = nil
	if err := (Seq{record("a", &calls)}).Exec(ctx, NewWork(incident.Job{}, "", nil)); !errors.Is(err, context.Canceled) || len(calls) != 0 {
		t.Fatalf("cancelled: %v %v", err, calls)
	}
}

func TestFanOutRunsAllConcurrentlyAndJoinsErrors(t *testing.T) {
	var n atomic.Int32
	release := make(chan struct{})
	wait := StageFunc(func(_ context.Context, w *Work) error {
		if n.Add(1) == 3 {
			close(release)
		}
		select {
		case <-release:
		case <-time.After(5 * time.Second):
			return errors.New("stages did not run concurrently")
		}
		w.Record("probe", "", map[string]int{"n": 1})
		return nil
	})
	e1, e2 := errors.New("e1"), errors.New("e2")
	w := NewWork(incident.Job{}, "", nil)
	err := FanOut{wait, wait, wait,
		StageFunc(func(context.Context, *Work) error { return e1 }),
		StageFunc(func(context.Context, *Work) error { return e2 }),
	}.Exec(context.Background(), w)
	if !errors.Is(err, e1) || !errors.Is(err, e2) {
		t.Fatalf("err %v", err)
	}
	if len(w.Events()) != 3 {
		t.Fatalf("events %d", len(w.Events()))
	}
}

func TestRecordFillsEvent(t *testing.T) {
	at := time.Date(2026, 11, 26, 1, 0, 0, 0, time.FixedZone("x", 3600))
	w := NewWork(incident.Job{IncidentID: "inc", NotificationID: "n", CorrelationID: "c"}, "dry-run", func() time.Time { return at })
	w.Record("x", "why", map[string]string{"k": "v"})
	w.Record("y", "", func() {}) // unmarshalable details must not be lost silently
	ev := w.Events()
	if ev[0].IncidentID != "inc" || ev[0].NotificationID != "n" || ev[0].CorrelationID != "c" || ev[0].Actor != incident.ActorService ||
		ev[0].Reason != "why" || string(ev[0].Details) != `{"k":"v"}` || !ev[0].Time.Equal(at) || ev[0].Time.Location() != time.UTC {
		t.Fatalf("event %+v", ev[0])
	}
	if !strings.Contains(string(ev[1].Details), "marshalError") {
		t.Fatalf("details %s", ev[1].Details)
	}
}

func TestTriage(t *testing.T) {
	tests := []struct {
		kind, status string
		stopped      bool
		event        string
	}{
		{incident.JobFiring, incident.StatusFiring, false, ""},
		{incident.JobFiring, incident.StatusResolved, true, incident.EventCancelled},
		{incident.JobResolved, incident.StatusResolved, true, ""},
		{"mystery", incident.StatusFiring, true, incident.EventCancelled},
	}
	for _, tt := range tests {
		w := NewWork(incident.Job{Kind: tt.kind}, "dry-run", nil)
		w.Incident.Status = tt.status
		if err := Triage().Exec(context.Background(), w); err != nil {
			t.Fatal(err)
		}
		if w.Stopped() != tt.stopped {
			t.Errorf("%s/%s: stopped=%v", tt.kind, tt.status, w.Stopped())
		}
		ev := w.Events()
		if (tt.event == "") != (len(ev) == 0) || (tt.event != "" && ev[0].Type != tt.event) {
			t.Errorf("%s/%s: events %+v", tt.kind, tt.status, ev)
		}
	}
}
