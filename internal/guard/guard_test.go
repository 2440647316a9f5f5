package guard

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

var t0 = utc("2026-05-04T12:00:00Z") // a Monday

// base is an input every guard allows: a firing incident, a rollback on
// Deployment shop/api, an allowed namespace, no history.
func base() Input {
	s := Defaults()
	s.Namespaces = []string{"shop", "pay"}
	s.MaxReplicas = 10
	return Input{
		Now: t0, Settings: s,
		Namespace: "shop", Kind: "Deployment", Name: "api",
		Replicas: 3, ReadyReplicas: 3, MaxUnavailable: 1,
		Action: ActionRollback,
		State:  State{IncidentStatus: StatusFiring},
	}
}

func ex(id, action, state string, ago time.Duration) Execution {
	return Execution{ID: id, IncidentID: "inc-" + id, Action: action, State: state, CreatedAt: t0.Add(-ago)}
}

// reasonOf returns the reason guard g blocked with, or "" if it passed; it
// fails the test when the decision is inconsistent.
func reasonOf(t *testing.T, d Decision, g string) string {
	t.Helper()
	checkDecisionShape(t, d)
	for _, b := range d.Blocks {
		if b.Guard == g {
			return b.Reason
		}
	}
	return ""
}

func checkDecisionShape(t testing.TB, d Decision) {
	t.Helper()
	if d.Allowed != (len(d.Blocks) == 0) {
		t.Fatalf("Allowed = %v with %d blocks", d.Allowed, len(d.Blocks))
	}
	bi, pi := 0, 0
	for _, name := range Names() {
		switch {
		case bi < len(d.Blocks) && d.Blocks[bi].Guard == name:
			if d.Blocks[bi].Reason == "" {
				t.Fatalf("block %s has no reason", name)
			}
			bi++
		case pi < len(d.Passed) && d.Passed[pi] == name:
			pi++
		default:
			t.Fatalf("guard %s neither blocked nor passed, in order (blocks %v, passed %v)", name, d.Blocks, d.Passed)
		}
	}
	if bi != len(d.Blocks) || pi != len(d.Passed) {
		t.Fatalf("decision has extra entries: blocks %v, passed %v", d.Blocks, d.Passed)
	}
}

func TestBaseInputIsAllowed(t *testing.T) {
	d := Evaluate(base())
	checkDecisionShape(t, d)
	if !d.Allowed || !reflect.DeepEqual(d.Passed, Names()) {
		t.Fatalf("base input: %+v", d)
	}
}

func TestNames(t *testing.T) {
	want := []string{GuardInput, GuardTarget, GuardResolved, GuardPause, GuardMaintenance, GuardNamespace,
		GuardProtected, GuardLock, GuardCooldown, GuardRateTarget, GuardRateGlobal, GuardBlastRadius, GuardCircuitBreaker}
	got := Names()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Names() = %v, want %v", got, want)
	}
	got[0] = "changed"
	if Names()[0] != GuardInput {
		t.Fatal("Names() shares its slice between calls")
	}
}

// everythingWrong blocks on every guard but input and target.
func everythingWrong() Input {
	in := base()
	in.Namespace = "kube-system"
	in.Action = ActionRestart
	in.ReadyReplicas, in.MaxUnavailable = 1, 1
	in.TargetLabels = map[string]string{DefaultProtectedKey: "true"}
	in.State = State{
		IncidentStatus: StatusResolved,
		Pause:          Pause{Paused: true, By: "alice"},
		Windows:        []Window{{ID: "w1", Start: t0.Add(-time.Hour), End: t0.Add(time.Hour)}},
		InFlight:       []Execution{ex("e9", "restart", StateApplied, time.Minute)},
		TargetRecent: []Execution{
			ex("e9", "restart", StateApplied, time.Minute),
			ex("e8", "restart", StateFailed, 20*time.Minute),
			ex("e7", "restart", StateIneffective, 40*time.Minute),
		},
		GlobalLastHour: 25,
	}
	return in
}

func TestEvaluateRunsEveryGuard(t *testing.T) {
	d := Evaluate(everythingWrong())
	checkDecisionShape(t, d)
	var got []string
	for _, b := range d.Blocks {
		got = append(got, b.Guard)
	}
	want := []string{GuardResolved, GuardPause, GuardMaintenance, GuardNamespace, GuardProtected, GuardLock,
		GuardCooldown, GuardRateTarget, GuardRateGlobal, GuardBlastRadius, GuardCircuitBreaker}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("blocked by %v, want %v\n%s", got, want, d.Reason())
	}
	if d.Allowed {
		t.Fatal("allowed")
	}
	if !strings.HasPrefix(d.Reason(), "resolved: alert resolved before acting; nothing done; pause: ") {
		t.Errorf("Reason() = %q", d.Reason())
	}
	if got := d.Blocks[0].String(); got != "blocked by resolved: alert resolved before acting; nothing done" {
		t.Errorf("Block.String() = %q", got)
	}
}

