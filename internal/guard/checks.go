package guard

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Each check returns "" when it passes and otherwise a sentence saying why
// it blocks, with the numbers.

func checkInput(in *Input) string {
	var errs []error
	if err := in.Settings.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("settings: %w", err))
	}
	if in.Now.IsZero() {
		errs = append(errs, errors.New("the decision has no clock (Now is zero)"))
	}
	if in.Replicas < 0 || in.ReadyReplicas < 0 || in.MaxUnavailable < 0 {
		errs = append(errs, fmt.Errorf("negative replica counts (replicas %d, ready %d, maxUnavailable %d)",
			in.Replicas, in.ReadyReplicas, in.MaxUnavailable))
	}
	if in.State.GlobalLastHour < 0 {
		errs = append(errs, fmt.Errorf("negative global action count %d", in.State.GlobalLastHour))
	}
	if len(errs) == 0 {
		return ""
	}
	return "invalid guard input, nothing done: " + strings.ReplaceAll(errors.Join(errs...).Error(), "\n", "; ")
}

func checkTarget(in *Input) string {
	var why []string
	for _, f := range []struct{ what, v string }{{"kind", in.Kind}, {"namespace", in.Namespace}, {"name", in.Name}} {
		switch {
		case strings.TrimSpace(f.v) == "":
			why = append(why, "no "+f.what)
		case strings.ContainsAny(f.v, "*?[]"):
			why = append(why, fmt.Sprintf("%s %q is a wildcard", f.what, f.v))
		}
	}
	if len(why) == 0 {
		return ""
	}
	return fmt.Sprintf("refusing an empty or wildcard target %s: %s", in.target(), strings.Join(why, ", "))
}

func checkResolved(in *Input) string {
	switch in.State.IncidentStatus {
	case StatusFiring:
		return ""
	case StatusResolved:
		if !in.State.ResolvedAt.IsZero() {
			return fmt.Sprintf("alert resolved at %s, before acting; nothing done", at(in.State.ResolvedAt, in.Now))
		}
		return "alert resolved before acting; nothing done"
	}
	return fmt.Sprintf("incident status is %q, not firing; nothing done", in.State.IncidentStatus)
}

func checkPause(in *Input) string {
	p := in.State.Pause
	if !p.Paused {
		return ""
	}
	s := "remediation is paused"
	if p.By != "" {
		s += " by " + p.By
	}
	if !p.At.IsZero() {
		s += " since " + at(p.At, in.Now)
	}
	if p.Reason != "" {
		s += fmt.Sprintf(" (%q)", p.Reason)
	}
	return s + "; resume it to act"
}

func checkMaintenance(in *Input) string {
	var why []string
	for _, r := range in.Settings.Schedule {
		if !r.Covers(in.Namespace) {
			continue
		}
		end, ok := r.ActiveUntil(in.Now)
		if !ok {
			continue
		}
		if end.IsZero() {
			why = append(why, fmt.Sprintf("maintenance window %s is not parsed and counts as always active", r))
			continue
		}
		why = append(why, fmt.Sprintf("maintenance window %s is active until %s (%s)",
			r, end.Format("2006-01-02 15:04 MST"), at(end, in.Now)))
	}
	for _, w := range in.State.Windows {
		if !covers(w.Namespaces, in.Namespace) || in.Now.Before(w.Start) || (!w.End.IsZero() && !in.Now.Before(w.End)) {
			continue
		}
		s := "maintenance window " + w.ID
		var about []string
		if w.Reason != "" {
			about = append(about, fmt.Sprintf("%q", w.Reason))
		}
		if w.By != "" {
			about = append(about, "by "+w.By)
		}
		if len(about) > 0 {
			s += " (" + strings.Join(about, ", ") + ")"
		}
		if w.End.IsZero() {
			s += " is active since " + at(w.Start, in.Now) + " with no end set"
		} else {
			s += " is active until " + at(w.End, in.Now)
		}
		why = append(why, s)
	}
	if len(why) == 0 {
		return ""
	}
	return fmt.Sprintf("namespace %s is in maintenance: %s; actions are held", in.Namespace, strings.Join(why, "; "))
}

func checkNamespace(in *Input) string {
	allow := in.Settings.Namespaces
	if len(allow) == 0 {
		return fmt.Sprintf("the namespace allow-list is empty, so no namespace is allowed (not even %q)", in.Namespace)
	}
	for _, ns := range allow {
		if ns == in.Namespace && checkNamespaceName(ns) == nil {
			return ""
		}
	}
	return fmt.Sprintf("namespace %q is not in the allow-list [%s]", in.Namespace, strings.Join(allow, ", "))
}

