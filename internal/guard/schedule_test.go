package guard

import (
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // the tests do not depend on the host's tz database
)

func mustParse(t testing.TB, r Recurring) Recurring {
	t.Helper()
	p, err := ParseRecurring(r)
	if err != nil {
		t.Fatalf("ParseRecurring(%+v): %v", r, err)
	}
	return p
}

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestParseRecurringErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    Recurring
		want []string // substrings of the error; none means valid
	}{
		{"valid weekend", Recurring{Days: []string{"Sat", "sun"}, Start: "22:00", End: "04:00", TZ: "Europe/Berlin"}, nil},
		{"full day names", Recurring{Days: []string{"Saturday", "SUNDAY"}, Start: "00:00", End: "24:00"}, nil},
		{"every day", Recurring{Start: "01:00", End: "02:00"}, nil},
		{"end at midnight", Recurring{Start: "22:00", End: "00:00"}, nil},
		{"bad day", Recurring{Days: []string{"Sa"}, Start: "22:00", End: "04:00"}, []string{`days: "Sa" is not a day`}},
		{"bad start hour", Recurring{Start: "25:00", End: "04:00"}, []string{`start: "25:00" is not a time of day (00:00 to 23:59)`}},
		{"start 24:00", Recurring{Start: "24:00", End: "04:00"}, []string{`start: "24:00" is not a time of day`}},
		{"bad minute", Recurring{Start: "12:60", End: "13:00"}, []string{`start: "12:60"`}},
		{"one-digit hour", Recurring{Start: "9:00", End: "10:00"}, []string{`start: "9:00" is not a time of day as HH:MM`}},
		{"empty end", Recurring{Start: "09:00"}, []string{`end: "" is not a time of day as HH:MM`}},
		{"end 24:30", Recurring{Start: "09:00", End: "24:30"}, []string{`end: "24:30" is not a time of day (00:00 to 24:00)`}},
		{"empty window", Recurring{Start: "09:00", End: "09:00"}, []string{"start and end are both 09:00"}},
		{"empty midnight window", Recurring{Start: "00:00", End: "00:00"}, []string{"start and end are both 00:00"}},
		{"bad tz", Recurring{Start: "09:00", End: "10:00", TZ: "Mars/Olympus"}, []string{`tz: unknown time zone "Mars/Olympus"`}},
		{"Local tz", Recurring{Start: "09:00", End: "10:00", TZ: "Local"}, []string{`tz: unknown time zone "Local"`}},
		{"wildcard namespace", Recurring{Start: "09:00", End: "10:00", Namespaces: []string{"*"}}, []string{"namespaces[0]", "wildcards are not accepted"}},
		{"several errors, named", Recurring{Name: "nightly", Days: []string{"Xyz"}, Start: "99:00", End: "10:00"},
			[]string{`maintenance window "nightly"`, `"Xyz" is not a day`, `start: "99:00"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ParseRecurring(tc.r)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if !p.Parsed() {
					t.Fatal("Parsed() = false after ParseRecurring")
				}
				if tc.r.Validate() != nil {
					t.Fatal("Validate disagrees with ParseRecurring")
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if tc.r.Validate() == nil {
				t.Error("Validate accepts what ParseRecurring refuses")
			}
		})
	}
}

func TestRecurringActive(t *testing.T) {
	weekendNights := Recurring{Name: "weekend", Days: []string{"Sat", "Sun"}, Start: "22:00", End: "04:00", TZ: "Europe/Berlin"}
	berlinMorning := Recurring{Start: "09:00", End: "10:00", TZ: "Europe/Berlin"}
	springNight := Recurring{Start: "01:00", End: "03:00", TZ: "Europe/Berlin"}
	fallNight := Recurring{Start: "02:00", End: "03:00", TZ: "Europe/Berlin"}
	fallRepeat := Recurring{Start: "01:00", End: "02:30", TZ: "Europe/Berlin"}
	fallStart := Recurring{Start: "02:15", End: "05:00", TZ: "Europe/Berlin"}
	springSkip := Recurring{Start: "02:30", End: "04:00", TZ: "Europe/Berlin"}
	beirutSunday := Recurring{Days: []string{"Sun"}, Start: "00:00", End: "02:00", TZ: "Asia/Beirut"}
	beirutSatNight := Recurring{Days: []string{"Sat"}, Start: "22:00", End: "24:00", TZ: "Asia/Beirut"}
	beirutSatLate := Recurring{Days: []string{"Sat"}, Start: "23:00", End: "00:00", TZ: "Asia/Beirut"}
	nyLong := Recurring{Days: []string{"Sun", "Wed", "Thu"}, Start: "01:40", End: "22:08", TZ: "America/New_York"}
	utcNight := Recurring{Days: []string{"Mon"}, Start: "23:00", End: "01:00"}
	weekendAllDay := Recurring{Days: []string{"Sat", "Sun"}, Start: "00:00", End: "24:00"}
	untilMidnight := Recurring{Days: []string{"Fri"}, Start: "22:00", End: "00:00"}
	nyNight := Recurring{Start: "01:30", End: "02:30", TZ: "America/New_York"}

	// 2026: Berlin springs forward on Sun 29 March (02:00 CET → 03:00 CEST,
	// 01:00Z) and falls back on Sun 25 October (03:00 CEST → 02:00 CET,
	// 01:00Z). New York springs forward on Sun 8 March (02:00 EST → 03:00
	// EDT, 07:00Z).
	for _, tc := range []struct {
		name    string
		r       Recurring
		now     string // RFC 3339
		active  bool
		endsUTC string // when active
	}{
		// Midnight crossing: the window belongs to the day it starts on.
		{"Sat 21:59 Berlin (winter): before", weekendNights, "2026-01-10T20:59:59Z", false, ""},
		{"Sat 22:00 Berlin (winter): start is inclusive", weekendNights, "2026-01-10T21:00:00Z", true, "2026-01-11T03:00:00Z"},
		{"Sun 03:59:59 Berlin: Saturday's window", weekendNights, "2026-01-11T02:59:59Z", true, "2026-01-11T03:00:00Z"},
		{"Sun 04:00 Berlin: end is exclusive", weekendNights, "2026-01-11T03:00:00Z", false, ""},
		{"Sun 12:00 Berlin: between windows", weekendNights, "2026-01-11T11:00:00Z", false, ""},
		{"Sun 23:00 Berlin: Sunday's window", weekendNights, "2026-01-11T22:00:00Z", true, "2026-01-12T03:00:00Z"},
		{"Mon 02:00 Berlin: Sunday's window reaches Monday", weekendNights, "2026-01-12T01:00:00Z", true, "2026-01-12T03:00:00Z"},
		{"Mon 23:00 Berlin: Monday is not listed", weekendNights, "2026-01-12T22:00:00Z", false, ""},
		{"Sat 02:00 Berlin: Friday is not listed", weekendNights, "2026-01-10T01:00:00Z", false, ""},
		{"Fri 23:00 Berlin: Friday is not listed", weekendNights, "2026-01-09T22:00:00Z", false, ""},
		{"Sat 22:30 Berlin (summer, UTC+2)", weekendNights, "2026-07-11T20:30:00Z", true, "2026-07-12T02:00:00Z"},
		{"Sat 21:30 Berlin (summer, 19:30Z): before", weekendNights, "2026-07-11T19:30:00Z", false, ""},

		// The same local hours are different UTC hours in winter and summer.
		{"09:30 Berlin in January is 08:30Z", berlinMorning, "2026-01-15T08:30:00Z", true, "2026-01-15T09:00:00Z"},
		{"08:30Z in July is 10:30 Berlin", berlinMorning, "2026-07-15T08:30:00Z", false, ""},
		{"07:30Z in July is 09:30 Berlin", berlinMorning, "2026-07-15T07:30:00Z", true, "2026-07-15T08:00:00Z"},

		// Spring forward: 01:00–03:00 local lasts one real hour.
		{"spring: 00:59:59Z is 01:59:59 CET", springNight, "2026-03-29T00:59:59Z", true, "2026-03-29T01:00:00Z"},
		{"spring: 01:00Z is 03:00 CEST, ended", springNight, "2026-03-29T01:00:00Z", false, ""},
		{"spring: 23:59:59Z the day before is 00:59:59 CET", springNight, "2026-03-28T23:59:59Z", false, ""},
		{"spring: Sat 22:00 CET start", weekendNights, "2026-03-28T21:00:00Z", true, "2026-03-29T02:00:00Z"},
		{"spring: 01:59Z is 03:59 CEST, still in Saturday's window", weekendNights, "2026-03-29T01:59:00Z", true, "2026-03-29T02:00:00Z"},
		{"spring: 02:00Z is 04:00 CEST, ended (5 real hours)", weekendNights, "2026-03-29T02:00:00Z", false, ""},

		// Fall back: 02:00–03:00 local happens twice, 02:00–03:00 lasts two real hours.
		{"fall: 23:59Z is 01:59 CEST", fallNight, "2026-10-24T23:59:00Z", false, ""},
		{"fall: 00:00Z is 02:00 CEST", fallNight, "2026-10-25T00:00:00Z", true, "2026-10-25T02:00:00Z"},
		{"fall: 00:59Z is 02:59 CEST", fallNight, "2026-10-25T00:59:00Z", true, "2026-10-25T02:00:00Z"},
		{"fall: 01:00Z is 02:00 CET, the second time", fallNight, "2026-10-25T01:00:00Z", true, "2026-10-25T02:00:00Z"},
		{"fall: 02:00Z is 03:00 CET, ended", fallNight, "2026-10-25T02:00:00Z", false, ""},
		{"fall: Sat 22:00 CEST start", weekendNights, "2026-10-24T20:00:00Z", true, "2026-10-25T03:00:00Z"},
		{"fall: 02:59Z is 03:59 CET, still in Saturday's window (7 real hours)", weekendNights, "2026-10-25T02:59:00Z", true, "2026-10-25T03:00:00Z"},
		{"fall: 03:00Z is 04:00 CET, ended", weekendNights, "2026-10-25T03:00:00Z", false, ""},

		// Fall back, an end inside the repeated hour: the window ends the
		// first time the clock shows 02:30 and does not come back when it
		// shows 02:00 again.
		{"fall: 00:00Z is 02:00 CEST, ends at the first 02:30", fallRepeat, "2026-10-25T00:00:00Z", true, "2026-10-25T00:30:00Z"},
		{"fall: 00:30Z is 02:30 CEST, ended", fallRepeat, "2026-10-25T00:30:00Z", false, ""},
		{"fall: 01:00Z is 02:00 CET again, still ended", fallRepeat, "2026-10-25T01:00:00Z", false, ""},
		{"fall: 01:15Z is 02:15 CET, still ended", fallRepeat, "2026-10-25T01:15:00Z", false, ""},
		// A start inside the repeated hour: the first 02:15.
		{"fall: 00:14Z is 02:14 CEST, before", fallStart, "2026-10-25T00:14:00Z", false, ""},
		{"fall: 00:15Z is 02:15 CEST, started", fallStart, "2026-10-25T00:15:00Z", true, "2026-10-25T04:00:00Z"},
		{"fall: 01:05Z is 02:05 CET, the clock went back but the window goes on", fallStart, "2026-10-25T01:05:00Z", true, "2026-10-25T04:00:00Z"},
		// The clocks go back within a window (New York, 1 November): no gap in it.
		{"NY fall: 05:43Z is 01:43 EDT", nyLong, "2026-11-01T05:43:00Z", true, "2026-11-02T03:08:00Z"},
		{"NY fall: 06:05Z is 01:05 EST, before 01:40 on the clock but the window goes on", nyLong, "2026-11-01T06:05:00Z", true, "2026-11-02T03:08:00Z"},
		{"NY fall: 05:39Z is 01:39 EDT, before", nyLong, "2026-11-01T05:39:00Z", false, ""},
		// A start the clocks skip (spring): the window starts when they jump.
		{"spring: 00:59Z is 01:59 CET, before", springSkip, "2026-03-29T00:59:00Z", false, ""},
		{"spring: 01:00Z is 03:00 CEST, started at the jump", springSkip, "2026-03-29T01:00:00Z", true, "2026-03-29T02:00:00Z"},

		// America/New_York spring forward: 02:00–02:59 does not exist.
		{"NY spring: 06:30Z is 01:30 EST; 02:30 never comes", nyNight, "2026-03-08T06:30:00Z", true, "2026-03-08T07:00:00Z"},
		{"NY spring: 06:59Z is 01:59 EST, ends at the jump", nyNight, "2026-03-08T06:59:00Z", true, "2026-03-08T07:00:00Z"},
		{"NY spring: 07:00Z is 03:00 EDT, past 02:30", nyNight, "2026-03-08T07:00:00Z", false, ""},

		// Beirut changes its clocks at midnight: on Sun 29 March 2026 the
		// clock jumps from Sat 23:59:59 EET to Sun 01:00 EEST (22:00Z); on
		// Sat 24 October it goes from 23:59:59 EEST back to 23:00 EET (21:00Z).
		{"Beirut: a start the clock skips is the jump", beirutSunday, "2026-03-28T22:00:00Z", true, "2026-03-28T23:00:00Z"},
		{"Beirut: just before the jump", beirutSunday, "2026-03-28T21:59:59Z", false, ""},
		{"Beirut: an end at the skipped midnight is the jump", beirutSatNight, "2026-03-28T21:59:59Z", true, "2026-03-28T22:00:00Z"},
		{"Beirut: the hour before midnight, twice", beirutSatLate, "2026-10-24T20:00:00Z", true, "2026-10-24T22:00:00Z"},
		{"Beirut: the second 23:00 is still the same window", beirutSatLate, "2026-10-24T21:30:00Z", true, "2026-10-24T22:00:00Z"},
		{"Beirut: midnight at last", beirutSatLate, "2026-10-24T22:00:00Z", false, ""},

		// UTC, Monday only, crossing into Tuesday.
		{"UTC Mon 23:00", utcNight, "2026-01-12T23:00:00Z", true, "2026-01-13T01:00:00Z"},
		{"UTC Tue 00:59:59", utcNight, "2026-01-13T00:59:59Z", true, "2026-01-13T01:00:00Z"},
		{"UTC Tue 01:00", utcNight, "2026-01-13T01:00:00Z", false, ""},
		{"UTC Mon 00:30 (Sunday not listed)", utcNight, "2026-01-12T00:30:00Z", false, ""},

		// Whole days; consecutive days are reported as one window.
		{"whole Saturday runs into Sunday", weekendAllDay, "2026-01-10T12:00:00Z", true, "2026-01-12T00:00:00Z"},
		{"whole Sunday", weekendAllDay, "2026-01-11T23:59:59Z", true, "2026-01-12T00:00:00Z"},
		{"Monday 00:00", weekendAllDay, "2026-01-12T00:00:00Z", false, ""},
		{"Friday 23:59:59", weekendAllDay, "2026-01-09T23:59:59Z", false, ""},

		// End 00:00 means the end of the start day.
		{"Fri 23:59", untilMidnight, "2026-01-09T23:59:00Z", true, "2026-01-10T00:00:00Z"},
		{"Sat 00:00", untilMidnight, "2026-01-10T00:00:00Z", false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := mustParse(t, tc.r)
			now := utc(tc.now)
			end, ok := r.ActiveUntil(now)
			if ok != tc.active || r.Active(now) != tc.active {
				t.Fatalf("%s at %s (%s): active = %v, want %v", r, tc.now, now.In(r.loc).Format("Mon 15:04:05 MST"), ok, tc.active)
			}
			if ok && !end.Equal(utc(tc.endsUTC)) {
				t.Errorf("ends %s, want %s", end.UTC().Format(time.RFC3339), tc.endsUTC)
			}
		})
	}
}

func TestRecurringNotParsedIsActive(t *testing.T) {
	r := Recurring{Start: "01:00", End: "02:00"}
	if r.Parsed() {
		t.Fatal("a hand-built Recurring reports Parsed")
	}
	if !r.Active(utc("2026-01-01T12:00:00Z")) {
		t.Fatal("an unparsed window must count as active (fail closed)")
	}
}

func TestRecurringCoversAndString(t *testing.T) {
	r := mustParse(t, Recurring{Name: "weekend", Days: []string{"sat", "Sunday"}, Start: "22:00", End: "04:00", TZ: "Europe/Berlin", Namespaces: []string{"shop"}})
	if !r.Covers("shop") || r.Covers("pay") {
		t.Error("Covers: want shop only")
	}
	all := mustParse(t, Recurring{Start: "22:00", End: "04:00"})
	if !all.Covers("anything") {
		t.Error("empty namespaces must cover every namespace")
	}
	if got, want := r.String(), `"weekend" Sat,Sun 22:00–04:00 Europe/Berlin`; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if got, want := all.String(), "daily 22:00–04:00 UTC"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}
