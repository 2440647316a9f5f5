package probe

import (
	"encoding/json"
	"math"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// LogLine is what the log probes understand of one line.
type LogLine struct {
	Error   bool   // an error line (see ParseLine)
	Message string // the error's message, normalised (see NormalizeMessage)

	Timed          bool // a JSON line with responseTimeMs and an endpoint
	Endpoint       string
	ResponseTimeMs float64
}

// maxMessageRunes bounds a normalised message.
const maxMessageRunes = 200

// ParseLine classifies one log line (without its CRI prefix). A line is an
// error if it is a JSON object whose level or severity is error or fatal
// (any case; message from msg, message or error), or plain text containing
// " ERROR " (message: the text after it) or "level=error" (message: the
// msg= value if any, else the whole line). pattern, if not nil, replaces the
// plain-text test: a non-JSON line matching it is an error, its message the
// whole line. A JSON line carrying responseTimeMs (number or numeric string)
// and path, route or url is Timed; Endpoint is "METHOD path" when a method
// is present, with IDs in the path replaced by {id}.
func ParseLine(line string, pattern *regexp.Regexp) LogLine {
	var out LogLine
	s := strings.TrimSpace(line)
	if strings.HasPrefix(s, "{") {
		var m map[string]any
		if json.Unmarshal([]byte(s), &m) == nil {
			parseJSONLine(m, &out)
			return out
		}
	}
	if pattern != nil {
		if pattern.MatchString(line) {
			out.Error, out.Message = true, NormalizeMessage(s)
		}
		return out
	}
	if i := strings.Index(line, " ERROR "); i >= 0 {
		out.Error, out.Message = true, NormalizeMessage(line[i+len(" ERROR "):])
	} else if strings.Contains(line, "level=error") {
		msg := s
		if v, ok := logfmtValue(line, "msg"); ok {
			msg = v
		}
		out.Error, out.Message = true, NormalizeMessage(msg)
	}
	return out
}

func parseJSONLine(m map[string]any, out *LogLine) {
	level := firstString(m, "level", "severity")
	switch strings.ToLower(level) {
	case "error", "fatal":
		out.Error = true
		msg := firstString(m, "msg", "message", "error")
		if msg == "" {
			msg = "(no message)"
		}
		out.Message = NormalizeMessage(msg)
	}
	rt, ok := number(m["responseTimeMs"])
	if !ok || rt < 0 || math.IsInf(rt, 0) || math.IsNaN(rt) {
		return
	}
	ep := firstString(m, "path", "route", "url")
	if ep == "" {
		return
	}
	ep = NormalizePath(ep)
	if method := strings.ToUpper(firstString(m, "method")); method != "" {
		ep = method + " " + ep
	}
	out.Timed, out.Endpoint, out.ResponseTimeMs = true, ep, rt
}

func firstString(m map[string]any, keys ...string) string {
	for _, k := range keys {
		if s, ok := m[k].(string); ok && s != "" {
			return s
		}
	}
	return ""
}

func number(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, true
	case string:
		f, err := strconv.ParseFloat(n, 64)
		return f, err == nil
	}
	return 0, false
}

// logfmtValue finds key=value or key="quoted value" in a logfmt line.
func logfmtValue(line, key string) (string, bool) {
	for i := 0; ; {
		j := strings.Index(line[i:], key+"=")
		if j < 0 {
			return "", false
		}
		j += i
		if j > 0 && line[j-1] != ' ' {
			i = j + len(key) + 1
			continue
		}
		rest := line[j+len(key)+1:]
		if strings.HasPrefix(rest, `"`) {
			if v, err := strconv.QuotedPrefix(rest); err == nil {
				if u, err := strconv.Unquote(v); err == nil {
					return u, true
				}
			}
			return strings.Trim(rest, `"`), true
		}
		if k := strings.IndexByte(rest, ' '); k >= 0 {
			rest = rest[:k]
		}
		return rest, true
	}
}

var (
	reUUID = regexp.MustCompile(`(?i)\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b`)
	reHex0 = regexp.MustCompile(`(?i)\b0x[0-9a-f]+\b`)
	reHex  = regexp.MustCompile(`(?i)\b[0-9a-f]*[0-9][0-9a-f]*\b`)
	reNum  = regexp.MustCompile(`[0-9]+`)
	reWS   = regexp.MustCompile(`\s+`)
)

// NormalizeMessage makes messages that differ only in variable parts group
// together: UUIDs become <uuid>, 0x-prefixed hex and hex words of 8 or more
// characters with a letter a–f and a digit become <hex>, and every other
// run of digits becomes <n> (so 1.5 is <n>.<n>, an IP <n>.<n>.<n>.<n>); whitespace is
// collapsed and the result cut to 200 characters. Invalid UTF-8 is replaced.
func NormalizeMessage(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = reUUID.ReplaceAllString(s, "<uuid>")
	s = reHex0.ReplaceAllString(s, "<hex>")
	s = reHex.ReplaceAllStringFunc(s, func(w string) string {
		if len(w) >= 8 && strings.IndexFunc(w, isHexLetter) >= 0 {
			return "<hex>"
		}
		return w
	})
	s = reNum.ReplaceAllString(s, "<n>")
	s = strings.TrimSpace(reWS.ReplaceAllString(s, " "))
	if utf8.RuneCountInString(s) > maxMessageRunes {
		s = strings.TrimSpace(string([]rune(s)[:maxMessageRunes]))
	}
	return s
}

func isHexLetter(r rune) bool { return (r >= 'a' && r <= 'f') || (r >= 'A' && r <= 'F') }

// NormalizePath keeps the path of a URL (no scheme, host or query) and
// replaces path segments that look like IDs (numbers, UUIDs, hex of 8+) with
// {id}, so /users/42 and /users/7 are one endpoint.
func NormalizePath(p string) string {
	if u, err := url.Parse(p); err == nil && u.Path != "" {
		p = u.Path
	} else if i := strings.IndexAny(p, "?#"); i >= 0 {
		p = p[:i]
	}
	segs := strings.Split(p, "/")
	for i, s := range segs {
		if s != "" && isIDSegment(s) {
			segs[i] = "{id}"
		}
	}
	p = strings.Join(segs, "/")
	if p == "" {
		p = "/"
	}
	if utf8.RuneCountInString(p) > maxMessageRunes {
		p = string([]rune(p)[:maxMessageRunes])
	}
	return strings.ToValidUTF8(p, "\uFFFD")
}

func isIDSegment(s string) bool {
	if reUUID.MatchString(s) && len(s) == 36 {
		return true
	}
	digits := true
	hex := true
	for _, r := range s {
		if r < '0' || r > '9' {
			digits = false
		}
		if !(r >= '0' && r <= '9') && !isHexLetter(r) {
			hex = false
		}
	}
	return digits || (hex && len(s) >= 8)
}

// Percentile is the nearest-rank percentile (0 < q <= 100) of values: the
// smallest value such that at least q% of values are ≤ it. It sorts values.
// Zero for no values.
func Percentile(values []float64, q float64) float64 {
	if len(values) == 0 {
		return 0
	}
	sort.Float64s(values)
	rank := int(math.Ceil(q / 100 * float64(len(values))))
	rank = min(max(rank, 1), len(values))
	return values[rank-1]
}