func checkProtected(in *Input) string {
	var why []string
	if v, ok := in.TargetLabels[in.Settings.ProtectedLabel]; ok && isTrue(v) {
		why = append(why, fmt.Sprintf("label %s=%s", in.Settings.ProtectedLabel, v))
	}
	if v, ok := in.TargetAnnotations[in.Settings.ProtectedAnnotation]; ok && isTrue(v) {
		why = append(why, fmt.Sprintf("annotation %s=%s", in.Settings.ProtectedAnnotation, v))
	}
	if len(why) == 0 {
		return ""
	}
	return fmt.Sprintf("%s is protected (%s); no automated action", in.target(), strings.Join(why, ", "))
}

func isTrue(v string) bool { return strings.EqualFold(strings.TrimSpace(v), "true") }

func checkLock(in *Input) string {
	if len(in.State.InFlight) == 0 {
		return ""
	}
	var ex []string
	for _, e := range in.State.InFlight {
		ex = append(ex, describe(e, in.Now))
	}
	return fmt.Sprintf("%s has an action in flight: %s; one action at a time per target", in.target(), strings.Join(ex, "; "))
}

func checkCooldown(in *Input) string {
	var last *Execution
	hist := history(in)
	for i := range hist {
		e := &hist[i]
		if e.State == StateAbandoned {
			continue
		}
		if last == nil || e.CreatedAt.After(last.CreatedAt) {
			last = e
		}
	}
	cd := in.Settings.Cooldown
	if last == nil || !last.CreatedAt.After(in.Now.Add(-cd)) {
		return ""
	}
	ago := in.Now.Sub(last.CreatedAt)
	when := fmt.Sprintf("was %s ago", ago.Round(time.Second))
	if ago < 0 {
		when = fmt.Sprintf("is dated %s in the future", (-ago).Round(time.Second))
	}
	return fmt.Sprintf("last action on %s %s (%s, %s); cooldown is %s, ends %s",
		in.target(), when, last.Action, last.State, cd, at(last.CreatedAt.Add(cd), in.Now))
}

func checkRateTarget(in *Input) string {
	since := in.Now.Add(-rateWindow)
	var times []time.Time
	for _, e := range history(in) {
		if e.State != StateAbandoned && e.CreatedAt.After(since) {
			times = append(times, e.CreatedAt)
		}
	}
	max := in.Settings.MaxPerTargetPerHour
	if len(times) < max {
		return ""
	}
	if max < 1 {
		return fmt.Sprintf("the per-target limit is %d per hour, so no action is allowed", max)
	}
	return fmt.Sprintf("%s had %d actions in the last hour, the limit is %d per hour; %s",
		in.target(), len(times), max, nextAllowed(times, max, rateWindow, in.Now, "the next is allowed at "))
}

func checkRateGlobal(in *Input) string {
	n, max := in.State.GlobalLastHour, in.Settings.MaxGlobalPerHour
	if n < max {
		return ""
	}
	if max < 1 {
		return fmt.Sprintf("the global limit is %d per hour, so no action is allowed", max)
	}
	return fmt.Sprintf("%d actions on all targets in the last hour, the global limit is %d per hour", n, max)
}

func checkBlastRadius(in *Input) string {
	s, c := in.Settings, in.Change
	switch in.Action {
	case ActionScale:
		bound, by := s.MaxReplicas, fmt.Sprintf("the guard's maxReplicas %d", s.MaxReplicas)
		if c.ScaleMax > 0 && (bound == 0 || c.ScaleMax < bound) {
			bound, by = c.ScaleMax, fmt.Sprintf("the change's max %d", c.ScaleMax)
		}
		switch {
		case c.ScaleMax < 0:
			return fmt.Sprintf("scale has a negative max %d", c.ScaleMax)
		case bound == 0:
			return "scale has no upper bound: set the guard's maxReplicas or the action's max"
		case c.ScaleTo < 1:
			return fmt.Sprintf("scale to %d replicas is invalid", c.ScaleTo)
		case c.ScaleTo > bound:
			return fmt.Sprintf("scale to %d replicas exceeds the upper bound %d (%s)", c.ScaleTo, bound, by)
		}
		return ""
	case ActionRestart:
		min := minReady(s.MinHealthyPercent, in.Replicas)
		left := int64(in.ReadyReplicas) - int64(in.MaxUnavailable)
		if left >= min {
			return ""
		}
		return fmt.Sprintf("restart may leave %d ready pods (%d ready now, maxUnavailable %d), below the minimum of %d (%d%% of %d replicas, rounded up)",
			left, in.ReadyReplicas, in.MaxUnavailable, min, s.MinHealthyPercent, in.Replicas)
	case ActionDeletePod:
		min, of := minReady(s.MinHealthyPercent, in.Replicas), fmt.Sprintf("%d%% of %d replicas, rounded up", s.MinHealthyPercent, in.Replicas)
		if int64(c.DeleteMinReady) > min {
			min, of = int64(c.DeleteMinReady), "the change's own bound"
		}
		left, pod := int64(in.ReadyReplicas)-1, "ready"
		if c.DeletePodNotReady {
			left, pod = int64(in.ReadyReplicas), "not ready"
		}
		if left >= min {
			return ""
		}
		return fmt.Sprintf("deleting the pod (%s) would leave %d ready pods (%d ready now), below the minimum of %d (%s)",
			pod, left, in.ReadyReplicas, min, of)
	case ActionRollback:
		// One rolling update back to a known revision, paced by the
		// Deployment's own maxUnavailable; no count to bound here.
		return ""
	}
	return fmt.Sprintf("unknown action %q: its blast radius cannot be assessed", in.Action)
}