func TestEscalateAppliesNoGuard(t *testing.T) {
	in := everythingWrong()
	in.Action = ActionEscalate
	in.Settings = Settings{} // even invalid settings
	in.Now = time.Time{}
	d := Evaluate(in)
	if !d.Allowed || d.Blocks != nil || d.Passed != nil {
		t.Fatalf("escalate: %+v", d)
	}
}

func TestGuardInput(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Input)
		want string // substring of the reason; "" passes
	}{
		{"valid", func(*Input) {}, ""},
		{"no defaults applied", func(in *Input) { in.Settings = Settings{Namespaces: []string{"shop"}} },
			"settings: protected label: must be set (default remediator.io/protected); protected annotation"},
		{"zero cooldown", func(in *Input) { in.Settings.Cooldown = 0 }, "cooldown: must be positive, got 0s"},
		{"min healthy 101", func(in *Input) { in.Settings.MinHealthyPercent = 101 }, "min healthy percent: must be 1..100, got 101"},
		{"wildcard allow-list", func(in *Input) { in.Settings.Namespaces = []string{"shop", "*"} }, `namespaces[1]: "*": wildcards are not accepted`},
		{"unparsed schedule", func(in *Input) { in.Settings.Schedule = []Recurring{{Start: "01:00", End: "02:00"}} }, "schedule[0]: not made by ParseRecurring"},
		{"no clock", func(in *Input) { in.Now = time.Time{} }, "no clock"},
		{"negative replicas", func(in *Input) { in.ReadyReplicas = -1 }, "negative replica counts (replicas 3, ready -1, maxUnavailable 1)"},
		{"negative global count", func(in *Input) { in.State.GlobalLastHour = -2 }, "negative global action count -2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := base()
			tc.mod(&in)
			got := reasonOf(t, Evaluate(in), GuardInput)
			if (got == "") != (tc.want == "") || !strings.Contains(got, tc.want) {
				t.Fatalf("input guard: %q, want %q", got, tc.want)
			}
		})
	}
}

func TestGuardTarget(t *testing.T) {
	for _, tc := range []struct {
		kind, ns, name string
		want           string
	}{
		{"Deployment", "shop", "api", ""},
		{"Deployment", "shop", "", "refusing an empty or wildcard target Deployment shop/: no name"},
		{"", "shop", "api", "no kind"},
		{"Deployment", "", "api", "no namespace"},
		{"Deployment", "shop", "*", `name "*" is a wildcard`},
		{"Deployment", "sh*", "api", `namespace "sh*" is a wildcard`},
	} {
		in := base()
		in.Kind, in.Namespace, in.Name = tc.kind, tc.ns, tc.name
		got := reasonOf(t, Evaluate(in), GuardTarget)
		if (got == "") != (tc.want == "") || !strings.Contains(got, tc.want) {
			t.Errorf("%s %s/%s: %q, want %q", tc.kind, tc.ns, tc.name, got, tc.want)
		}
	}
}

func TestGuardResolved(t *testing.T) {
	for _, tc := range []struct {
		status     string
		resolvedAt time.Time
		want       string
	}{
		{StatusFiring, time.Time{}, ""},
		{StatusResolved, t0.Add(-2 * time.Minute), "alert resolved at 11:58:00Z, before acting; nothing done"},
		{StatusResolved, time.Time{}, "alert resolved before acting; nothing done"},
		{"", time.Time{}, `incident status is "", not firing; nothing done`},
		{"FIRING", time.Time{}, `incident status is "FIRING", not firing; nothing done`},
	} {
		in := base()
		in.State.IncidentStatus, in.State.ResolvedAt = tc.status, tc.resolvedAt
		if got := reasonOf(t, Evaluate(in), GuardResolved); got != tc.want {
			t.Errorf("status %q: %q, want %q", tc.status, got, tc.want)
		}
	}
}

