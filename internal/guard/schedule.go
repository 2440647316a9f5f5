package guard

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Recurring is a configured maintenance window that repeats every week,
// such as {Days: [Sat, Sun], Start: "22:00", End: "04:00", TZ:
// "Europe/Berlin"}. The exported fields are what the configuration file
// holds; ParseRecurring validates them and returns a Recurring that can be
// used (the zero value and hand-built values cannot).
//
// Times are wall-clock times in TZ, so a window keeps its local hours
// across daylight-saving changes. A window belongs to the day it starts on:
// with End before Start it crosses midnight and ends on the next day, so the
// example is active from Saturday 22:00 to Sunday 04:00 and from Sunday
// 22:00 to Monday 04:00. Each occurrence is one interval, from the first
// instant the local clock shows its start to the first instant it then
// shows its end: on the night the clocks change it is an hour shorter or
// longer; a start or end the clocks skip is the instant they jump; a start
// or end the clocks show twice is the first of the two.
type Recurring struct {
	// Name is optional and shown in reasons.
	Name string `yaml:"name" json:"name,omitempty"`
	// Days on which the window starts: Mon, Tue, Wed, Thu, Fri, Sat, Sun
	// or the full English names, in any case. Empty means every day.
	Days []string `yaml:"days" json:"days,omitempty"`
	// Start and End as "HH:MM" (24-hour). End may be "24:00"; End before
	// Start crosses midnight. Start and End must differ.
	Start string `yaml:"start" json:"start"`
	End   string `yaml:"end" json:"end"`
	// TZ is an IANA time zone name such as "Europe/Berlin"; default UTC.
	TZ string `yaml:"tz" json:"tz,omitempty"`
	// Namespaces the window holds; empty means every namespace.
	Namespaces []string `yaml:"namespaces" json:"namespaces,omitempty"`

	// Set by ParseRecurring.
	loc        *time.Location
	days       [7]bool // by time.Weekday
	start, end int     // minutes after local midnight; end in 1..1440
}

const minutesPerDay = 24 * 60

var weekdays = [...]string{"sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"}

// ParseRecurring validates r and returns it ready for Active. It loads the
// time zone (from the system's or the embedded tz database), so call it when
// the configuration is loaded, not per decision.
func ParseRecurring(r Recurring) (Recurring, error) {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	out := r
	out.Days = append([]string(nil), r.Days...)
	out.Namespaces = append([]string(nil), r.Namespaces...)
	out.days = [7]bool{}
	if len(r.Days) == 0 {
		for i := range out.days {
			out.days[i] = true
		}
	}
	for _, d := range r.Days {
		wd, ok := parseWeekday(d)
		if !ok {
			bad("days: %q is not a day (want Mon, Tue, Wed, Thu, Fri, Sat or Sun)", d)
			continue
		}
		out.days[wd] = true
	}
	start, serr := parseClock(r.Start, false)
	if serr != nil {
		bad("start: %v", serr)
	}
	end, eerr := parseClock(r.End, true)
	if eerr != nil {
		bad("end: %v", eerr)
	}
	if serr == nil && eerr == nil && start == end%minutesPerDay && end != minutesPerDay {
		bad("start and end are both %s: the window would be empty (use start 00:00, end 24:00 for whole days)", r.Start)
	}
	if end == 0 {
		end = minutesPerDay // "00:00" as an end is midnight at the end of the day
	}
	out.start, out.end = start, end
	tz := r.TZ
	if tz == "" {
		tz = "UTC"
	}
	loc, lerr := time.LoadLocation(tz)
	if lerr != nil || strings.EqualFold(tz, "Local") {
		bad("tz: unknown time zone %q (want an IANA name such as Europe/Berlin)", r.TZ)
	}
	for i, ns := range r.Namespaces {
		if err := checkNamespaceName(ns); err != nil {
			bad("namespaces[%d]: %v (leave namespaces empty for all)", i, err)
		}
	}
	if len(errs) > 0 {
		return Recurring{}, fmt.Errorf("maintenance window %s: %w", r.label(), errors.Join(errs...))
	}
	out.loc = loc
	return out, nil
}

// Validate reports what is wrong with r, as ParseRecurring would.
func (r Recurring) Validate() error {
	_, err := ParseRecurring(r)
	return err
}

func parseWeekday(s string) (time.Weekday, bool) {
	s = strings.ToLower(strings.TrimSpace(s))
	for i, name := range weekdays {
		if s == name || (len(s) == 3 && s == name[:3]) {
			return time.Weekday(i), true
		}
	}
	return 0, false
}

