package audit

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestParseExportQuery(t *testing.T) {
	day := func(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }
	cases := []struct {
		query   string
		want    ExportQuery
		wantErr string
	}{
		{"startDate=2024-01-01", ExportQuery{Format: "csv", Filter: Filter{ByTime: true, Since: day(2024, 1, 1)}}, ""},
		{"format=csv&startDate=2024-01-01", ExportQuery{Format: "csv", Filter: Filter{ByTime: true, Since: day(2024, 1, 1)}}, ""},
		{"format=json&startDate=2024-01-01&endDate=2024-01-31", ExportQuery{Format: "json",
			Filter: Filter{ByTime: true, Since: day(2024, 1, 1), Until: day(2024, 2, 1)}}, ""},
		{"format=ndjson&startDate=2024-02-29&endDate=2024-02-29&alertname=High+Error%2FRate", ExportQuery{Format: "ndjson",
			Filter: Filter{ByTime: true, Since: day(2024, 2, 29), Until: day(2024, 3, 1), AlertName: "High Error/Rate"}}, ""},
		{"startDate=2024-12-31&endDate=2024-12-31", ExportQuery{Format: "csv",
			Filter: Filter{ByTime: true, Since: day(2024, 12, 31), Until: day(2025, 1, 1)}}, ""},
		{"", ExportQuery{}, "startDate: required"},
		{"format=csv", ExportQuery{}, "startDate: required"},
		{"format=xml&startDate=2024-01-01", ExportQuery{}, `format: must be csv, json or ndjson, got "xml"`},
		{"format=CSV&startDate=2024-01-01", ExportQuery{}, `format: must be csv, json or ndjson, got "CSV"`},
		{"startDate=2024-1-1", ExportQuery{}, `startDate: "2024-1-1" is not a date`},
		{"startDate=2023-02-29", ExportQuery{}, `startDate: "2023-02-29" is not a date`},
		{"startDate=2024-01-01T00:00:00Z", ExportQuery{}, "is not a date"},
		{"startDate=", ExportQuery{}, "is not a date"},
		{"startDate=1969-12-31", ExportQuery{}, "startDate: 1969-12-31 is before 1970-01-01"},
		{"startDate=2024-01-02&endDate=2024-01-01", ExportQuery{}, "endDate 2024-01-01 is before startDate 2024-01-02"},
		{"startDate=2024-01-01&endDate=tomorrow", ExportQuery{}, `endDate: "tomorrow" is not a date`},
		{"startDate=2024-01-01&startDate=2024-01-02", ExportQuery{}, "parameter startDate given 2 times"},
		{"startDate=2024-01-01&limit=10", ExportQuery{}, `unknown parameter "limit"`},
		{"startDate=2024-01-01&alertname=", ExportQuery{}, "alertname: empty"},
		{"startDate=2024-01-01&alertname=%FF", ExportQuery{}, "alertname: must be valid UTF-8"},
	}
	for _, tc := range cases {
		v, err := url.ParseQuery(tc.query)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParseExportQuery(v)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%q: error %v, want %q", tc.query, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q: %+v, %v; want %+v", tc.query, got, err, tc.want)
		}
	}
}

// FuzzParseExportQuery: any query either fails with an error or gives a
// query that keeps the documented invariants, and encoding it back gives
// the same query.
func FuzzParseExportQuery(f *testing.F) {
	for _, s := range []string{"startDate=2024-01-01", "format=json&startDate=2024-01-01&endDate=2024-01-31&alertname=A",
		"format=ndjson&startDate=1970-01-01&endDate=9999-12-31", "startDate=0001-01-01", "startDate=2024-02-30", "a=b&a=c", "%zz", "alertname=%FF"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		q, err := ParseExportQuery(v)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		f := q.Filter
		switch {
		case q.Format != FormatCSV && q.Format != FormatJSON && q.Format != FormatNDJSON:
			t.Fatalf("format %q", q.Format)
		case !f.ByTime || f.AfterSeq != 0:
			t.Fatalf("filter %+v", f)
		case f.Since.IsZero() || f.Since.Location() != time.UTC || !f.Since.Equal(f.Since.Truncate(24*time.Hour)):
			t.Fatalf("since %v", f.Since)
		case !f.Until.IsZero() && (!f.Until.After(f.Since) || !f.Until.Equal(f.Until.Truncate(24*time.Hour))):
			t.Fatalf("until %v since %v", f.Until, f.Since)
		case !utf8.ValidString(f.AlertName) || len(f.AlertName) > 1024:
			t.Fatalf("alertname %q", f.AlertName)
		}
		back := url.Values{"format": {q.Format}, "startDate": {f.Since.Format(DateLayout)}}
		if !f.Until.IsZero() {
			back.Set("endDate", f.Until.AddDate(0, 0, -1).Format(DateLayout))
		}
		if f.AlertName != "" {
			back.Set("alertname", f.AlertName)
		}
		again, err := ParseExportQuery(back)
		if err != nil || again != q {
			t.Fatalf("round trip of %q: %+v, %v; want %+v", back.Encode(), again, err, q)
		}
	})
}