func TestGuardPause(t *testing.T) {
	in := base()
	in.State.Pause = Pause{Paused: false, By: "alice", Reason: "stale"}
	if got := reasonOf(t, Evaluate(in), GuardPause); got != "" {
		t.Fatalf("not paused: %q", got)
	}
	in.State.Pause = Pause{Paused: true, By: "alice", Reason: "incident review", At: t0.Add(-time.Hour)}
	want := `remediation is paused by alice since 11:00:00Z ("incident review"); resume it to act`
	if got := reasonOf(t, Evaluate(in), GuardPause); got != want {
		t.Fatalf("paused: %q, want %q", got, want)
	}
	in.State.Pause = Pause{Paused: true}
	if got := reasonOf(t, Evaluate(in), GuardPause); got != "remediation is paused; resume it to act" {
		t.Fatalf("paused without details: %q", got)
	}
}

func TestGuardMaintenanceAdHoc(t *testing.T) {
	w := Window{ID: "w-7", Start: t0.Add(-time.Hour), End: t0.Add(time.Hour), Reason: "db migration", By: "bob"}
	for _, tc := range []struct {
		name string
		mod  func(*Window)
		want string
	}{
		{"active, all namespaces", func(*Window) {},
			`namespace shop is in maintenance: maintenance window w-7 ("db migration", by bob) is active until 13:00:00Z; actions are held`},
		{"start is inclusive", func(w *Window) { w.Start = t0 }, "is active until 13:00:00Z"},
		{"end is exclusive", func(w *Window) { w.End = t0 }, ""},
		{"future window", func(w *Window) { w.Start, w.End = t0.Add(time.Second), t0.Add(time.Hour) }, ""},
		{"past window", func(w *Window) { w.Start, w.End = t0.Add(-2*time.Hour), t0.Add(-time.Hour) }, ""},
		{"other namespace", func(w *Window) { w.Namespaces = []string{"pay"} }, ""},
		{"this namespace", func(w *Window) { w.Namespaces = []string{"pay", "shop"} }, "w-7"},
		{"no end", func(w *Window) { w.End = time.Time{} }, "is active since 11:00:00Z with no end set"},
		{"ends tomorrow", func(w *Window) { w.End = t0.Add(24 * time.Hour) }, "is active until 2026-05-05 12:00:00Z"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in, w := base(), w
			tc.mod(&w)
			in.State.Windows = []Window{{ID: "future", Start: t0.Add(time.Hour), End: t0.Add(2 * time.Hour)}, w}
			got := reasonOf(t, Evaluate(in), GuardMaintenance)
			if (got == "") != (tc.want == "") || !strings.Contains(got, tc.want) {
				t.Fatalf("%q, want %q", got, tc.want)
			}
		})
	}
}

