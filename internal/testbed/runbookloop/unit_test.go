package runbookloop

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/remediator/remediator/internal/store/audit"
)

func TestRunCleansUpInReverseAfterFatalf(t *testing.T) {
	var order []string
	err := Run(context.Background(), 0, nil, func(s T) {
		s.Cleanup(func() { order = append(order, "first") })
		s.Cleanup(func() {
			if s.Context().Err() == nil {
				order = append(order, "context not cancelled before cleanup")
			}
			order = append(order, "second")
			s.Fatalf("a failing cleanup stops only itself")
		})
		s.Fatalf("boom %d", 1)
		order = append(order, "after Fatalf")
	})
	if err == nil || err.Error() != "boom 1" {
		t.Errorf("Run: %v, want the first failure, boom 1", err)
	}
	if want := []string{"second", "first"}; !slices.Equal(order, want) {
		t.Errorf("order %v, want %v", order, want)
	}
}

func TestRunPassesAndRecoversPanics(t *testing.T) {
	if err := Run(context.Background(), 0, nil, func(T) {}); err != nil {
		t.Errorf("an empty script: %v", err)
	}
	cleaned := false
	err := Run(context.Background(), 0, nil, func(s T) {
		s.Cleanup(func() { cleaned = true })
		panic("oops")
	})
	if err == nil || !strings.Contains(err.Error(), "panic: oops") || !cleaned {
		t.Errorf("a panicking script: %v (cleaned up %v)", err, cleaned)
	}
}

func TestRunInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancelCause(context.Background())
	cleaned := make(chan struct{})
	err := Run(ctx, 0, nil, func(s T) {
		s.Cleanup(func() { close(cleaned) })
		cancel(errors.New("Ctrl-C"))
		// A wait of the loop: it sees the interruption.
		if err := poll(s.Context(), time.Minute, func() (bool, error) { return false, nil }); err != nil {
			s.Fatalf("%v", err)
		}
	})
	if err == nil || !strings.Contains(err.Error(), "interrupted (Ctrl-C)") {
		t.Errorf("Run: %v, want interrupted", err)
	}
	select {
	case <-cleaned:
	default:
		t.Errorf("not cleaned up")
	}
}

func TestRunTimeout(t *testing.T) {
	err := Run(context.Background(), 50*time.Millisecond, nil, func(s T) {
		<-s.Context().Done()
		s.Fatalf("%v", context.Cause(s.Context()))
	})
	if err == nil || err.Error() != "took longer than 50ms" {
		t.Errorf("Run: %v, want the timeout", err)
	}
}