func tricky() []Record {
	a := goldenRecord()
	b := goldenRecord()
	b.Seq, b.EventID, b.Reason = 43, 0, "quote \" comma , newline \n cr \r tab \t nul \x00 \u2028 bad \xff <&>"
	b.AlertName, b.Details = "=cmd|' /C calc'!A0", json.RawMessage(`not json`)
	c := goldenRecord()
	c.Seq, c.Details = 44, nil
	recs := []Record{a, b, c}
	Chain(41, GenesisHash, recs)
	return recs
}

func encode(t *testing.T, format string, recs []Record) string {
	t.Helper()
	var buf bytes.Buffer
	e, err := NewEncoder(&buf, format)
	if err != nil {
		t.Fatal(err)
	}
	for i := range recs {
		if err := e.Encode(&recs[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

func TestCSV(t *testing.T) {
	recs := tricky()
	rows, err := csv.NewReader(strings.NewReader(encode(t, FormatCSV, recs))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 4 || strings.Join(rows[0], ",") != strings.Join(CSVHeader, ",") {
		t.Fatalf("rows %d header %v", len(rows), rows[0])
	}
	for i, r := range recs {
		row := rows[i+1]
		if row[0] != "4"+string(rune('2'+i)) || row[1] != "2026-03-01T10:00:00.123456Z" || row[5] != r.AlertName ||
			row[8] != "Deployment" || row[18] != string(r.Details) || row[20] != r.Hash {
			t.Errorf("row %d: %q", i, row)
		}
		// encoding/csv turns \r\n inside quoted fields into \n on reading;
		// everything else comes back byte for byte.
		if want := strings.ReplaceAll(r.Reason, "\r", ""); strings.ReplaceAll(row[16], "\r", "") != want {
			t.Errorf("row %d reason %q, want %q", i, row[16], r.Reason)
		}
	}
	if got := encode(t, FormatCSV, nil); got != strings.Join(CSVHeader, ",")+"\n" {
		t.Errorf("empty CSV: %q", got)
	}
}

func TestJSON(t *testing.T) {
	recs := tricky()
	out := encode(t, FormatJSON, recs)
	var got []map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(got) != 3 {
		t.Fatalf("%d records", len(got))
	}
	if got[0]["details"].(map[string]any)["mode"] != "dry-run" || got[1]["details"] != "not json" || got[2]["details"] != nil {
		t.Errorf("details: %v / %v / %v", got[0]["details"], got[1]["details"], got[2]["details"])
	}
	wantReason := strings.ToValidUTF8(recs[1].Reason, "\ufffd")
	if got[1]["reason"] != wantReason || got[1]["alertname"] != recs[1].AlertName || got[0]["seq"] != 42.0 ||
		got[0]["target"].(map[string]any)["name"] != "web" || got[0]["time"] != "2026-03-01T10:00:00.123456Z" {
		t.Errorf("fields: %v", got)
	}
	// Decodes back into a Record.
	var back []Record
	if err := json.Unmarshal([]byte(out), &back); err != nil || back[0].Hash != recs[0].Hash || !back[0].Time.Equal(recs[0].Time.Truncate(time.Microsecond)) ||
		back[0].Target != recs[0].Target {
		t.Errorf("%+v, %v", back, err)
	}
	if got := encode(t, FormatJSON, nil); got != "[]\n" {
		t.Errorf("empty JSON: %q", got)
	}
	nd := strings.Split(strings.TrimSuffix(encode(t, FormatNDJSON, recs), "\n"), "\n")
	if len(nd) != 3 {
		t.Fatalf("%d ndjson lines", len(nd))
	}
	for _, l := range nd {
		if !json.Valid([]byte(l)) {
			t.Errorf("invalid line %s", l)
		}
	}
	if encode(t, FormatNDJSON, nil) != "" {
		t.Error("empty NDJSON not empty")
	}
	if _, err := NewEncoder(&bytes.Buffer{}, "xml"); err == nil {
		t.Error("xml encoder")
	}
}

// FuzzAppendString: the JSON string writer agrees with encoding/json.
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "a\"b\\c", "\x00\x1f\u2028\u2029", "\xff\xfe", "日本"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b := appendString(nil, s)
		var got string
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("%q → %s: %v", s, b, err)
		}
		if want := strings.ToValidUTF8(s, "\ufffd"); got != want && !(strings.ContainsRune(s, utf8.RuneError)) {
			t.Fatalf("%q → %s → %q", s, b, got)
		}
	})
}
