// Command dockerlint checks the repository's Dockerfile offline, the way
// `docker build --check` does: it runs BuildKit's own Dockerfile frontend
// (github.com/moby/buildkit/frontend/dockerfile/dockerfile2llb.DockerfileLint,
// every rule of frontend/dockerfile/linter, experimental ones included) with
// base-image metadata stubbed out, so no registry is contacted. It then
// checks what this project relies on (checks.go): the Go version of the
// build stage equals go.mod's, the build is static (CGO_ENABLED=0) and
// stamps the same version variables as the Makefile, the runtime image is
// distroless and non-root, every COPY source exists and is not excluded by
// .dockerignore, and the OCI labels are set.
//
// Usage (from this directory, a module of its own so that BuildKit stays out
// of the main go.mod): go run . [-root ../../..]. Exit status 1 when there
// is any finding. `make lint` runs it.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
)

func main() {
	root := flag.String("root", "../../..", "repository root (holds Dockerfile, .dockerignore, go.mod, Makefile)")
	flag.Parse()
	findings, err := Check(context.Background(), *root)
	if err != nil {
		fmt.Fprintln(os.Stderr, "dockerlint:", err)
		os.Exit(2)
	}
	for _, f := range findings {
		fmt.Println(f)
	}
	if len(findings) > 0 {
		fmt.Fprintf(os.Stderr, "dockerlint: %d finding(s) in %s\n", len(findings), filepath.Join(*root, "Dockerfile"))
		os.Exit(1)
	}
	fmt.Println("dockerlint: Dockerfile OK")
}
