package jsonstr

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// Append must produce what encoding/json produces, with and without HTML
// escaping (but for its \u0008/\u000c spelling of \b and \f), and decode back.
func FuzzAppend(f *testing.F) {
	for _, s := range []string{"", "plain", `q"b\s`, "tab\tnl\ncr\r\x00\x1f", "<a&b>", "é€😀", "bad\xffutf8", "\u2028\u2029"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, html := range []bool{false, true} {
			var want bytes.Buffer
			enc := json.NewEncoder(&want)
			enc.SetEscapeHTML(html)
			if err := enc.Encode(s); err != nil {
				t.Fatal(err)
			}
			got := Append(nil, s, html)
			var back, wantBack string
			if err := json.Unmarshal(got, &back); err != nil {
				t.Fatalf("%q: %s does not decode: %v", s, got, err)
			}
			_ = json.Unmarshal(want.Bytes(), &wantBack)
			if back != wantBack {
				t.Fatalf("%q decodes to %q, want %q", s, back, wantBack)
			}
			if strings.ContainsAny(s, "\b\f") {
				continue // spelled differently, compared decoded above
			}
			if !bytes.Equal(got, bytes.TrimSuffix(want.Bytes(), []byte("\n"))) {
				t.Fatalf("html=%v %q: got %s want %s", html, s, got, want.Bytes())
			}
		}
	})
}