func TestGuardMaintenanceRecurring(t *testing.T) {
	in := base()
	in.Now = utc("2026-05-04T20:30:00Z") // Monday 22:30 in Berlin (CEST)
	in.Settings.Schedule = []Recurring{
		mustParse(t, Recurring{Name: "nightly", Start: "22:00", End: "04:00", TZ: "Europe/Berlin", Namespaces: []string{"shop"}}),
		mustParse(t, Recurring{Name: "pay-only", Start: "00:00", End: "24:00", Namespaces: []string{"pay"}}),
	}
	want := `namespace shop is in maintenance: maintenance window "nightly" daily 22:00–04:00 Europe/Berlin is active until 2026-05-05 04:00 CEST (2026-05-05 02:00:00Z); actions are held`
	if got := reasonOf(t, Evaluate(in), GuardMaintenance); got != want {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
	in.Now = utc("2026-05-04T19:59:59Z") // 21:59:59 in Berlin
	if got := reasonOf(t, Evaluate(in), GuardMaintenance); got != "" {
		t.Fatalf("before the window: %q", got)
	}
	in.Namespace = "pay"
	if got := reasonOf(t, Evaluate(in), GuardMaintenance); !strings.Contains(got, `"pay-only"`) {
		t.Fatalf("pay: %q", got)
	}
}

func TestGuardNamespace(t *testing.T) {
	for _, tc := range []struct {
		allow []string
		ns    string
		want  string
	}{
		{[]string{"shop"}, "shop", ""},
		{nil, "shop", `the namespace allow-list is empty, so no namespace is allowed (not even "shop")`},
		{[]string{}, "shop", `the namespace allow-list is empty, so no namespace is allowed (not even "shop")`},
		{[]string{"pay", "batch"}, "shop", `namespace "shop" is not in the allow-list [pay, batch]`},
		{[]string{"*"}, "shop", `namespace "shop" is not in the allow-list [*]`},
		{[]string{"*"}, "*", `namespace "*" is not in the allow-list [*]`},
		{[]string{""}, "", `namespace "" is not in the allow-list []`},
	} {
		in := base()
		in.Settings.Namespaces, in.Namespace = tc.allow, tc.ns
		if got := reasonOf(t, Evaluate(in), GuardNamespace); got != tc.want {
			t.Errorf("allow %q, namespace %q: %q, want %q", tc.allow, tc.ns, got, tc.want)
		}
	}
}

func TestGuardProtected(t *testing.T) {
	for _, tc := range []struct {
		name               string
		labels, annots     map[string]string
		labelKey, annotKey string
		want               string
	}{
		{"no metadata", nil, nil, "", "", ""},
		{"label true", map[string]string{DefaultProtectedKey: "true"}, nil, "", "",
			"Deployment shop/api is protected (label remediator.io/protected=true); no automated action"},
		{"annotation TRUE", nil, map[string]string{DefaultProtectedKey: " TRUE "}, "", "", "annotation remediator.io/protected= TRUE "},
		{"both", map[string]string{DefaultProtectedKey: "true"}, map[string]string{DefaultProtectedKey: "True"}, "", "",
			"(label remediator.io/protected=true, annotation remediator.io/protected=True)"},
		{"false", map[string]string{DefaultProtectedKey: "false"}, map[string]string{DefaultProtectedKey: "no"}, "", "", ""},
		{"empty value", map[string]string{DefaultProtectedKey: ""}, nil, "", "", ""},
		{"custom keys", map[string]string{"team/frozen": "true"}, nil, "team/frozen", "team/frozen", "label team/frozen=true"},
		{"default key ignored with custom keys", map[string]string{DefaultProtectedKey: "true"}, nil, "team/frozen", "team/frozen", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := base()
			in.TargetLabels, in.TargetAnnotations = tc.labels, tc.annots
			if tc.labelKey != "" {
				in.Settings.ProtectedLabel, in.Settings.ProtectedAnnotation = tc.labelKey, tc.annotKey
			}
			got := reasonOf(t, Evaluate(in), GuardProtected)
			if (got == "") != (tc.want == "") || !strings.Contains(got, tc.want) {
				t.Fatalf("%q, want %q", got, tc.want)
			}
		})
	}
}

func TestGuardLock(t *testing.T) {
	in := base()
	in.Settings.Cooldown = time.Second
	in.State.InFlight = []Execution{ex("e1", "restart", StateIntent, 30*time.Minute)}
	want := "Deployment shop/api has an action in flight: execution e1 (restart, intent, created 11:30:00Z, incident inc-e1); one action at a time per target"
	if got := reasonOf(t, Evaluate(in), GuardLock); got != want {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
	in.State.InFlight = nil
	in.State.TargetRecent = []Execution{ex("e1", "restart", StateVerified, 30*time.Minute)}
	if got := reasonOf(t, Evaluate(in), GuardLock); got != "" {
		t.Fatalf("nothing in flight: %q", got)
	}
}

func TestGuardCooldown(t *testing.T) {
	const cd = 10 * time.Minute
	for _, tc := range []struct {
		name   string
		recent []Execution
		flight []Execution
		want   string
	}{
		{"no history", nil, nil, ""},
		{"the example", []Execution{ex("e1", "rollback", StateVerified, 3*time.Minute)}, nil,
			"last action on Deployment shop/api was 3m0s ago (rollback, verified); cooldown is 10m0s, ends 12:07:00Z"},
		{"exactly at the end", []Execution{ex("e1", "rollback", StateVerified, cd)}, nil, ""},
		{"one nanosecond before the end", []Execution{ex("e1", "rollback", StateVerified, cd-time.Nanosecond)}, nil, "cooldown is 10m0s, ends 12:00:00Z"},
		{"failed counts", []Execution{ex("e1", "restart", StateFailed, 5*time.Minute)}, nil, "(restart, failed)"},
		{"abandoned does not count", []Execution{ex("e1", "restart", StateAbandoned, time.Minute)}, nil, ""},
		{"abandoned skipped, older one counts", []Execution{ex("e2", "restart", StateAbandoned, time.Minute), ex("e1", "scale", StateIneffective, 9*time.Minute)}, nil,
			"was 9m0s ago (scale, ineffective)"},
		{"newest wins whatever the order", []Execution{ex("e1", "scale", StateVerified, 9*time.Minute), ex("e2", "rollback", StateVerified, 2*time.Minute)}, nil,
			"was 2m0s ago (rollback, verified)"},
		{"in flight counts", nil, []Execution{ex("e3", "restart", StateApplied, 4*time.Minute)}, "was 4m0s ago (restart, applied)"},
		{"future-dated blocks", []Execution{ex("e1", "restart", StateVerified, -2*time.Minute)}, nil,
			"is dated 2m0s in the future (restart, verified); cooldown is 10m0s, ends 12:12:00Z"},
		{"next day", []Execution{{ID: "e1", Action: "restart", State: StateVerified, CreatedAt: utc("2026-05-03T23:58:00Z")}}, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := base()
			in.Settings.Cooldown = cd
			in.State.TargetRecent, in.State.InFlight = tc.recent, tc.flight
			got := reasonOf(t, Evaluate(in), GuardCooldown)
			if (got == "") != (tc.want == "") || !strings.Contains(got, tc.want) {
				t.Fatalf("%q, want %q", got, tc.want)
			}
		})
	}
	// A cooldown crossing midnight names the date.
	in := base()
	in.Now = utc("2026-05-04T23:58:00Z")
	in.State.TargetRecent = []Execution{{ID: "e1", Action: "restart", State: StateVerified, CreatedAt: utc("2026-05-04T23:55:00Z")}}
	if got := reasonOf(t, Evaluate(in), GuardCooldown); !strings.HasSuffix(got, "ends 2026-05-05 00:05:00Z") {
		t.Fatalf("cooldown across midnight: %q", got)
	}
}