// minReady is ceil(percent × replicas / 100): a count of pods, compared
// with counts of pods only.
func minReady(percent int, replicas int32) int64 {
	p, r := int64(percent), int64(replicas)
	if p <= 0 || r <= 0 {
		return 0
	}
	return (p*r + 99) / 100
}

func checkCircuitBreaker(in *Input) string {
	since := in.Now.Add(-in.Settings.BreakerWindow)
	var bad []Execution
	for _, e := range history(in) {
		if (e.State == StateFailed || e.State == StateIneffective) && e.CreatedAt.After(since) {
			bad = append(bad, e)
		}
	}
	k := in.Settings.BreakerFailures
	if len(bad) < k {
		return ""
	}
	if k < 1 || in.Settings.BreakerWindow <= 0 {
		return fmt.Sprintf("the breaker trips at %d failures within %s, so it is always tripped; stop acting on this target; escalate",
			k, in.Settings.BreakerWindow)
	}
	sort.SliceStable(bad, func(i, j int) bool { return bad[i].CreatedAt.After(bad[j].CreatedAt) })
	times := make([]time.Time, len(bad))
	var ex []string
	for i, e := range bad {
		times[i] = e.CreatedAt
		if i < 5 {
			ex = append(ex, describe(e, in.Now))
		}
	}
	if len(bad) > 5 {
		ex = append(ex, fmt.Sprintf("and %d more", len(bad)-5))
	}
	return fmt.Sprintf("%d failed or ineffective actions on %s within %s (%s), the breaker trips at %d; stop acting on this target; escalate (%s)",
		len(bad), in.target(), in.Settings.BreakerWindow, strings.Join(ex, "; "), k,
		nextAllowed(times, k, in.Settings.BreakerWindow, in.Now, "resets at "))
}

// history is the target's executions: TargetRecent and InFlight, each ID
// once (an execution without ID is always kept).
func history(in *Input) []Execution {
	out := make([]Execution, 0, len(in.State.TargetRecent)+len(in.State.InFlight))
	seen := map[string]bool{}
	for _, list := range [][]Execution{in.State.TargetRecent, in.State.InFlight} {
		for _, e := range list {
			if e.ID != "" {
				if seen[e.ID] {
					continue
				}
				seen[e.ID] = true
			}
			out = append(out, e)
		}
	}
	return out
}

// nextAllowed says when fewer than limit of times remain within window
// (the limit-th newest leaves it then), prefixed by what.
func nextAllowed(times []time.Time, limit int, window time.Duration, now time.Time, what string) string {
	if limit < 1 || limit > len(times) {
		return what + "an unknown time"
	}
	ts := append([]time.Time(nil), times...)
	sort.Slice(ts, func(i, j int) bool { return ts[i].After(ts[j]) })
	return what + at(ts[limit-1].Add(window), now)
}

func describe(e Execution, now time.Time) string {
	s := fmt.Sprintf("execution %s (%s, %s, created %s", e.ID, e.Action, e.State, at(e.CreatedAt, now))
	if e.IncidentID != "" {
		s += ", incident " + e.IncidentID
	}
	return s + ")"
}

// at formats t in UTC: the time of day when it is on now's day, else the
// date too.
func at(t, now time.Time) string {
	t, now = t.UTC(), now.UTC()
	if t.Year() == now.Year() && t.YearDay() == now.YearDay() {
		return t.Format("15:04:05Z")
	}
	return t.Format("2006-01-02 15:04:05Z")
}
