package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/remediator/remediator/internal/policy/policydoc"
)

// `remediator policy docs` prints the reference; --write splices it into a
// file between the markers and leaves the rest alone.
func TestPolicyDocsCommand(t *testing.T) {
	var out bytes.Buffer
	root := newRootCmd()
	root.SetOut(&out)
	root.SetArgs([]string{"policy", "docs"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	want, err := policydoc.Reference()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), want) {
		t.Error("policy docs prints something else than policydoc.Reference")
	}
	for _, s := range []string{"#### `rollback`", "`get, patch` apps/deployments", "`rolloutHistory.newestRolloutAge` | duration", "| `guards.cooldown` |"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("reference lacks %q", s)
		}
	}

	file := filepath.Join(t.TempDir(), "p.md")
	doc := "# hand\n\n" + policydoc.Begin + "\nstale\n" + policydoc.End + "\n\ntail\n"
	if err := os.WriteFile(file, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	root = newRootCmd()
	root.SetArgs([]string{"policy", "docs", "--write", file})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(file)
	if !strings.HasPrefix(string(got), "# hand\n\n"+policydoc.Begin+"\n\n### Fields") || !strings.HasSuffix(string(got), policydoc.End+"\n\ntail\n") || strings.Contains(string(got), "stale") {
		t.Errorf("--write produced:\n%s", got)
	}

	if err := os.WriteFile(file, []byte("no markers\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	root = newRootCmd()
	root.SetArgs([]string{"policy", "docs", "--write", file})
	if err := root.Execute(); err == nil {
		t.Error("--write into a file without markers must fail")
	}
}

// docs/policies.md is current (the same check as internal/policy/policydoc,
// here so that `go test ./cmd/remediator -run Docs` catches it too).
func TestPolicyDocsCommitted(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "policies.md"))
	if err != nil {
		t.Fatal(err)
	}
	ref, err := policydoc.Reference()
	if err != nil {
		t.Fatal(err)
	}
	want, err := policydoc.Splice(doc, ref)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(doc, want) {
		t.Fatal("docs/policies.md is stale: run `make docs`")
	}
}