func TestGuardRateTarget(t *testing.T) {
	var hist []Execution
	for i, ago := range []time.Duration{15 * time.Minute, 30 * time.Minute, 45 * time.Minute, 60 * time.Minute, 75 * time.Minute} {
		hist = append(hist, ex(string(rune('a'+i)), "restart", StateVerified, ago))
	}
	for _, tc := range []struct {
		name  string
		max   int
		hist  []Execution
		want  string
		exact bool
	}{
		// a 15m, b 30m, c 45m ago are within the hour; d is exactly one hour old and out.
		{"limit 3, 3 in the hour: at the limit", 3, hist,
			"Deployment shop/api had 3 actions in the last hour, the limit is 3 per hour; the next is allowed at 12:15:00Z", true},
		{"limit 4, 3 in the hour", 4, hist, "", true},
		{"limit 1: next when the newest leaves", 1, hist, "had 3 actions in the last hour, the limit is 1 per hour; the next is allowed at 12:45:00Z", false},
		{"limit 2", 2, hist, "the next is allowed at 12:30:00Z", false},
		{"abandoned do not count", 3, []Execution{ex("a", "restart", StateAbandoned, time.Minute), hist[1], hist[2]}, "", true},
		{"exactly one hour old does not count", 1, []Execution{hist[3]}, "", true},
		{"one nanosecond less than an hour counts", 1, []Execution{ex("x", "scale", StateFailed, time.Hour-time.Nanosecond)}, "had 1 actions", false},
		{"in-flight counted once", 2, []Execution{hist[0]}, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := base()
			in.Settings.MaxPerTargetPerHour = tc.max
			in.State.TargetRecent = tc.hist
			if tc.name == "in-flight counted once" {
				in.State.InFlight = []Execution{tc.hist[0]} // the same execution in both lists
			}
			got := reasonOf(t, Evaluate(in), GuardRateTarget)
			if tc.exact && got != tc.want || !tc.exact && !strings.Contains(got, tc.want) {
				t.Fatalf("%q, want %q", got, tc.want)
			}
		})
	}
}

func TestGuardRateGlobal(t *testing.T) {
	for _, tc := range []struct {
		n, max int
		want   string
	}{
		{19, 20, ""},
		{20, 20, "20 actions on all targets in the last hour, the global limit is 20 per hour"},
		{21, 20, "21 actions on all targets in the last hour, the global limit is 20 per hour"},
		{0, 1, ""},
		{1, 1, "1 actions on all targets in the last hour, the global limit is 1 per hour"},
	} {
		in := base()
		in.Settings.MaxGlobalPerHour, in.State.GlobalLastHour = tc.max, tc.n
		if got := reasonOf(t, Evaluate(in), GuardRateGlobal); got != tc.want {
			t.Errorf("%d of %d: %q, want %q", tc.n, tc.max, got, tc.want)
		}
	}
}

