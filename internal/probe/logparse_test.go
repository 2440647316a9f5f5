package probe

import (
	"math"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParseLine(t *testing.T) {
	tests := []struct {
		name, line string
		pattern    string
		wantErr    bool
		wantMsg    string
		wantTimed  bool
		wantEP     string
		wantMs     float64
	}{
		{name: "json ERROR msg", line: `{"level":"ERROR","msg":"db timeout after 3000ms"}`, wantErr: true, wantMsg: "db timeout after <n>ms"},
		{name: "json error message", line: `{"level":"error","message":"user 42 not found"}`, wantErr: true, wantMsg: "user <n> not found"},
		{name: "json severity FATAL error field", line: `{"severity":"FATAL","error":"panic: nil map"}`, wantErr: true, wantMsg: "panic: nil map"},
		{name: "json error no message", line: `{"level":"error"}`, wantErr: true, wantMsg: "(no message)"},
		{name: "json info", line: `{"level":"info","msg":"ok"}`},
		{name: "json warn", line: `{"level":"WARN","msg":"slow"}`},
		{name: "plain ERROR", line: `2026-11-26 03:00:00 ERROR connection refused to 10.0.0.7:5432`, wantErr: true, wantMsg: "connection refused to <n>.<n>.<n>.<n>:<n>"},
		{name: "plain error lowercase is not ERROR", line: `2026 error something`},
		{name: "plain ERROR at start without space before", line: `ERROR x`},
		{name: "logfmt quoted msg", line: `ts=1 level=error msg="cache miss for key 0xdeadbeef" caller=x.go:3`, wantErr: true, wantMsg: "cache miss for key <hex>"},
		{name: "logfmt bare msg", line: `level=error msg=boom id=7`, wantErr: true, wantMsg: "boom"},
		{name: "logfmt no msg", line: `level=error id=7`, wantErr: true, wantMsg: "level=error id=<n>"},
		{name: "logfmt xmsg is not msg", line: `level=error xmsg=a`, wantErr: true, wantMsg: "level=error xmsg=a"},
		{name: "broken json falls to text", line: `{"level":"ERROR" ERROR half`, wantErr: true, wantMsg: "half"},
		{name: "pattern replaces text test", line: `E1126 boom 12`, pattern: `^E\d{4}`, wantErr: true, wantMsg: "E<n> boom <n>"},
		{name: "pattern: ERROR text not matched", line: `x ERROR y`, pattern: `^E\d{4}`},
		{name: "timed with method", line: `{"level":"info","method":"get","path":"/api/users/123?x=1","responseTimeMs":250}`, wantTimed: true, wantEP: "GET /api/users/{id}", wantMs: 250},
		{name: "timed route string ms", line: `{"route":"/orders","responseTimeMs":"12.5"}`, wantTimed: true, wantEP: "/orders", wantMs: 12.5},
		{name: "timed full url", line: `{"url":"http://svc:8080/a/0b2f6c1e-8a9b-4c3d-9e8f-0123456789ab/b","responseTimeMs":1}`, wantTimed: true, wantEP: "/a/{id}/b", wantMs: 1},
		{name: "timed error too", line: `{"level":"error","msg":"x","path":"/p","responseTimeMs":5}`, wantErr: true, wantMsg: "x", wantTimed: true, wantEP: "/p", wantMs: 5},
		{name: "no endpoint", line: `{"responseTimeMs":5}`},
		{name: "negative time", line: `{"path":"/p","responseTimeMs":-5}`},
		{name: "non-numeric time", line: `{"path":"/p","responseTimeMs":"fast"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var re *regexp.Regexp
			if tt.pattern != "" {
				re = regexp.MustCompile(tt.pattern)
			}
			got := ParseLine(tt.line, re)
			if got.Error != tt.wantErr || got.Message != tt.wantMsg {
				t.Errorf("error=%v msg=%q, want %v %q", got.Error, got.Message, tt.wantErr, tt.wantMsg)
			}
			if got.Timed != tt.wantTimed || got.Endpoint != tt.wantEP || got.ResponseTimeMs != tt.wantMs {
				t.Errorf("timed=%v ep=%q ms=%v, want %v %q %v", got.Timed, got.Endpoint, got.ResponseTimeMs, tt.wantTimed, tt.wantEP, tt.wantMs)
			}
		})
	}
}

func TestNormalizeMessage(t *testing.T) {
	tests := []struct{ in, want string }{
		{"request 7f3c2a10-1b2c-4d5e-8f90-abcdefabcdef failed", "request <uuid> failed"},
		{"segfault at 0x7FFdeadbeef", "segfault at <hex>"},
		{"object deadbeef12 gone", "object <hex> gone"},
		{"word deadbeef stays (no digit)", "word deadbeef stays (no digit)"},
		{"retry 3 of 5 after 1.5s", "retry <n> of <n> after <n>.<n>s"},
		{"user123 and 12345678", "user<n> and <n>"},
		{"  lots   of\t space\n", "lots of space"},
		{strings.Repeat("x", 500), strings.Repeat("x", 200)},
		{"bad \xff utf8", "bad \uFFFD utf<n>"},
	}
	for _, tt := range tests {
		if got := NormalizeMessage(tt.in); got != tt.want {
			t.Errorf("NormalizeMessage(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	// The same error with different ids groups together.
	a := NormalizeMessage("timeout talking to 10.1.2.3:6379 after 5003ms (req 9f1e2d3c-0000-4000-8000-000000000001)")
	b := NormalizeMessage("timeout talking to 10.1.9.9:6379 after 12ms (req 11111111-2222-4333-8444-555555555555)")
	if a != b {
		t.Errorf("not grouped: %q vs %q", a, b)
	}
}

func TestPercentile(t *testing.T) {
	seq := func(n int) []float64 {
		v := make([]float64, n)
		for i := range v {
			v[n-1-i] = float64(i + 1) // reversed: Percentile must sort
		}
		return v
	}
	tests := []struct {
		name string
		vals []float64
		q    float64
		want float64
	}{
		{"empty", nil, 95, 0},
		{"one", []float64{7}, 95, 7},
		{"1..100", seq(100), 95, 95},
		{"1..20", seq(20), 95, 19},
		{"1..10", seq(10), 95, 10},
		{"1..10 p50", seq(10), 50, 5},
		{"1..10 p100", seq(10), 100, 10},
		{"dupes", []float64{5, 5, 5, 100}, 95, 100},
	}
	for _, tt := range tests {
		if got := Percentile(tt.vals, tt.q); got != tt.want {
			t.Errorf("%s: Percentile = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestSlope(t *testing.T) {
	xs := []float64{0, 1, 2, 3, 4}
	ys := []float64{10, 12, 14, 16, 18}
	if got := Slope(xs, ys); math.Abs(got-2) > 1e-9 {
		t.Errorf("slope = %v, want 2", got)
	}
	if got := Slope([]float64{1}, []float64{1}); got != 0 {
		t.Errorf("one point: %v", got)
	}
	if got := Slope([]float64{1, 1}, []float64{1, 5}); got != 0 {
		t.Errorf("same x: %v", got)
	}
}

func TestAggregators(t *testing.T) {
	lines := []string{
		`{"level":"ERROR","msg":"db timeout after 3000ms"}`,
		`{"level":"ERROR","msg":"db timeout after 120ms"}`,
		`{"level":"error","msg":"db timeout after 9ms"}`,
		`{"level":"ERROR","msg":"redis unreachable"}`,
		`x ERROR payment 17 declined`,
		`{"level":"info","msg":"fine"}`,
		`{"method":"GET","path":"/fast","responseTimeMs":10}`,
		`{"method":"GET","path":"/fast","responseTimeMs":20}`,
		`{"method":"GET","path":"/slow/1","responseTimeMs":900}`,
		`{"method":"GET","path":"/slow/2","responseTimeMs":1000}`,
	}
	var ea errorAgg
	var la latencyAgg
	for _, l := range lines {
		p := ParseLine(l, nil)
		ea.add(p)
		la.add(p)
	}
	ed := ea.result(2)
	if ed.Total != 5 || len(ed.Top) != 2 || ed.Top[0] != (MessageCount{"db timeout after <n>ms", 3}) ||
		ed.Top[1] != (MessageCount{"payment <n> declined", 1}) {
		t.Errorf("errors: %+v", ed)
	}
	se := la.result(5)
	if se.Samples != 4 || len(se.Top) != 2 || se.Top[0] != (EndpointLatency{"GET /slow/{id}", 1000, 2}) ||
		se.Top[1] != (EndpointLatency{"GET /fast", 20, 2}) {
		t.Errorf("slow: %+v", se)
	}
}

func FuzzParseLine(f *testing.F) {
	for _, s := range []string{
		`{"level":"ERROR","msg":"db timeout after 3000ms"}`,
		`{"method":"GET","path":"/a/1?b","responseTimeMs":"3"}`,
		`level=error msg="x \"y\" 0xff"`,
		`a ERROR b 7f3c2a10-1b2c-4d5e-8f90-abcdefabcdef`,
		`{"url":"%zz","responseTimeMs":1e308}`,
		"\xff\xfe ERROR \x00",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		got := ParseLine(line, nil)
		if got.Error {
			if !utf8.ValidString(got.Message) || utf8.RuneCountInString(got.Message) > maxMessageRunes {
				t.Fatalf("bad message %q", got.Message)
			}
			if again := NormalizeMessage(got.Message); again != got.Message {
				t.Fatalf("not idempotent: %q -> %q", got.Message, again)
			}
		}
		if got.Timed {
			if got.ResponseTimeMs < 0 || math.IsNaN(got.ResponseTimeMs) || math.IsInf(got.ResponseTimeMs, 0) {
				t.Fatalf("bad time %v", got.ResponseTimeMs)
			}
			if got.Endpoint == "" || !utf8.ValidString(got.Endpoint) {
				t.Fatalf("bad endpoint %q", got.Endpoint)
			}
		}
	})
}
