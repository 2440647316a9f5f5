package audit

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strconv"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/remediator/remediator/internal/jsonstr"
)

// Export formats.
const (
	FormatCSV    = "csv"
	FormatJSON   = "json"   // one JSON array, streamed
	FormatNDJSON = "ndjson" // one JSON object per line
)

// ExportQuery is a parsed GET /audit/export query.
type ExportQuery struct {
	Format string
	// Filter selects the records: Since is startDate at 00:00:00Z
	// (inclusive); Until is the day after endDate at 00:00:00Z (exclusive,
	// so endDate is included whole) or zero without endDate; ByTime is set.
	Filter Filter
}

// DateLayout is the layout of startDate and endDate.
const DateLayout = "2006-01-02"

var exportParams = []string{"format", "startDate", "endDate", "alertname"}

// ParseExportQuery parses the query of GET /audit/export:
//
//	format=csv|json|ndjson   default csv
//	startDate=YYYY-MM-DD     required; from 00:00:00Z that day, inclusive
//	endDate=YYYY-MM-DD       optional; up to the end of that day (UTC), inclusive
//	alertname=NAME           optional; only records of that alertname
//
// Unknown or repeated parameters are errors, as are an endDate before
// startDate, dates before 1970 and dates that are not real calendar days.
func ParseExportQuery(v url.Values) (ExportQuery, error) {
	for k, vs := range v {
		if !slices.Contains(exportParams, k) {
			return ExportQuery{}, fmt.Errorf("unknown parameter %q: want format, startDate, endDate, alertname", k)
		}
		if len(vs) != 1 {
			return ExportQuery{}, fmt.Errorf("parameter %s given %d times", k, len(vs))
		}
	}
	q := ExportQuery{Format: FormatCSV, Filter: Filter{ByTime: true}}
	if f, ok := v["format"]; ok {
		switch f[0] {
		case FormatCSV, FormatJSON, FormatNDJSON:
			q.Format = f[0]
		default:
			return ExportQuery{}, fmt.Errorf("format: must be csv, json or ndjson, got %q", f[0])
		}
	}
	start, ok := v["startDate"]
	if !ok {
		return ExportQuery{}, fmt.Errorf("startDate: required (YYYY-MM-DD)")
	}
	since, err := parseDate("startDate", start[0])
	if err != nil {
		return ExportQuery{}, err
	}
	q.Filter.Since = since
	if end, ok := v["endDate"]; ok {
		day, err := parseDate("endDate", end[0])
		if err != nil {
			return ExportQuery{}, err
		}
		if day.Before(since) {
			return ExportQuery{}, fmt.Errorf("endDate %s is before startDate %s", end[0], start[0])
		}
		q.Filter.Until = day.AddDate(0, 0, 1)
	}
	if a, ok := v["alertname"]; ok {
		switch {
		case a[0] == "":
			return ExportQuery{}, fmt.Errorf("alertname: empty (leave it out for every alert)")
		case len(a[0]) > 1024 || !utf8.ValidString(a[0]):
			return ExportQuery{}, fmt.Errorf("alertname: must be valid UTF-8 of at most 1024 bytes")
		}
		q.Filter.AlertName = a[0]
	}
	return q, nil
}

func parseDate(name, s string) (time.Time, error) {
	t, err := time.Parse(DateLayout, s)
	if err != nil || len(s) != len(DateLayout) {
		return time.Time{}, fmt.Errorf("%s: %q is not a date YYYY-MM-DD", name, s)
	}
	if t.Year() < 1970 {
		return time.Time{}, fmt.Errorf("%s: %s is before 1970-01-01", name, s)
	}
	return t, nil
}

// ContentType is the media type of an export format.
func ContentType(format string) string {
	switch format {
	case FormatJSON:
		return "application/json"
	case FormatNDJSON:
		return "application/x-ndjson"
	}
	return "text/csv; charset=utf-8"
}

