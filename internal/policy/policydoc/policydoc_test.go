package policydoc

import (
	"bytes"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/remediator/remediator/internal/policy"
)

const docFile = "../../../docs/policies.md"

// docs/policies.md carries the current reference between its markers.
func TestDocsPoliciesReferenceCurrent(t *testing.T) {
	doc, err := os.ReadFile(docFile)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := Reference()
	if err != nil {
		t.Fatal(err)
	}
	want, err := Splice(doc, ref)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(doc, want) {
		t.Fatal("docs/policies.md is stale: run `make docs` (go run ./cmd/remediator policy docs --write docs/policies.md)")
	}
}

// Every field has a default entry (possibly "none") and a description;
// no entry names a field that no longer exists.
func TestDocsFieldNotesComplete(t *testing.T) {
	fields, err := Fields()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, f := range fields {
		seen[f.Path] = true
		if _, ok := fieldDefaults[f.Path]; !ok {
			t.Errorf("policy field %s: add its default to fieldDefaults in notes.go (\"\" for none)", f.Path)
		}
		if f.Doc == "" {
			t.Errorf("policy field %s has no description: add jsonschema_description to its Go field or a line to fieldDocs in notes.go", f.Path)
		}
	}
	for k := range fieldDefaults {
		if !seen[k] {
			t.Errorf("fieldDefaults[%q]: no such policy field", k)
		}
	}
	for k := range fieldDocs {
		if !seen[k] {
			t.Errorf("fieldDocs[%q]: no such policy field", k)
		}
	}
	for _, f := range fields {
		if d, ok := fieldDocs[f.Path]; ok && f.Doc != d {
			t.Errorf("fieldDocs[%q] is unused: the schema describes the field now; delete the line", f.Path)
		}
	}
}

// Every evidence field has a note; no note names a field that is gone.
func TestDocsEvidenceNotesComplete(t *testing.T) {
	cat := policy.DefaultCatalog()
	seen := map[string]bool{}
	for _, name := range cat.ProbeNames() {
		for _, f := range Evidence(cat.Probes[name].Result) {
			seen[f.Key] = true
			if evidenceNotes[f.Key] == "" {
				t.Errorf("evidence field %s.%s (%s): add a line to evidenceNotes in notes.go", name, f.Path, f.Key)
			}
		}
	}
	for k := range evidenceNotes {
		if !seen[k] {
			t.Errorf("evidenceNotes[%q]: no such evidence field", k)
		}
	}
}

func TestDocsEvidenceTypes(t *testing.T) {
	type inner struct {
		N int64 `cel:"n"`
	}
	type embedded struct {
		E []string `cel:"e"`
	}
	type ev struct {
		A  string           `cel:"a"`
		L  []inner          `cel:"l"`
		M  map[string]int64 `cel:"m"`
		NC int64
		embedded
	}
	var got []string
	for _, f := range Evidence(reflect.TypeFor[ev]()) {
		got = append(got, f.Path+":"+f.Type+":"+f.Key)
	}
	want := "a:string:ev.a l:list(object):ev.l l[].n:int:inner.n m:map(string, int):ev.m e:list(string):embedded.e"
	if strings.Join(got, " ") != want {
		t.Errorf("got  %s\nwant %s", strings.Join(got, " "), want)
	}
}

func TestDocsSplice(t *testing.T) {
	doc := []byte("# T\n\nhand\n\n" + Begin + "\nold\n" + End + "\n\nmore hand\n")
	got, err := Splice(doc, []byte("new\n"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "# T\n\nhand\n\n" + Begin + "\n\nnew\n\n" + End + "\n\nmore hand\n"; string(got) != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
	again, _ := Splice(got, []byte("new\n"))
	if !bytes.Equal(again, got) {
		t.Error("Splice is not idempotent")
	}
	for _, bad := range []string{"no markers", End + "\n" + Begin, Begin + Begin + End} {
		if _, err := Splice([]byte(bad), nil); err == nil {
			t.Errorf("Splice(%q) must fail", bad)
		}
	}
}