func TestMinReady(t *testing.T) {
	for _, tc := range []struct {
		pct      int
		replicas int32
		want     int64
	}{
		{50, 3, 2}, // 1.5 rounds up
		{50, 4, 2},
		{50, 1, 1},
		{25, 4, 1},
		{25, 5, 2}, // 1.25
		{33, 10, 4},
		{99, 7, 7},
		{100, 3, 3},
		{1, 2, 1},
		{50, 0, 0},
		{50, 100, 50},
		{100, 1 << 30, 1 << 30},
	} {
		if got := minReady(tc.pct, tc.replicas); got != tc.want {
			t.Errorf("minReady(%d%%, %d) = %d, want %d", tc.pct, tc.replicas, got, tc.want)
		}
	}
}

func TestGuardBlastRadius(t *testing.T) {
	type nums struct{ replicas, ready, maxUnavailable int32 }
	for _, tc := range []struct {
		name    string
		action  string
		pct     int
		maxRepl int32
		n       nums
		change  Change
		want    string
	}{
		// scale
		{"scale within the guard bound", ActionScale, 50, 10, nums{3, 3, 1}, Change{ScaleTo: 10}, ""},
		{"scale above the guard bound", ActionScale, 50, 10, nums{3, 3, 1}, Change{ScaleTo: 11},
			"scale to 11 replicas exceeds the upper bound 10 (the guard's maxReplicas 10)"},
		{"scale without any bound", ActionScale, 50, 0, nums{3, 3, 1}, Change{ScaleTo: 4},
			"scale has no upper bound: set the guard's maxReplicas or the action's max"},
		{"scale with only the change's bound", ActionScale, 50, 0, nums{3, 3, 1}, Change{ScaleTo: 6, ScaleMax: 6}, ""},
		{"scale above the change's bound", ActionScale, 50, 0, nums{3, 3, 1}, Change{ScaleTo: 7, ScaleMax: 6},
			"scale to 7 replicas exceeds the upper bound 6 (the change's max 6)"},
		{"the smaller bound applies (guard)", ActionScale, 50, 5, nums{3, 3, 1}, Change{ScaleTo: 6, ScaleMax: 8}, "exceeds the upper bound 5 (the guard's maxReplicas 5)"},
		{"the smaller bound applies (change)", ActionScale, 50, 8, nums{3, 3, 1}, Change{ScaleTo: 6, ScaleMax: 5}, "exceeds the upper bound 5 (the change's max 5)"},
		{"scale to zero", ActionScale, 50, 8, nums{3, 3, 1}, Change{ScaleTo: 0}, "scale to 0 replicas is invalid"},
		{"negative change bound", ActionScale, 50, 8, nums{3, 3, 1}, Change{ScaleTo: 4, ScaleMax: -1}, "scale has a negative max -1"},

		// restart: ready − maxUnavailable ≥ ceil(pct × replicas / 100)
		{"restart 3 replicas 50%: 3−1 = 2 ≥ 2", ActionRestart, 50, 0, nums{3, 3, 1}, Change{}, ""},
		{"restart 3 replicas 50%: 3−2 = 1 < 2", ActionRestart, 50, 0, nums{3, 3, 2}, Change{},
			"restart may leave 1 ready pods (3 ready now, maxUnavailable 2), below the minimum of 2 (50% of 3 replicas, rounded up)"},
		{"restart degraded: 2−1 = 1 < 2", ActionRestart, 50, 0, nums{3, 2, 1}, Change{}, "may leave 1 ready pods"},
		{"restart 1 replica 50%: maxUnavailable 0 keeps 1", ActionRestart, 50, 0, nums{1, 1, 0}, Change{}, ""},
		{"restart 1 replica 50%: maxUnavailable 1 leaves 0 < 1", ActionRestart, 50, 0, nums{1, 1, 1}, Change{}, "below the minimum of 1"},
		{"restart 100%: needs maxUnavailable 0", ActionRestart, 100, 0, nums{4, 4, 1}, Change{}, "below the minimum of 4 (100% of 4 replicas"},
		{"restart 0 replicas", ActionRestart, 50, 0, nums{0, 0, 0}, Change{}, ""},
		{"restart Recreate (maxUnavailable = replicas)", ActionRestart, 1, 0, nums{2, 2, 2}, Change{}, "may leave 0 ready pods"},
		// The Falco Talon bug compared a count with a percentage. 10
		// replicas, 50%: 7 ready pods after are fine although 7 < 50; 100
		// replicas, 50%: 40 ready pods are not although 40 > 10.
		{"counts not percentages (7 ≥ 5)", ActionRestart, 50, 0, nums{10, 10, 3}, Change{}, ""},
		{"counts not percentages (40 ≥ 10)", ActionRestart, 10, 0, nums{100, 100, 60}, Change{}, ""},
		{"counts not percentages (40 < 50 at 50%)", ActionRestart, 50, 0, nums{100, 100, 60}, Change{}, "may leave 40 ready pods (100 ready now, maxUnavailable 60), below the minimum of 50"},

		// delete-pod
		{"delete a ready pod: 3 → 2 ≥ 2", ActionDeletePod, 50, 0, nums{3, 3, 1}, Change{}, ""},
		{"delete a ready pod: 2 → 1 < 2", ActionDeletePod, 50, 0, nums{3, 2, 1}, Change{},
			"deleting the pod (ready) would leave 1 ready pods (2 ready now), below the minimum of 2 (50% of 3 replicas, rounded up)"},
		{"delete a pod that is not ready: 2 stay", ActionDeletePod, 50, 0, nums{3, 2, 1}, Change{DeletePodNotReady: true}, ""},
		{"the change's own bound is stricter", ActionDeletePod, 50, 0, nums{3, 3, 1}, Change{DeleteMinReady: 3},
			"deleting the pod (ready) would leave 2 ready pods (3 ready now), below the minimum of 3 (the change's own bound)"},
		{"the guard's bound is stricter", ActionDeletePod, 100, 0, nums{3, 3, 1}, Change{DeleteMinReady: 1, DeletePodNotReady: false}, "below the minimum of 3 (100% of 3 replicas"},
		{"single replica, crash-looping pod", ActionDeletePod, 50, 0, nums{1, 0, 0}, Change{DeletePodNotReady: true}, "below the minimum of 1"},

		// others
		{"rollback has no count to bound", ActionRollback, 100, 0, nums{3, 0, 3}, Change{}, ""},
		{"unknown action", "drain-node", 50, 0, nums{3, 3, 1}, Change{}, `unknown action "drain-node": its blast radius cannot be assessed`},
		{"empty action", "", 50, 0, nums{3, 3, 1}, Change{}, `unknown action ""`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := base()
			in.Action, in.Change = tc.action, tc.change
			in.Settings.MinHealthyPercent, in.Settings.MaxReplicas = tc.pct, tc.maxRepl
			in.Replicas, in.ReadyReplicas, in.MaxUnavailable = tc.n.replicas, tc.n.ready, tc.n.maxUnavailable
			got := reasonOf(t, Evaluate(in), GuardBlastRadius)
			if (got == "") != (tc.want == "") || !strings.Contains(got, tc.want) {
				t.Fatalf("%q, want %q", got, tc.want)
			}
		})
	}
}