// parseClock parses "HH:MM" into minutes after midnight; "24:00" only when
// end is set.
func parseClock(s string, end bool) (int, error) {
	if len(s) != 5 || s[2] != ':' || !isDigits(s[:2]) || !isDigits(s[3:]) {
		return 0, fmt.Errorf("%q is not a time of day as HH:MM (such as 22:00)", s)
	}
	h := int(s[0]-'0')*10 + int(s[1]-'0')
	m := int(s[3]-'0')*10 + int(s[4]-'0')
	switch {
	case h == 24 && m == 0 && end:
		return minutesPerDay, nil
	case h > 23 || m > 59:
		if end {
			return 0, fmt.Errorf("%q is not a time of day (00:00 to 24:00)", s)
		}
		return 0, fmt.Errorf("%q is not a time of day (00:00 to 23:59)", s)
	}
	return h*60 + m, nil
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// Parsed reports whether r was made by ParseRecurring.
func (r Recurring) Parsed() bool { return r.loc != nil }

// Covers reports whether the window holds namespace ns.
func (r Recurring) Covers(ns string) bool { return covers(r.Namespaces, ns) }

// Active reports whether the window is active at now. A Recurring not made
// by ParseRecurring is always active (fail closed).
func (r Recurring) Active(now time.Time) bool {
	_, ok := r.ActiveUntil(now)
	return ok
}

// ActiveUntil reports whether the window is active at now and, if so, when
// it ends; occurrences that follow each other without a gap (whole days on
// consecutive days) count as one. For a Recurring not made by
// ParseRecurring it reports active with a zero end.
func (r Recurring) ActiveUntil(now time.Time) (time.Time, bool) {
	if r.loc == nil {
		return time.Time{}, true
	}
	y, mo, d := now.In(r.loc).Date()
	span := 0 // days from the start day to the end day
	if r.end <= r.start {
		span = 1
	}
	// An occurrence starting on day d+off; off reaches beyond yesterday and
	// today for zones whose clocks change across midnight.
	for off := -2; off <= 1; off++ {
		wd := time.Date(y, mo, d+off, 0, 0, 0, 0, time.UTC).Weekday()
		if !r.days[wd] {
			continue
		}
		start := reach(r.loc, y, mo, d+off, r.start)
		end := reach(r.loc, y, mo, d+off+span, r.end)
		if now.Before(start) || !now.Before(end) {
			continue
		}
		// The next occurrences may start when this one ends (whole days,
		// or an end the clocks skip); they make one window (a week at most).
		for next := d + off + 1; next <= d+off+7; next++ {
			if !r.days[time.Date(y, mo, next, 0, 0, 0, 0, time.UTC).Weekday()] || reach(r.loc, y, mo, next, r.start).After(end) {
				break
			}
			end = reach(r.loc, y, mo, next+span, r.end)
		}
		return end, true
	}
	return time.Time{}, false
}

// reach is the first instant at which the wall clock in loc shows the given
// local date and minute of day or later: the one instant with that wall
// time; when the clocks spring forward over it, the instant they jump; when
// they fall back over it, the first of its two instants. So an occurrence
// of a window is one interval, from when the clock first shows its start to
// when it first shows its end.
func reach(loc *time.Location, y int, mo time.Month, d, minute int) time.Time {
	want := time.Date(y, mo, d, minute/60, minute%60, 0, 0, time.UTC)
	t := time.Date(y, mo, d, minute/60, minute%60, 0, 0, loc)
	switch got := wall(t); {
	case got.After(want): // skipped; t was placed past the jump
		start, _ := t.ZoneBounds()
		return start
	case got.Before(want): // skipped; t was placed before the jump
		_, end := t.ZoneBounds()
		return end
	}
	// The same wall time may occur twice around a transition next to t.
	first := t
	start, end := t.ZoneBounds()
	for _, b := range []time.Time{start, end} {
		if b.IsZero() {
			continue
		}
		_, before := b.Add(-time.Nanosecond).Zone()
		_, after := b.Zone()
		diff := time.Duration(before-after) * time.Second
		for _, c := range []time.Time{t.Add(diff), t.Add(-diff)} {
			if c.Before(first) && wall(c).Equal(want) {
				first = c
			}
		}
	}
	return first
}

// wall is t's wall-clock reading as a UTC time.
func wall(t time.Time) time.Time {
	return time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), time.UTC)
}

// String describes the window: `"weekend" Sat,Sun 22:00–04:00 Europe/Berlin`.
func (r Recurring) String() string {
	days := "daily"
	if len(r.Days) > 0 {
		parts := make([]string, len(r.Days))
		for i, d := range r.Days {
			if wd, ok := parseWeekday(d); ok {
				parts[i] = wd.String()[:3]
			} else {
				parts[i] = d
			}
		}
		days = strings.Join(parts, ",")
	}
	tz := r.TZ
	if tz == "" {
		tz = "UTC"
	}
	s := fmt.Sprintf("%s %s–%s %s", days, r.Start, r.End, tz)
	if r.Name != "" {
		s = fmt.Sprintf("%q %s", r.Name, s)
	}
	return s
}

func (r Recurring) label() string {
	if r.Name != "" {
		return fmt.Sprintf("%q", r.Name)
	}
	return fmt.Sprintf("%s–%s", r.Start, r.End)
}

// covers reports whether a window's namespace list holds ns (empty: all).
func covers(namespaces []string, ns string) bool {
	if len(namespaces) == 0 {
		return true
	}
	for _, n := range namespaces {
		if n == ns {
			return true
		}
	}
	return false
}
