package guard

// Property tests. Every run uses a fresh seed (printed); to reproduce a
// failure, rerun with the printed GUARD_SEED (and GUARD_SEQUENCES to
// change the number of sequences):
//
//	GUARD_SEED=1234 go test -run TestProperty ./internal/guard/

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// propSeed returns the base seed of this run, from GUARD_SEED or the clock.
func propSeed(t *testing.T) uint64 {
	t.Helper()
	if v := os.Getenv("GUARD_SEED"); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("GUARD_SEED=%q: %v", v, err)
		}
		return s
	}
	return uint64(time.Now().UnixNano())
}

// propCount returns GUARD_SEQUENCES if set, else def.
func propCount(t *testing.T, def int) int {
	t.Helper()
	if v := os.Getenv("GUARD_SEQUENCES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("GUARD_SEQUENCES=%q: want a positive number", v)
		}
		return n
	}
	return def
}

func rnd(seed uint64, i int) *rand.Rand { return rand.New(rand.NewPCG(seed, uint64(i))) }

// ---------------------------------------------------------------------------
// The ledger simulation.

const (
	propSequences = 3000
	propMaxSteps  = 50
)

var zones = []string{"", "UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "America/Havana", "Asia/Beirut"}

type simTarget struct {
	ns, name       string
	labels, annots map[string]string
	protected      bool
	firing         bool
	resolvedAt     time.Time
	incident       int
}

type simExec struct {
	Execution
	target  int
	seq     int // event number of the decision
	doneSeq int // event number of the outcome; 0 while in flight
	// What the model said at decision time.
	firing, paused, inWindow, nsAllowed, protected, blastOK bool
}

type sim struct {
	t        *testing.T
	r        *rand.Rand
	seed     uint64
	seqNo    int
	now      time.Time
	s        Settings
	targets  []simTarget
	ledger   []*simExec
	pause    Pause
	windows  []Window
	event    int
	trace    []string
	blocked  map[string]int
	allowed  int
	attempts int
}

func (m *sim) logf(format string, args ...any) {
	m.trace = append(m.trace, fmt.Sprintf("%3d %s  ", m.event, m.now.UTC().Format("2006-01-02 15:04:05Z"))+fmt.Sprintf(format, args...))
}

func (m *sim) fail(format string, args ...any) {
	m.t.Helper()
	m.t.Fatalf("%s\nseed %d, sequence %d: rerun with GUARD_SEED=%d\nsettings: %+v\ntrace:\n%s",
		fmt.Sprintf(format, args...), m.seed, m.seqNo, m.seed, m.s, strings.Join(m.trace, "\n"))
}

func randomDuration(r *rand.Rand, min, max time.Duration) time.Duration {
	return min + time.Duration(r.Int64N(int64(max-min)+1))
}

func randomRecurring(r *rand.Rand) Recurring {
	var rec Recurring
	if r.IntN(4) > 0 {
		for d := 0; d < 7; d++ {
			if r.IntN(3) == 0 {
				rec.Days = append(rec.Days, []string{"Sun", "mon", "Tuesday", "WED", "thu", "Fri", "sat"}[d])
			}
		}
	}
	start := r.IntN(minutesPerDay)
	if r.IntN(3) == 0 {
		start = r.IntN(24) * 60
	}
	end := r.IntN(minutesPerDay + 1)
	if r.IntN(8) == 0 {
		start, end = 0, minutesPerDay
	}
	if end%minutesPerDay == start && end != minutesPerDay {
		end = (start + 1 + r.IntN(minutesPerDay-1)) % minutesPerDay
	}
	rec.Start = fmt.Sprintf("%02d:%02d", start/60, start%60)
	rec.End = fmt.Sprintf("%02d:%02d", end/60, end%60)
	rec.TZ = zones[r.IntN(len(zones))]
	for _, ns := range []string{"shop", "pay", "batch"} {
		if r.IntN(3) == 0 {
			rec.Namespaces = append(rec.Namespaces, ns)
		}
	}
	return rec
}

// cellsOf models a recurring window by enumeration: the (weekday, minute of
// the local day) cells it covers, walked minute by minute from each start.
func cellsOf(t testing.TB, r Recurring) [7][minutesPerDay]bool {
	var c [7][minutesPerDay]bool
	var days []int
	if len(r.Days) == 0 {
		days = []int{0, 1, 2, 3, 4, 5, 6}
	}
	for _, d := range r.Days {
		i := slices.IndexFunc(weekdays[:], func(w string) bool { return strings.HasPrefix(w, strings.ToLower(d)[:3]) })
		if i < 0 {
			t.Fatalf("model: day %q", d)
		}
		days = append(days, i)
	}
	hm := func(s string) int {
		h, _ := strconv.Atoi(s[:2])
		mm, _ := strconv.Atoi(s[3:])
		return h*60 + mm
	}
	start, end := hm(r.Start), hm(r.End)
	length := end - start
	if length <= 0 {
		length += minutesPerDay
	}
	for _, d := range days {
		for k := 0; k < length; k++ {
			abs := start + k
			c[(d+abs/minutesPerDay)%7][abs%minutesPerDay] = true
		}
	}
	return c
}

func cellActive(c *[7][minutesPerDay]bool, loc *time.Location, now time.Time) bool {
	lt := now.In(loc)
	return c[lt.Weekday()][lt.Hour()*60+lt.Minute()]
}

// modelReach walks loc's offset segments from three days before want (a
// wall time written as UTC) to the first instant the clock shows want or
// later: the start of a segment already past want (a jump over it) or the
// instant in a segment whose offset makes the clock show want.
func modelReach(loc *time.Location, want time.Time) time.Time {
	a := want.Add(-72 * time.Hour)
	for i := 0; i < 50; i++ {
		_, off := a.In(loc).Zone()
		o := time.Duration(off) * time.Second
		_, b := a.In(loc).ZoneBounds()
		if !a.Add(o).Before(want) {
			return a
		}
		if c := want.Add(-o); !c.Before(a) && (b.IsZero() || c.Before(b)) {
			return c
		}
		a = b
	}
	panic("modelReach: no segment reaches " + want.String())
}

// modelActive: some occurrence, starting on a listed local day near now,
// spans now (from the first time the clock shows its start to the first
// time it then shows its end).
func modelActive(r Recurring, now time.Time) bool {
	hm := func(s string) int {
		h, _ := strconv.Atoi(s[:2])
		mm, _ := strconv.Atoi(s[3:])
		return h*60 + mm
	}
	start, end := hm(r.Start), hm(r.End)
	if end == 0 {
		end = minutesPerDay
	}
	span := 0
	if end <= start {
		span = 1
	}
	y, mo, d := now.In(r.loc).Date()
	for off := -3; off <= 2; off++ {
		day := time.Date(y, mo, d+off, 0, 0, 0, 0, time.UTC)
		listed := len(r.Days) == 0
		for _, name := range r.Days {
			listed = listed || strings.EqualFold(name[:3], day.Weekday().String()[:3])
		}
		if !listed {
			continue
		}
		s := modelReach(r.loc, day.Add(time.Duration(start)*time.Minute))
		e := modelReach(r.loc, day.AddDate(0, 0, span).Add(time.Duration(end)*time.Minute))
		if !now.Before(s) && now.Before(e) {
			return true
		}
	}
	return false
}

// farFromClockChanges: no clock change within three days of now, where the
// plain wall-clock model (cellsOf) must agree.
func farFromClockChanges(loc *time.Location, now time.Time) bool {
	start, end := now.In(loc).ZoneBounds()
	return (start.IsZero() || now.Sub(start) > 72*time.Hour) && (end.IsZero() || end.Sub(now) > 72*time.Hour)
}

// transitions lists a zone's clock changes in 2026 (to start near them).
func transitions(loc *time.Location) []time.Time {
	var out []time.Time
	t := time.Date(2026, 1, 1, 0, 0, 0, 0, loc)
	for i := 0; i < 4; i++ {
		_, end := t.ZoneBounds()
		if end.IsZero() || end.Year() > 2026 {
			break
		}
		out = append(out, end)
		t = end
	}
	return out
}

func randomInstant(r *rand.Rand, locs []*time.Location) time.Time {
	if r.IntN(3) == 0 {
		loc := locs[r.IntN(len(locs))]
		if tr := transitions(loc); len(tr) > 0 {
			return tr[r.IntN(len(tr))].Add(randomDuration(r, -12*time.Hour, 12*time.Hour)).Truncate(time.Second)
		}
	}
	return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(randomDuration(r, 0, 365*24*time.Hour)).Truncate(time.Second)
}

func newSim(t *testing.T, seed uint64, i int, locs []*time.Location) *sim {
	r := rnd(seed, i)
	m := &sim{t: t, r: r, seed: seed, seqNo: i, blocked: map[string]int{}}
	global := Settings{
		Namespaces:          []string{"shop", "pay"},
		Cooldown:            []time.Duration{0, time.Minute, 5 * time.Minute, 10 * time.Minute, 30 * time.Minute, 90 * time.Minute, randomDuration(r, time.Second, 3*time.Hour)}[r.IntN(7)],
		MaxPerTargetPerHour: r.IntN(6), // 0: the default
		MaxGlobalPerHour:    r.IntN(9),
		MaxReplicas:         int32(r.IntN(12)),
		MinHealthyPercent:   r.IntN(101),
		BreakerFailures:     r.IntN(5),
		BreakerWindow:       []time.Duration{0, randomDuration(r, 10*time.Minute, 48*time.Hour)}[r.IntN(2)],
	}
	for n := r.IntN(3); n > 0; n-- {
		rec, err := ParseRecurring(randomRecurring(r))
		if err != nil {
			t.Fatalf("seed %d sequence %d: %v", seed, i, err)
		}
		global.Schedule = append(global.Schedule, rec)
	}
	var o Overrides
	if r.IntN(2) == 0 {
		o = Overrides{Cooldown: time.Duration(r.IntN(3)) * 7 * time.Minute, MaxPerTargetPerHour: r.IntN(4), MaxReplicas: int32(r.IntN(8)), MinHealthyPercent: r.IntN(101)}
	}
	m.s = Merge(global, o)
	if err := m.s.Validate(); err != nil {
		t.Fatalf("seed %d sequence %d: generated settings invalid: %v", seed, i, err)
	}
	m.now = randomInstant(r, locs)
	for _, tg := range []struct{ ns, name string }{{"shop", "api"}, {"shop", "web"}, {"pay", "ledger"}, {"batch", "job"}} {
		st := simTarget{ns: tg.ns, name: tg.name, firing: true, incident: 1,
			labels: map[string]string{"app": tg.name}, annots: map[string]string{}}
		switch r.IntN(10) {
		case 0:
			st.labels[m.s.ProtectedLabel], st.protected = "true", true
		case 1:
			st.annots[m.s.ProtectedAnnotation], st.protected = "TRUE", true
		case 2:
			st.labels[m.s.ProtectedLabel] = "false"
		}
		m.targets = append(m.targets, st)
	}
	return m
}

func (m *sim) step() {
	m.event++
	r := m.r
	switch w := r.IntN(100); {
	case w < 30: // the clock advances
		var d time.Duration
		switch r.IntN(20) {
		case 0, 1, 2:
			d = randomDuration(r, time.Hour, 30*time.Hour)
		case 3, 4, 5, 6, 7, 8, 9:
			d = randomDuration(r, time.Minute, 90*time.Minute)
		default:
			d = randomDuration(r, time.Second, 5*time.Minute)
		}
		m.now = m.now.Add(d)
		m.logf("clock +%s", d)
	case w < 38: // the clock moves to just before, at or just after a boundary
		var marks []time.Time
		for _, e := range m.ledger {
			for _, d := range []time.Duration{m.s.Cooldown, time.Hour, m.s.BreakerWindow} {
				marks = append(marks, e.CreatedAt.Add(d))
			}
		}
		for _, win := range m.windows {
			marks = append(marks, win.Start, win.End)
		}
		for _, rec := range m.s.Schedule {
			if end, ok := rec.ActiveUntil(m.now); ok {
				marks = append(marks, end)
			}
		}
		if len(marks) == 0 {
			return
		}
		to := marks[r.IntN(len(marks))].Add([]time.Duration{-time.Nanosecond, 0, 0, time.Nanosecond, -time.Second}[r.IntN(5)])
		if to.After(m.now) {
			m.logf("clock +%s to a boundary", to.Sub(m.now))
			m.now = to
		}
	case w < 68:
		m.attempt()
	case w < 77: // an in-flight execution ends
		var flying []*simExec
		for _, e := range m.ledger {
			if e.doneSeq == 0 {
				flying = append(flying, e)
			}
		}
		if len(flying) > 0 {
			m.finish(flying[r.IntN(len(flying))])
		}
	case w < 87: // the alert of a target fires or resolves
		i := r.IntN(len(m.targets))
		tg := &m.targets[i]
		if tg.firing {
			tg.firing, tg.resolvedAt = false, m.now
			m.logf("resolve %s/%s", tg.ns, tg.name)
		} else {
			tg.firing, tg.incident = true, tg.incident+1
			m.logf("fire %s/%s (incident %d)", tg.ns, tg.name, tg.incident)
		}
	case w < 91:
		if m.pause.Paused {
			m.pause = Pause{}
			m.logf("resume")
		} else if r.IntN(2) == 0 {
			m.pause = Pause{Paused: true, By: "op", Reason: "test", At: m.now}
			m.logf("pause")
		}
	case w < 96:
		win := Window{ID: fmt.Sprintf("w%d", m.event), Start: m.now.Add(randomDuration(r, -2*time.Hour, 3*time.Hour))}
		if r.IntN(20) > 0 {
			win.End = win.Start.Add(randomDuration(r, time.Minute, 4*time.Hour))
		}
		for _, ns := range []string{"shop", "pay", "batch"} {
			if r.IntN(3) == 0 {
				win.Namespaces = append(win.Namespaces, ns)
			}
		}
		m.windows = append(m.windows, win)
		m.logf("window %s %s..%s %v", win.ID, win.Start.UTC().Format(time.RFC3339), win.End.UTC().Format(time.RFC3339), win.Namespaces)
	default:
		if len(m.windows) > 0 {
			i := r.IntN(len(m.windows))
			m.logf("remove window %s", m.windows[i].ID)
			m.windows = slices.Delete(m.windows, i, i+1)
		}
	}
}

func (m *sim) finish(e *simExec) {
	states := []string{StateVerified, StateVerified, StateFailed, StateIneffective, StateAbandoned}
	e.State = states[m.r.IntN(len(states))]
	e.doneSeq = m.event
	m.logf("outcome %s: %s", e.ID, e.State)
}

// state is what the store would return for target i now.
func (m *sim) state(i int) State {
	tg := m.targets[i]
	st := State{IncidentStatus: StatusResolved, ResolvedAt: tg.resolvedAt, Pause: m.pause}
	if tg.firing {
		st.IncidentStatus, st.ResolvedAt = StatusFiring, time.Time{}
	}
	for _, w := range m.windows {
		if w.End.IsZero() || w.End.After(m.now) {
			st.Windows = append(st.Windows, w)
		}
	}
	lookback := m.s.Lookback(m.now)
	for _, e := range m.ledger {
		if e.target == i && e.doneSeq == 0 {
			st.InFlight = append(st.InFlight, e.Execution)
		}
		if e.target == i && !e.CreatedAt.Before(lookback) {
			st.TargetRecent = append(st.TargetRecent, e.Execution)
		}
		if e.State != StateAbandoned && m.now.Sub(e.CreatedAt) < time.Hour {
			st.GlobalLastHour++
		}
	}
	sort.SliceStable(st.TargetRecent, func(a, b int) bool { return st.TargetRecent[a].CreatedAt.After(st.TargetRecent[b].CreatedAt) })
	if m.r.IntN(10) == 0 { // the guards must not depend on the order
		m.r.Shuffle(len(st.TargetRecent), func(a, b int) { st.TargetRecent[a], st.TargetRecent[b] = st.TargetRecent[b], st.TargetRecent[a] })
	}
	return st
}

// model says, from the whole ledger and the simulation's own state, which
// guards must block; it shares no code with the guards.
func (m *sim) model(i int, in Input) (want map[string]bool, inWindow, blastOK bool) {
	tg := m.targets[i]
	s := m.s
	want = map[string]bool{}
	want[GuardResolved] = !tg.firing
	want[GuardPause] = m.pause.Paused
	for _, w := range m.windows {
		nsOK := len(w.Namespaces) == 0 || slices.Contains(w.Namespaces, tg.ns)
		if nsOK && !m.now.Before(w.Start) && (w.End.IsZero() || m.now.Before(w.End)) {
			inWindow = true
		}
	}
	for _, rec := range s.Schedule {
		nsOK := len(rec.Namespaces) == 0 || slices.Contains(rec.Namespaces, tg.ns)
		if nsOK && modelActive(rec, m.now) {
			inWindow = true
		}
	}
	want[GuardMaintenance] = inWindow
	want[GuardNamespace] = !slices.Contains(s.Namespaces, tg.ns)
	want[GuardProtected] = tg.protected
	var perTarget, global, failures int
	for _, e := range m.ledger {
		age := m.now.Sub(e.CreatedAt)
		if e.State != StateAbandoned && age < time.Hour {
			global++
		}
		if e.target != i {
			continue
		}
		if e.doneSeq == 0 {
			want[GuardLock] = true
		}
		if e.State != StateAbandoned && age < s.Cooldown {
			want[GuardCooldown] = true
		}
		if e.State != StateAbandoned && age < time.Hour {
			perTarget++
		}
		if (e.State == StateFailed || e.State == StateIneffective) && age < s.BreakerWindow {
			failures++
		}
	}
	want[GuardRateTarget] = perTarget >= s.MaxPerTargetPerHour
	want[GuardRateGlobal] = global >= s.MaxGlobalPerHour
	want[GuardCircuitBreaker] = failures >= s.BreakerFailures
	min := int(math.Ceil(float64(s.MinHealthyPercent) * float64(in.Replicas) / 100))
	switch in.Action {
	case ActionRollback:
		blastOK = true
	case ActionScale:
		bounds := []int32{}
		for _, b := range []int32{s.MaxReplicas, in.Change.ScaleMax} {
			if b > 0 {
				bounds = append(bounds, b)
			}
		}
		blastOK = len(bounds) > 0 && in.Change.ScaleTo >= 1 && in.Change.ScaleTo <= slices.Min(bounds)
	case ActionRestart:
		blastOK = int(in.ReadyReplicas)-int(in.MaxUnavailable) >= min
	case ActionDeletePod:
		after := int(in.ReadyReplicas)
		if !in.Change.DeletePodNotReady {
			after--
		}
		blastOK = after >= min && after >= in.Change.DeleteMinReady
	}
	want[GuardBlastRadius] = !blastOK
	for k, v := range want {
		if !v {
			delete(want, k)
		}
	}
	return want, inWindow, blastOK
}

func (m *sim) attempt() {
	r := m.r
	m.attempts++
	i := r.IntN(len(m.targets))
	tg := m.targets[i]
	action := []string{ActionRollback, ActionScale, ActionRestart, ActionDeletePod}[r.IntN(4)]
	switch r.IntN(40) {
	case 0:
		action = ActionEscalate
	case 1:
		action = "drain-node"
	}
	// Mostly healthy Deployments, so that many attempts get as far as the
	// ledger guards; sometimes anything.
	replicas, ready, maxUnavailable := int32(2+r.IntN(5)), int32(0), int32(r.IntN(2))
	ready = replicas
	if r.IntN(3) == 0 {
		replicas = int32(r.IntN(7))
		ready, maxUnavailable = int32(r.IntN(int(replicas)+1)), int32(r.IntN(int(replicas)+1))
	}
	in := Input{
		Now: m.now, Settings: m.s,
		Namespace: tg.ns, Kind: "Deployment", Name: tg.name,
		TargetLabels: tg.labels, TargetAnnotations: tg.annots,
		Replicas: replicas, ReadyReplicas: ready, MaxUnavailable: maxUnavailable,
		Action: action,
		Change: Change{ScaleTo: int32(r.IntN(9)), ScaleMax: int32(r.IntN(13)),
			DeletePodNotReady: r.IntN(2) == 0, DeleteMinReady: r.IntN(int(replicas) + 1)},
		State: m.state(i),
	}
	d := Evaluate(in)
	if again := Evaluate(in); !reflect.DeepEqual(d, again) {
		m.fail("Evaluate is not deterministic:\n%+v\n%+v", d, again)
	}
	var got []string
	for _, b := range d.Blocks {
		got = append(got, b.Guard)
		m.blocked[b.Guard]++
	}
	m.logf("attempt %s on %s/%s (replicas %d ready %d maxUnavailable %d, change %+v): blocked by %v",
		action, tg.ns, tg.name, in.Replicas, in.ReadyReplicas, in.MaxUnavailable, in.Change, got)
	if action == ActionEscalate {
		if !d.Allowed || len(d.Blocks) != 0 || len(d.Passed) != 0 {
			m.fail("escalate: %+v", d)
		}
		return
	}
	checkDecisionShape(m.t, d)
	want, inWindow, blastOK := m.model(i, in)
	var wantNames []string
	for _, n := range Names() {
		if want[n] {
			wantNames = append(wantNames, n)
		}
	}
	if !slices.Equal(got, wantNames) {
		m.fail("blocked by %v, the model says %v\nreasons: %s", got, wantNames, d.Reason())
	}
	if !d.Allowed {
		return
	}
	m.allowed++
	e := &simExec{
		Execution: Execution{ID: fmt.Sprintf("e%d", m.event), IncidentID: fmt.Sprintf("%s-%d", tg.name, tg.incident),
			Action: action, State: []string{StateIntent, StateApplied}[r.IntN(2)], CreatedAt: m.now},
		target: i, seq: m.event,
		firing: tg.firing, paused: m.pause.Paused, inWindow: inWindow,
		nsAllowed: slices.Contains(m.s.Namespaces, tg.ns), protected: tg.protected, blastOK: blastOK,
	}
	m.ledger = append(m.ledger, e)
	m.logf("act %s (%s)", e.ID, e.State)
	if r.IntN(2) == 0 {
		m.finish(e)
	}
}

// checkLedger asserts the safety invariants over the whole run.
func (m *sim) checkLedger() {
	s := m.s
	for j, e := range m.ledger {
		switch {
		case !e.firing:
			m.fail("%s ran while its incident was resolved", e.ID)
		case e.paused:
			m.fail("%s ran while paused", e.ID)
		case e.inWindow:
			m.fail("%s ran in a maintenance window", e.ID)
		case !e.nsAllowed:
			m.fail("%s ran in a namespace not on the allow-list", e.ID)
		case e.protected:
			m.fail("%s ran on a protected target", e.ID)
		case !e.blastOK:
			m.fail("%s ran beyond the blast radius", e.ID)
		}
		var perTarget, global, failures int
		for k, o := range m.ledger {
			inHour := !o.CreatedAt.After(e.CreatedAt) && e.CreatedAt.Sub(o.CreatedAt) < time.Hour
			if inHour && o.State != StateAbandoned {
				global++
				if o.target == e.target {
					perTarget++
				}
			}
			if o.target != e.target || k >= j {
				continue
			}
			// o is an earlier execution on the same target.
			if o.doneSeq == 0 || o.doneSeq > e.seq {
				m.fail("%s ran while %s was in flight on the same target", e.ID, o.ID)
			}
			if o.State != StateAbandoned && e.CreatedAt.Sub(o.CreatedAt) < s.Cooldown {
				m.fail("%s ran %s after %s, cooldown %s", e.ID, e.CreatedAt.Sub(o.CreatedAt), o.ID, s.Cooldown)
			}
			if (o.State == StateFailed || o.State == StateIneffective) && e.CreatedAt.Sub(o.CreatedAt) < s.BreakerWindow {
				failures++
			}
		}
		if perTarget > s.MaxPerTargetPerHour {
			m.fail("%d executions on the target in the hour up to %s (%s), limit %d", perTarget, e.CreatedAt, e.ID, s.MaxPerTargetPerHour)
		}
		if global > s.MaxGlobalPerHour {
			m.fail("%d executions in the hour up to %s (%s), limit %d", global, e.CreatedAt, e.ID, s.MaxGlobalPerHour)
		}
		if failures >= s.BreakerFailures {
			m.fail("%s ran after %d failed or ineffective executions within %s (breaker %d)", e.ID, failures, s.BreakerWindow, s.BreakerFailures)
		}
	}
}

func loadZones(t *testing.T) []*time.Location {
	var locs []*time.Location
	for _, z := range zones {
		loc, err := time.LoadLocation(z)
		if err != nil {
			t.Fatal(err)
		}
		locs = append(locs, loc)
	}
	return locs
}

// TestPropertyLedger simulates random runs (alerts firing and resolving,
// the clock jumping by seconds to hours, pauses, ad-hoc windows, outcomes
// arriving, attempts on four targets) and records an execution whenever
// Evaluate allows. Each decision must block on exactly the guards an
// independent model of the ledger names, and the final ledger must keep
// every safety invariant.
func TestPropertyLedger(t *testing.T) {
	seed := propSeed(t)
	n := propCount(t, propSequences)
	t.Logf("GUARD_SEED=%d, %d sequences of up to %d steps", seed, n, propMaxSteps)
	locs := loadZones(t)
	start := time.Now()
	blocked := map[string]int{}
	var allowed, attempts, steps, executions int
	for i := 0; i < n; i++ {
		m := newSim(t, seed, i, locs)
		for k := 1 + m.r.IntN(propMaxSteps); k > 0; k-- {
			m.step()
			steps++
		}
		m.checkLedger()
		for g, c := range m.blocked {
			blocked[g] += c
		}
		allowed += m.allowed
		attempts += m.attempts
		executions += len(m.ledger)
	}
	t.Logf("%d sequences, %d steps, %d attempts, %d allowed, %d executions checked, in %s; blocks by guard: %v",
		n, steps, attempts, allowed, executions, time.Since(start).Round(time.Millisecond), blocked)
	// The run must have exercised every guard the simulation can trip, and
	// allowed a fair number of actions (the guards must not block all).
	if n >= 500 {
		for _, g := range Names() {
			if g != GuardInput && g != GuardTarget && blocked[g] == 0 {
				t.Errorf("guard %s never blocked in %d sequences (GUARD_SEED=%d)", g, n, seed)
			}
		}
		if allowed < n/2 {
			t.Errorf("only %d of %d attempts allowed (GUARD_SEED=%d)", allowed, attempts, seed)
		}
	}
}

// ---------------------------------------------------------------------------
// Evaluate over arbitrary inputs.

func randomTime(r *rand.Rand, around time.Time) time.Time {
	switch r.IntN(8) {
	case 0:
		return time.Time{}
	case 1:
		return around
	}
	return around.Add(randomDuration(r, -48*time.Hour, 48*time.Hour))
}

func pick[T any](r *rand.Rand, xs ...T) T { return xs[r.IntN(len(xs))] }

func randomExecs(r *rand.Rand, now time.Time) []Execution {
	var out []Execution
	for k := r.IntN(8); k > 0; k-- {
		out = append(out, Execution{
			ID:         pick(r, "", "a", "b", "c", "d"),
			IncidentID: pick(r, "", "i1"),
			Action:     pick(r, ActionRollback, ActionRestart, "x"),
			State:      pick(r, StateIntent, StateApplied, StateVerified, StateFailed, StateIneffective, StateAbandoned, "", "weird"),
			CreatedAt:  randomTime(r, now),
		})
	}
	return out
}

func randomMap(r *rand.Rand) map[string]string {
	if r.IntN(3) == 0 {
		return nil
	}
	m := map[string]string{}
	for k := r.IntN(3); k > 0; k-- {
		m[pick(r, DefaultProtectedKey, "app", "x/y")] = pick(r, "true", "false", "TRUE", "", "1")
	}
	return m
}

// randomInput makes an arbitrary input, valid or not: a valid input whose
// fields are each replaced by an arbitrary (often invalid) value with
// probability 1/wild.
func randomInput(r *rand.Rand, sched []Recurring) Input {
	wild := 2 + r.IntN(12)
	w := func() bool { return r.IntN(wild) == 0 }
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(randomDuration(r, 0, 365*24*time.Hour))
	s := Defaults()
	s.Namespaces = []string{"shop", "pay"}
	s.MaxReplicas = 10
	if w() {
		s.Namespaces = [][]string{nil, {}, {"shop"}, {"*"}, {""}, {"shop", "sh*"}}[r.IntN(6)]
	}
	if w() {
		s.ProtectedLabel = pick(r, "", "x/y")
	}
	if w() {
		s.ProtectedAnnotation = pick(r, "", "x/y")
	}
	if w() {
		s.Cooldown = randomDuration(r, -time.Hour, 3*time.Hour)
	}
	if w() {
		s.MaxPerTargetPerHour = r.IntN(7) - 1
	}
	if w() {
		s.MaxGlobalPerHour = r.IntN(7) - 1
	}
	if w() {
		s.MaxReplicas = int32(r.IntN(14) - 2)
	}
	if w() {
		s.MinHealthyPercent = r.IntN(130) - 10
	}
	if w() {
		s.BreakerFailures = r.IntN(6) - 1
	}
	if w() {
		s.BreakerWindow = randomDuration(r, -time.Hour, 48*time.Hour)
	}
	if w() && len(sched) > 0 {
		s.Schedule = append(s.Schedule, sched[r.IntN(len(sched))])
	}
	if r.IntN(10*wild) == 0 {
		s.Schedule = append(s.Schedule, Recurring{Start: "01:00", End: "02:00"}) // not parsed
	}
	in := Input{
		Now: now, Settings: s,
		Namespace: "shop", Kind: "Deployment", Name: "api",
		Replicas: 4, ReadyReplicas: 4, MaxUnavailable: 1,
		Action: pick(r, ActionRollback, ActionScale, ActionRestart, ActionDeletePod, ActionEscalate),
		Change: Change{ScaleTo: 5},
		State:  State{IncidentStatus: StatusFiring},
	}
	if w() {
		in.Now = time.Time{}
	}
	if w() {
		in.Namespace = pick(r, "pay", "", "*", "other")
	}
	if w() {
		in.Kind = ""
	}
	if w() {
		in.Name = pick(r, "", "a*")
	}
	if w() {
		in.TargetLabels = randomMap(r)
	}
	if w() {
		in.TargetAnnotations = randomMap(r)
	}
	if w() {
		in.Replicas, in.ReadyReplicas, in.MaxUnavailable = int32(r.IntN(12)-1), int32(r.IntN(12)-1), int32(r.IntN(12)-1)
	}
	if w() {
		in.Action = pick(r, "", "other")
	}
	if w() {
		in.Change = Change{ScaleTo: int32(r.IntN(20) - 2), ScaleMax: int32(r.IntN(20) - 2),
			DeletePodNotReady: r.IntN(2) == 0, DeleteMinReady: r.IntN(8) - 1}
	}
	if w() {
		in.State.IncidentStatus = pick(r, StatusResolved, "", "other")
		in.State.ResolvedAt = randomTime(r, now)
	}
	if w() {
		in.State.Pause = Pause{Paused: r.IntN(2) == 0, By: pick(r, "", "alice"), Reason: pick(r, "", "r"), At: randomTime(r, now)}
	}
	for k := r.IntN(3); k > 0 && w(); k-- {
		in.State.Windows = append(in.State.Windows, Window{ID: "w", Start: randomTime(r, now), End: randomTime(r, now),
			Namespaces: [][]string{nil, {"shop"}, {"pay"}}[r.IntN(3)], Reason: pick(r, "", "why"), By: pick(r, "", "bob")})
	}
	if w() {
		in.State.InFlight = randomExecs(r, now)
	}
	if w() {
		in.State.TargetRecent = randomExecs(r, now)
	}
	if w() {
		in.State.GlobalLastHour = r.IntN(30) - 2
	}
	return in
}

func cloneInput(in Input) Input {
	out := in
	cloneMap := func(m map[string]string) map[string]string {
		if m == nil {
			return nil
		}
		c := make(map[string]string, len(m))
		for k, v := range m {
			c[k] = v
		}
		return c
	}
	out.TargetLabels, out.TargetAnnotations = cloneMap(in.TargetLabels), cloneMap(in.TargetAnnotations)
	out.Settings.Namespaces = slices.Clone(in.Settings.Namespaces)
	out.Settings.Schedule = slices.Clone(in.Settings.Schedule)
	out.State.Windows = slices.Clone(in.State.Windows)
	for i := range out.State.Windows {
		out.State.Windows[i].Namespaces = slices.Clone(in.State.Windows[i].Namespaces)
	}
	out.State.InFlight = slices.Clone(in.State.InFlight)
	out.State.TargetRecent = slices.Clone(in.State.TargetRecent)
	return out
}

// TestPropertyEvaluateTotal: over arbitrary (also invalid) inputs,
// Evaluate never panics, is deterministic, does not modify its input,
// reports every guard exactly once in Names order with Allowed ==
// (len(Blocks) == 0), applies no guard to escalate, and blocks whenever
// the settings or input are invalid.
func TestPropertyEvaluateTotal(t *testing.T) {
	seed := propSeed(t)
	n := 10 * propCount(t, propSequences)
	t.Logf("GUARD_SEED=%d, %d inputs", seed, n)
	var sched []Recurring
	r0 := rnd(seed, -1)
	for k := 0; k < 8; k++ {
		rec, err := ParseRecurring(randomRecurring(r0))
		if err != nil {
			t.Fatal(err)
		}
		sched = append(sched, rec)
	}
	start := time.Now()
	allowed := 0
	for i := 0; i < n; i++ {
		r := rnd(seed, i)
		in := randomInput(r, sched)
		if r.IntN(3) == 0 { // the same execution in both lists
			for _, e := range in.State.TargetRecent {
				if e.State == StateIntent || e.State == StateApplied {
					in.State.InFlight = append(in.State.InFlight, e)
				}
			}
		}
		before := cloneInput(in)
		d := Evaluate(in)
		fail := func(format string, args ...any) {
			t.Helper()
			t.Fatalf("input %d (GUARD_SEED=%d): %s\ninput: %+v\ndecision: %+v", i, seed, fmt.Sprintf(format, args...), before, d)
		}
		if !reflect.DeepEqual(in, before) {
			fail("Evaluate modified its input")
		}
		if again := Evaluate(in); !reflect.DeepEqual(d, again) {
			fail("not deterministic: %+v", again)
		}
		if d.Allowed != (len(d.Blocks) == 0) {
			fail("Allowed = %v with %d blocks", d.Allowed, len(d.Blocks))
		}
		if in.Action == ActionEscalate {
			if !d.Allowed || d.Blocks != nil || d.Passed != nil {
				fail("escalate must apply no guard")
			}
			continue
		}
		checkDecisionShape(t, d)
		invalid := in.Settings.Validate() != nil || in.Now.IsZero() || in.Replicas < 0 || in.ReadyReplicas < 0 ||
			in.MaxUnavailable < 0 || in.State.GlobalLastHour < 0
		if blockedBy(d, GuardInput) != invalid {
			fail("input guard blocked = %v, invalid = %v", blockedBy(d, GuardInput), invalid)
		}
		if in.State.IncidentStatus != StatusFiring && d.Allowed {
			fail("allowed with incident status %q", in.State.IncidentStatus)
		}
		if in.State.Pause.Paused && d.Allowed {
			fail("allowed while paused")
		}
		if len(in.State.InFlight) > 0 && d.Allowed {
			fail("allowed with an execution in flight")
		}
		if !slices.Contains(in.Settings.Namespaces, in.Namespace) && d.Allowed {
			fail("allowed outside the allow-list")
		}
		for _, b := range d.Blocks {
			if strings.Contains(b.Reason, "%!") {
				fail("malformed reason %q", b.Reason)
			}
		}
		if d.Allowed {
			allowed++
		}
	}
	t.Logf("%d inputs (%d allowed) in %s", n, allowed, time.Since(start).Round(time.Millisecond))
}

func blockedBy(d Decision, g string) bool {
	return slices.ContainsFunc(d.Blocks, func(b Block) bool { return b.Guard == g })
}

// ---------------------------------------------------------------------------
// Recurring windows against a model.

// TestPropertyRecurring compares Active with a model of random windows in
// zones with 1-hour, 30-minute and midnight clock changes, at random
// instants biased towards the clock changes: the model walks the zone's
// offset segments to find each occurrence's interval; away from clock
// changes it must also agree with a minute-by-minute enumeration of the
// wall clock. ActiveUntil's end must be after now, the window active until
// then and inactive at the end.
func TestPropertyRecurring(t *testing.T) {
	seed := propSeed(t)
	n := propCount(t, propSequences)
	const instants = 10
	t.Logf("GUARD_SEED=%d, %d windows × %d instants", seed, n, instants)
	locs := loadZones(t)
	start := time.Now()
	active := 0
	for i := 0; i < n; i++ {
		r := rnd(seed, i)
		spec := randomRecurring(r)
		rec, err := ParseRecurring(spec)
		if err != nil {
			t.Fatalf("window %d (GUARD_SEED=%d): %v", i, seed, err)
		}
		cells := cellsOf(t, rec)
		allWeek := rec.start == 0 && rec.end == minutesPerDay && rec.days == [7]bool{true, true, true, true, true, true, true}
		for k := 0; k < instants; k++ {
			now := randomInstant(r, append(locs, rec.loc))
			fail := func(format string, args ...any) {
				t.Helper()
				t.Fatalf("window %d (GUARD_SEED=%d) %s at %s (%s): %s", i, seed, rec, now.UTC().Format(time.RFC3339),
					now.In(rec.loc).Format("Mon 15:04:05 MST"), fmt.Sprintf(format, args...))
			}
			want := modelActive(rec, now)
			if far := farFromClockChanges(rec.loc, now); far && cellActive(&cells, rec.loc, now) != want {
				fail("the interval model says %v, the wall-clock model disagrees", want)
			}
			end, ok := rec.ActiveUntil(now)
			if ok != want || rec.Active(now) != want {
				fail("active = %v, the model says %v", ok, want)
			}
			if !ok {
				continue
			}
			active++
			if !end.After(now) {
				fail("ends at %s, not after now", end.UTC().Format(time.RFC3339))
			}
			step := 61*time.Minute + 13*time.Second
			for at := now; at.Before(end); at = at.Add(step) {
				if !modelActive(rec, at) {
					fail("reported to end at %s but the model is inactive at %s", end.UTC().Format(time.RFC3339), at.UTC().Format(time.RFC3339))
				}
			}
			if !modelActive(rec, end.Add(-time.Nanosecond)) {
				fail("inactive just before its end %s", end.UTC().Format(time.RFC3339))
			}
			if !allWeek && modelActive(rec, end) {
				fail("still active at its end %s", end.In(rec.loc).Format(time.RFC3339))
			}
		}
	}
	t.Logf("%d windows × %d instants (%d active) in %s", n, instants, active, time.Since(start).Round(time.Millisecond))
}
