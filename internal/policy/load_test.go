package policy

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata/broken")

func TestShippedPoliciesLoadClean(t *testing.T) {
	set, err := Load("../../policies", DefaultCatalog())
	if err != nil {
		t.Fatalf("shipped policies: %v", err)
	}
	want := []string{"certificate-expiring-soon", "database-connection-errors", "disk-space-low", "high-error-rate", "high-latency", "high-memory-usage"}
	var got []string
	for _, p := range set.Policies() {
		got = append(got, p.Name)
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("policies = %v, want %v", got, want)
	}
	// The diagnosis-only policies must never act.
	for _, name := range []string{"certificate-expiring-soon", "database-connection-errors", "disk-space-low"} {
		for _, r := range set.Get(name).Remedies {
			if r.Action != "escalate" {
				t.Errorf("%s: remedy %s has action %s; only escalate is allowed", name, r.Name, r.Action)
			}
		}
		if !strings.Contains(set.Get(name).Description, "not for automation") {
			t.Errorf("%s: description must say why it does not act", name)
		}
	}
}

// TestBrokenGolden loads each broken policy of testdata/broken (a file, or
// a directory of files) alone and compares every error with its golden file.
func TestBrokenGolden(t *testing.T) {
	entries, err := os.ReadDir("testdata/broken")
	if err != nil {
		t.Fatal(err)
	}
	cases := 0
	for _, e := range entries {
		name := e.Name()
		if strings.HasSuffix(name, ".golden") {
			continue
		}
		cases++
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join("testdata/broken", name)
			if !e.IsDir() {
				dir = t.TempDir()
				data, err := os.ReadFile(filepath.Join("testdata/broken", name))
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			_, err := Load(dir, DefaultCatalog())
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("want Errors, got %v", err)
			}
			got := strings.ReplaceAll(errs.Error(), dir+string(filepath.Separator), "") + "\n"
			if e.IsDir() {
				got = strings.ReplaceAll(errs.Error(), "testdata/broken/", "") + "\n"
			}
			golden := filepath.Join("testdata/broken", strings.TrimSuffix(name, ".yaml")+".golden")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Errorf("errors differ from %s\n--- got\n%s--- want\n%s", golden, got, want)
			}
			for _, line := range strings.Split(strings.TrimSpace(got), "\n") {
				if f, _, ok := strings.Cut(line, ":"); !ok || !strings.HasSuffix(f, ".yaml") {
					t.Errorf("error without file:line:col: %q", line)
				}
			}
		})
	}
	if cases < 12 {
		t.Fatalf("only %d broken cases", cases)
	}
}

func TestLoadCollectsAllFilesSorted(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"b.yaml", "a.yml"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("apiVersion: remediator/v1\nkind: Nope\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "README.md"), []byte("not a policy"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(dir, DefaultCatalog())
	var errs Errors
	if !errors.As(err, &errs) || len(errs) < 2 {
		t.Fatalf("want errors of both files, got %v", err)
	}
	if !strings.HasSuffix(errs[0].File, "a.yml") || !strings.HasSuffix(errs[len(errs)-1].File, "b.yaml") {
		t.Fatalf("not sorted by file: %v", errs)
	}
}

func TestLoadEmptyAndMissingDir(t *testing.T) {
	set, err := Load(t.TempDir(), DefaultCatalog())
	if err != nil || len(set.Policies()) != 0 {
		t.Fatalf("empty dir: %v %v", set, err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "nope"), DefaultCatalog()); err == nil {
		t.Fatal("missing dir must fail")
	}
}

func TestSchemaCommitted(t *testing.T) {
	got, err := Schema()
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("../../docs/policy.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("docs/policy.schema.json is stale: run `go run ./cmd/remediator policy schema > docs/policy.schema.json`")
	}
}

func FuzzLoad(f *testing.F) {
	for _, dir := range []string{"../../policies", "testdata/broken"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
		for _, file := range files {
			if b, err := os.ReadFile(file); err == nil {
				f.Add(b)
			}
		}
	}
	f.Add([]byte("a: &a [*a, *a]\n"))
	f.Add([]byte("---\n---\n"))
	l, err := NewLoader(DefaultCatalog())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "p.yaml"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		set, err := l.Load(dir)
		if err == nil && set == nil {
			t.Fatal("nil set without error")
		}
		var errs Errors
		if errors.As(err, &errs) {
			for _, e := range errs {
				if e.Pos.Line < 1 || e.Msg == "" {
					t.Fatalf("error without position or message: %+v", e)
				}
			}
		}
	})
}