// CSVHeader is the header row of a CSV export; the columns are the
// record's fields in canonical order (target split in three).
var CSVHeader = []string{"seq", "time", "event_id", "incident_id", "correlation_id", "alertname", "fingerprint",
	"namespace", "target_kind", "target_namespace", "target_name", "priority", "type", "action", "mode", "outcome",
	"reason", "actor", "details", "prev_hash", "hash"}

// Encoder writes records in one export format. Records are written as
// they come; Close writes what the format needs at the end (the JSON
// array's closing bracket) and flushes. Nothing is held per record, so
// memory does not grow with the export.
type Encoder interface {
	Encode(r *Record) error
	Close() error
}

// NewEncoder returns an encoder of format writing to w. The CSV header is
// written at once.
func NewEncoder(w io.Writer, format string) (Encoder, error) {
	switch format {
	case FormatCSV:
		e := &csvEncoder{w: w}
		b := e.buf[:0]
		for i, h := range CSVHeader {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendCSVField(b, h)
		}
		e.buf = append(b, '\n')
		_, err := w.Write(e.buf)
		return e, err
	case FormatJSON:
		return &jsonEncoder{w: w, array: true}, nil
	case FormatNDJSON:
		return &jsonEncoder{w: w}, nil
	}
	return nil, fmt.Errorf("unknown export format %q", format)
}

// csvEncoder writes exactly what encoding/csv's Writer (comma, LF line
// ends) writes for the row of CSVHeader's columns, without building the
// row as strings first: one Write of the whole line per record.
type csvEncoder struct {
	w   io.Writer
	buf []byte
}

func (e *csvEncoder) Encode(r *Record) error {
	b := strconv.AppendInt(e.buf[:0], r.Seq, 10)
	b = append(b, ',')
	b = appendTime(b, r.Time)
	b = append(b, ',')
	b = strconv.AppendInt(b, r.EventID, 10)
	for _, f := range [...]string{r.IncidentID, r.CorrelationID, r.AlertName, r.Fingerprint, r.Namespace,
		r.Target.Kind, r.Target.Namespace, r.Target.Name, r.Priority, r.Type, r.Action, r.Mode, r.Outcome,
		r.Reason, r.Actor} {
		b = append(b, ',')
		b = appendCSVField(b, f)
	}
	b = append(b, ',')
	b = appendCSVField(b, []byte(r.Details))
	b = append(b, ',')
	b = appendCSVField(b, r.PrevHash)
	b = append(b, ',')
	b = appendCSVField(b, r.Hash)
	e.buf = append(b, '\n')
	_, err := e.w.Write(e.buf)
	return err
}

func (e *csvEncoder) Close() error { return nil }

// appendCSVField appends f as encoding/csv's Writer writes a field: quoted
// (with quotes doubled) when it holds a comma, quote, CR or LF, is `\.`,
// or starts with a space character; verbatim otherwise.
func appendCSVField[T string | []byte](b []byte, f T) []byte {
	if !csvNeedsQuotes(f) {
		return append(b, f...)
	}
	b = append(b, '"')
	start := 0
	for i := 0; i < len(f); i++ {
		if f[i] == '"' {
			b = append(b, f[start:i+1]...)
			b = append(b, '"')
			start = i + 1
		}
	}
	b = append(b, f[start:]...)
	return append(b, '"')
}

func csvNeedsQuotes[T string | []byte](f T) bool {
	if len(f) == 0 {
		return false
	}
	if len(f) == 2 && f[0] == '\\' && f[1] == '.' {
		return true
	}
	for i := 0; i < len(f); i++ {
		switch f[i] {
		case '\n', '\r', '"', ',':
			return true
		}
	}
	if c := f[0]; c < utf8.RuneSelf {
		return c == ' ' || (c >= '\t' && c <= '\r')
	}
	r, _ := utf8.DecodeRuneInString(string(f[:min(len(f), utf8.UTFMax)]))
	return unicode.IsSpace(r)
}