func TestGuardCircuitBreaker(t *testing.T) {
	const w = 24 * time.Hour
	fail := func(id string, ago time.Duration) Execution { return ex(id, "restart", StateFailed, ago) }
	inef := func(id string, ago time.Duration) Execution { return ex(id, "rollback", StateIneffective, ago) }
	for _, tc := range []struct {
		name string
		k    int
		hist []Execution
		want string
	}{
		{"one failure, K=2", 2, []Execution{fail("f1", time.Hour)}, ""},
		{"two, K=2: trips", 2, []Execution{fail("f1", time.Hour), inef("i1", 3*time.Hour)},
			"2 failed or ineffective actions on Deployment shop/api within 24h0m0s (execution f1 (restart, failed, created 11:00:00Z, incident inc-f1); " +
				"execution i1 (rollback, ineffective, created 09:00:00Z, incident inc-i1)), the breaker trips at 2; stop acting on this target; escalate (resets at 2026-05-05 09:00:00Z)"},
		{"exactly the window ago does not count", 2, []Execution{fail("f1", time.Hour), fail("f0", w)}, ""},
		{"a nanosecond inside the window counts", 2, []Execution{fail("f1", time.Hour), fail("f0", w-time.Nanosecond)}, "(resets at 12:00:00Z)"},
		{"verified, abandoned and in-flight do not count", 1, []Execution{
			ex("v", "restart", StateVerified, time.Hour), ex("a", "restart", StateAbandoned, time.Hour),
			ex("i", "restart", StateIntent, time.Hour), ex("p", "restart", StateApplied, time.Hour)}, ""},
		{"K=1 trips on one", 1, []Execution{inef("i1", 23*time.Hour)}, "1 failed or ineffective actions"},
		{"K=3, 3 of 4 inside", 3, []Execution{fail("a", time.Hour), fail("b", 2*time.Hour), fail("c", 3*time.Hour), fail("d", 25*time.Hour)},
			"resets at 2026-05-05 09:00:00Z"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := base()
			in.Settings.BreakerFailures, in.Settings.BreakerWindow = tc.k, w
			in.State.TargetRecent = tc.hist
			got := reasonOf(t, Evaluate(in), GuardCircuitBreaker)
			if (got == "") != (tc.want == "") || !strings.Contains(got, tc.want) {
				t.Fatalf("%q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestDefaultsAndWithDefaults(t *testing.T) {
	d := Defaults()
	want := Settings{
		ProtectedLabel: "remediator.io/protected", ProtectedAnnotation: "remediator.io/protected",
		Cooldown: 10 * time.Minute, MaxPerTargetPerHour: 3, MaxGlobalPerHour: 20,
		MinHealthyPercent: 50, BreakerFailures: 2, BreakerWindow: 24 * time.Hour,
	}
	if !reflect.DeepEqual(d, want) {
		t.Fatalf("Defaults() = %+v", d)
	}
	if !reflect.DeepEqual(Settings{}.WithDefaults(), want) {
		t.Fatal("Settings{}.WithDefaults() differs from Defaults()")
	}
	set := Settings{Namespaces: []string{"a"}, ProtectedLabel: "x", ProtectedAnnotation: "y", Cooldown: time.Minute,
		MaxPerTargetPerHour: 1, MaxGlobalPerHour: 2, MaxReplicas: 7, MinHealthyPercent: 80, BreakerFailures: 5, BreakerWindow: time.Hour}
	if !reflect.DeepEqual(set.WithDefaults(), set) {
		t.Fatal("WithDefaults changed fields that were set")
	}
	// Defaults are valid but allow no namespace.
	if err := d.Validate(); err != nil {
		t.Fatalf("Defaults().Validate(): %v", err)
	}
	in := base()
	in.Settings = d
	if got := reasonOf(t, Evaluate(in), GuardNamespace); !strings.Contains(got, "allow-list is empty") {
		t.Fatalf("defaults must allow no namespace: %q", got)
	}
}

func TestMerge(t *testing.T) {
	global := Settings{Namespaces: []string{"shop"}, Cooldown: 30 * time.Minute, MaxReplicas: 20}
	got := Merge(global, Overrides{})
	want := global.WithDefaults()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Merge without overrides: %+v", got)
	}
	got = Merge(global, Overrides{Cooldown: 5 * time.Minute, MaxPerTargetPerHour: 1, MaxReplicas: 6, MinHealthyPercent: 75})
	want.Cooldown, want.MaxPerTargetPerHour, want.MaxReplicas, want.MinHealthyPercent = 5*time.Minute, 1, 6, 75
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Merge with overrides: %+v", got)
	}
	if err := Merge(global, Overrides{MinHealthyPercent: 150}).Validate(); err == nil {
		t.Fatal("an out-of-range override must not validate")
	}
}

func TestSettingsValidate(t *testing.T) {
	bad := Settings{Namespaces: []string{"", "a*"}, Cooldown: -time.Second, MaxPerTargetPerHour: -1, MaxGlobalPerHour: 0,
		MaxReplicas: -3, MinHealthyPercent: 0, BreakerFailures: 0, BreakerWindow: 0, Schedule: []Recurring{{}}}
	err := bad.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, w := range []string{"namespaces[0]: empty namespace", `namespaces[1]: "a*": wildcards are not accepted`, "protected label", "protected annotation",
		"cooldown: must be positive, got -1s", "max per target per hour: must be at least 1, got -1", "max global per hour: must be at least 1, got 0",
		"max replicas: must not be negative, got -3", "min healthy percent: must be 1..100, got 0", "breaker failures: must be at least 1, got 0",
		"breaker window: must be positive, got 0s", "schedule[0]: not made by ParseRecurring"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q:\n%v", w, err)
		}
	}
}

func TestLookback(t *testing.T) {
	for _, tc := range []struct {
		cooldown, breaker, want time.Duration
	}{
		{10 * time.Minute, 24 * time.Hour, 24 * time.Hour},
		{10 * time.Minute, 30 * time.Minute, time.Hour}, // the rate window
		{3 * time.Hour, 2 * time.Hour, 3 * time.Hour},
	} {
		s := Settings{Cooldown: tc.cooldown, BreakerWindow: tc.breaker}
		if got := t0.Sub(s.Lookback(t0)); got != tc.want {
			t.Errorf("Lookback with cooldown %s, breaker %s: %s ago, want %s", tc.cooldown, tc.breaker, got, tc.want)
		}
	}
}
