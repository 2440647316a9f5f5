package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The repository's Dockerfile passes (this is what `make lint` runs).
func TestRepositoryDockerfile(t *testing.T) {
	fs, err := Check(context.Background(), "../../..")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fs {
		t.Error(f)
	}
}

// fixture is a repository root with the real go.mod, Makefile and sources
// (symlinked) and the given Dockerfile and .dockerignore.
func fixture(t *testing.T, dockerfile, dockerignore string) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{"go.mod", "go.sum", "cmd", "internal", "policies"} {
		abs, err := filepath.Abs(filepath.Join("../../..", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(abs, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	mk, err := os.ReadFile("../../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("Makefile", string(mk))
	write("Dockerfile", dockerfile)
	if dockerignore != "" {
		write(".dockerignore", dockerignore)
	}
	return dir
}

func realDockerfile(t *testing.T) string {
	b, err := os.ReadFile("../../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Each change to the real Dockerfile is caught by the rule named.
func TestFindings(t *testing.T) {
	real := realDockerfile(t)
	for _, tc := range []struct {
		name, from, to, ignore, rule string
	}{
		// BuildKit's own rules.
		{"as casing", " AS build", " as build", "", "FromAsCasing"},
		{"shell-form CMD", `CMD ["serve", "--listen", "0.0.0.0:9095", "--policies", "/etc/remediator/policies", "--store", "sqlite:///var/lib/remediator/remediator.db"]`, "CMD serve", "", "JSONArgsRecommended"},
		{"legacy ENV", "WORKDIR /src", "WORKDIR /src\nENV A b", "", "LegacyKeyValueFormat"},
		{"undefined ARG", "COPY --from=build /out/remediator ", "COPY --from=build /out/${NOPE}remediator ", "", "UndefinedVar"},
		// The project's.
		{"go version", "golang:1.26.8", "golang:1.25", "", "GoVersion"},
		{"cgo", "CGO_ENABLED=0 ", "", "", "StaticBuild"},
		{"commit not stamped", " -X github.com/remediator/remediator/internal/version.Commit=${COMMIT}", "", "", "VersionStamp"},
		{"not distroless", "gcr.io/distroless/static-debian12:nonroot", "debian:12", "", "Distroless"},
		{"root", "USER 65532:65532", "USER root", "", "NonRoot"},
		{"label", `org.opencontainers.image.revision="${COMMIT}"`, `x=y`, "", "OCILabels"},
		{"missing source", "COPY policies ", "COPY policys ", "", "CopySource"},
		{"ignored source", "", "", "policies\n", "CopyIgnoredFile"},
		{"ignored embed", "", "", "internal/store/*/migrations\n", "CopyIgnoredFile"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			df := real
			if tc.from != "" {
				if !strings.Contains(df, tc.from) {
					t.Fatalf("Dockerfile no longer contains %q: update the test", tc.from)
				}
				df = strings.Replace(df, tc.from, tc.to, 1)
			}
			fs, err := Check(context.Background(), fixture(t, df, tc.ignore))
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range fs {
				if f.Rule == tc.rule {
					return
				}
			}
			t.Errorf("no %s finding; got %v", tc.rule, fs)
		})
	}
}