// appendTime appends t in TimeFormat (UTC, microseconds truncated), as
// t.UTC().AppendFormat(b, TimeFormat) does, without parsing the layout.
func appendTime(b []byte, t time.Time) []byte {
	t = t.UTC()
	y, mo, d := t.Date()
	if y < 0 || y > 9999 {
		return t.AppendFormat(b, TimeFormat)
	}
	h, mi, s := t.Clock()
	us := t.Nanosecond() / 1000
	b = append(b, byte('0'+y/1000), byte('0'+y/100%10), byte('0'+y/10%10), byte('0'+y%10), '-',
		byte('0'+int(mo)/10), byte('0'+int(mo)%10), '-', byte('0'+d/10), byte('0'+d%10), 'T',
		byte('0'+h/10), byte('0'+h%10), ':', byte('0'+mi/10), byte('0'+mi%10), ':', byte('0'+s/10), byte('0'+s%10), '.')
	for div := 100000; div > 0; div /= 10 {
		b = append(b, byte('0'+us/div%10))
	}
	return append(b, 'Z')
}

type jsonEncoder struct {
	w     io.Writer
	array bool
	n     int
	buf   []byte
}

func (e *jsonEncoder) Encode(r *Record) error {
	b := e.buf[:0]
	if e.array {
		if e.n == 0 {
			b = append(b, "[\n"...)
		} else {
			b = append(b, ",\n"...)
		}
	}
	b = AppendJSON(b, r)
	if !e.array {
		b = append(b, '\n')
	}
	e.n++
	e.buf = b
	_, err := e.w.Write(b)
	return err
}

func (e *jsonEncoder) Close() error {
	if !e.array {
		return nil
	}
	end := "\n]\n"
	if e.n == 0 {
		end = "[]\n"
	}
	_, err := io.WriteString(e.w, end)
	return err
}

// AppendJSON appends r as one JSON object (the keys of Record's json tags,
// in canonical order). Details are embedded as JSON when they are valid
// JSON, else as a string, and null when empty.
func AppendJSON(b []byte, r *Record) []byte {
	b = append(b, `{"seq":`...)
	b = strconv.AppendInt(b, r.Seq, 10)
	b = append(b, `,"eventId":`...)
	b = strconv.AppendInt(b, r.EventID, 10)
	b = append(b, `,"time":"`...)
	b = appendTime(b, r.Time)
	b = append(b, '"')
	for _, f := range [...]struct{ k, v string }{{"incidentId", r.IncidentID}, {"correlationId", r.CorrelationID},
		{"alertname", r.AlertName}, {"fingerprint", r.Fingerprint}, {"namespace", r.Namespace}} {
		b = appendKey(b, f.k)
		b = appendString(b, f.v)
	}
	b = append(b, `,"target":{"kind":`...)
	b = appendString(b, r.Target.Kind)
	b = append(b, `,"namespace":`...)
	b = appendString(b, r.Target.Namespace)
	b = append(b, `,"name":`...)
	b = appendString(b, r.Target.Name)
	b = append(b, '}')
	for _, f := range [...]struct{ k, v string }{{"priority", r.Priority}, {"type", r.Type}, {"action", r.Action},
		{"mode", r.Mode}, {"outcome", r.Outcome}, {"reason", r.Reason}, {"actor", r.Actor}} {
		b = appendKey(b, f.k)
		b = appendString(b, f.v)
	}
	b = appendKey(b, "details")
	switch {
	case len(r.Details) == 0:
		b = append(b, "null"...)
	case json.Valid(r.Details):
		b = append(b, r.Details...)
	default:
		b = appendString(b, string(r.Details))
	}
	b = appendKey(b, "prevHash")
	b = appendString(b, r.PrevHash)
	b = appendKey(b, "hash")
	b = appendString(b, r.Hash)
	return append(b, '}')
}

func appendKey(b []byte, k string) []byte {
	b = append(b, ',', '"')
	b = append(b, k...)
	return append(b, '"', ':')
}

// appendString appends s as a JSON string: quotes, backslashes and control
// characters escaped, invalid UTF-8 replaced by U+FFFD, and U+2028/U+2029
// escaped (as encoding/json does) so the output is also valid JavaScript.
func appendString(b []byte, s string) []byte { return jsonstr.Append(b, s, false) }