func TestWriteRules(t *testing.T) {
	dst := filepath.Join(t.TempDir(), "rules.yml")
	if err := WriteRules(dst, 1500*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(dst)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, gone := range []string{"[5m]", "for: 5m"} {
		if strings.Contains(s, gone) {
			t.Errorf("%s left in the rules", gone)
		}
	}
	for _, want := range []string{"rate(http_request_errors_total[1500ms])", "for: 1500ms", "alert: HighErrorRate"} {
		if !strings.Contains(s, want) {
			t.Errorf("no %s in the rules:\n%s", want, s)
		}
	}
}

func TestCopyPolicies(t *testing.T) {
	dst := filepath.Join(t.TempDir(), "policies")
	edited := 0
	if err := CopyPolicies(dst, "127.0.0.1:1", 1500*time.Millisecond, func(file, content string) string {
		edited++
		if file == "high-error-rate.yaml" {
			content += "# edited\n"
		}
		return content
	}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dst, "high-error-rate.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if s := string(b); strings.Contains(s, "database:5432") || !strings.Contains(s, `["127.0.0.1:1", "127.0.0.1:1"]`) ||
		!strings.HasSuffix(s, "# edited\n") {
		t.Errorf("dependency endpoints not replaced, or not edited:\n%s", s)
	}
	if files, _ := filepath.Glob(filepath.Join(dst, "*.yaml")); edited != len(files) || edited < 2 {
		t.Errorf("edited %d of %d files", edited, len(files))
	}
	// The PromQL ranges: the saturation and p95 queries rate over the
	// loop's window.
	b, err = os.ReadFile(filepath.Join(dst, "high-latency.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if s := string(b); strings.Contains(s, "[5m]") || strings.Count(s, "[1500ms]") < 2 ||
		!strings.Contains(s, `container!="POD"}[1500ms]))`) {
		t.Errorf("query ranges not replaced:\n%s", s)
	}
	if err := CopyPolicies(filepath.Join(t.TempDir(), "p"), "127.0.0.1:1", 0, nil); err == nil {
		t.Errorf("no window: no error")
	}
}

func TestInOrderAndNone(t *testing.T) {
	got := []string{"received", "matched", "planned", "escalated", "intent", "applied"}
	for _, tc := range []struct {
		want []string
		ok   bool
	}{
		{[]string{"received", "planned", "applied"}, true},
		{nil, true},
		{[]string{"planned", "received"}, false},
		{[]string{"received", "verified"}, false},
	} {
		if err := InOrder(got, tc.want...); (err == nil) != tc.ok {
			t.Errorf("InOrder(%v): %v, want ok %v", tc.want, err, tc.ok)
		}
	}
	if None(got, "failed", "blocked") != nil || None(got, "failed", "intent") == nil {
		t.Errorf("None")
	}
}

func TestCheckRecords(t *testing.T) {
	tl := Timeline{
		{ID: 10, Type: "received", Actor: "alertmanager"},
		{ID: 11, Type: "planned", Actor: "remediator", Reason: "plan"},
		{ID: 13, Type: "applied", Actor: "remediator", Reason: "done"},
	}
	rec := func(seq, ev int64, typ, actor, reason string) audit.Record {
		return audit.Record{Seq: seq, EventID: ev, Type: typ, Actor: actor, Reason: reason}
	}
	good := []audit.Record{rec(4, 10, "received", "alertmanager", ""), rec(5, 11, "planned", "remediator", "plan"),
		rec(7, 13, "applied", "remediator", "done"), rec(9, 14, "verified", "remediator", "")}
	if err := CheckRecords(tl, good, "received", "applied", "verified"); err != nil {
		t.Errorf("good records: %v", err)
	}
	for name, recs := range map[string][]audit.Record{
		"missing":   good[:2],
		"edited":    {good[0], rec(5, 11, "planned", "remediator", "other"), good[2]},
		"reordered": {good[0], good[2], good[1]},
		"seq order": {good[0], rec(8, 11, "planned", "remediator", "plan"), good[2]},
	} {
		if err := CheckRecords(tl, recs); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if err := CheckRecords(tl, good, "verified", "applied"); err == nil {
		t.Errorf("types out of order: no error")
	}
}

const slackLog = `slack #incidents — new root message
  │ HighErrorRate · ns
  │ *Status* :fire: Firing
  │ Incident 01a2 (http://127.0.0.1:1/api/v1/incidents/01a2-id)
slack #incidents — thread reply
  │ :hammer_and_wrench: *Applied*
  │ rolled back from revision 2 to revision 1
slack #incidents — root message updated
  │ *Status* :white_check_mark: Verified
`

func TestSlackLog(t *testing.T) {
	msgs := ParseSlackLog([]byte(slackLog))
	if len(msgs) != 3 || msgs[0].What != SlackRoot || msgs[1].What != SlackReply || msgs[2].What != SlackUpdate ||
		msgs[1].Text != ":hammer_and_wrench: *Applied*\nrolled back from revision 2 to revision 1" {
		t.Fatalf("parsed %q", msgs)
	}
	if got := joinMessages(msgs) + "\n"; got != slackLog {
		t.Errorf("String does not give the log back:\n%s", got)
	}
	if err := SlackInOrder(msgs, "Firing", "*Applied*", "rolled back", "Verified"); err != nil {
		t.Errorf("in order: %v", err)
	}
	for _, want := range [][]string{{"Verified", "*Applied*"}, {"rolled back", "*Applied*"}, {"Escalated"}} {
		if SlackInOrder(msgs, want...) == nil {
			t.Errorf("%q: no error", want)
		}
	}
	if err := SlackThread(msgs, "http://127.0.0.1:1", "01a2-id"); err != nil {
		t.Errorf("thread: %v", err)
	}
	if SlackThread(msgs, "http://127.0.0.1:1", "other") == nil || SlackThread(msgs[1:], "http://127.0.0.1:1", "01a2-id") == nil ||
		SlackThread(append(msgs, msgs[0]), "http://127.0.0.1:1", "01a2-id") == nil {
		t.Errorf("thread: a wrong incident, a missing or a second root message is not an error")
	}
}

func TestTimeline(t *testing.T) {
	tl := Timeline{{ID: 1, Type: "received"}, {ID: 2, Type: "planned", Reason: "r"}, {ID: 3, Type: "planned"}}
	if e, ok := tl.First("planned"); !ok || e.ID != 2 {
		t.Errorf("First: %+v %v", e, ok)
	}
	if !tl.Has("received", "planned") || tl.Has("received", "applied") {
		t.Errorf("Has")
	}
	if !slices.Equal(tl.Types(), []string{"received", "planned", "planned"}) {
		t.Errorf("Types: %v", tl.Types())
	}
}

func TestWithoutConfigEnv(t *testing.T) {
	t.Setenv("REMEDIATOR_MODE", "enforce")
	t.Setenv("OTHER_VAR", "kept")
	bin, args, err := withoutConfigEnv("/bin/sh", []string{"-c", `echo "mode=$REMEDIATOR_MODE other=$OTHER_VAR"`})
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil || string(out) != "mode= other=kept\n" {
		t.Errorf("%s %q: %v: %q", bin, args, err, out)
	}
}

func TestPollStops(t *testing.T) {
	calls := 0
	err := poll(context.Background(), time.Minute, func() (bool, error) {
		calls++
		return false, &stopError{errors.New("gone")}
	})
	if err == nil || err.Error() != "gone" || calls != 1 {
		t.Errorf("poll: %v after %d calls, want gone after 1", err, calls)
	}
	err = poll(context.Background(), 300*time.Millisecond, func() (bool, error) { return false, errors.New("not yet") })
	if err == nil || !strings.Contains(err.Error(), "not within 300ms: not yet") {
		t.Errorf("poll: %v", err)
	}
}
