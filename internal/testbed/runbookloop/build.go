package runbookloop

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"

	"github.com/remediator/remediator/internal/testbed"
)

// Binaries are the programs of a loop.
type Binaries struct {
	Remediator string // cmd/remediator
	DemoApp    string // cmd/demo-app
	Prometheus string // the Debian package's prometheus
}

// Build builds cmd/remediator and cmd/demo-app into dir (one go build, so
// they build in parallel and from the build cache) and finds prometheus:
// $REMEDIATOR_PROMETHEUS_BIN, else on the PATH (hack/install-deps.sh
// installs the Debian package).
func Build(ctx context.Context, dir string) (Binaries, error) {
	prom := os.Getenv("REMEDIATOR_PROMETHEUS_BIN")
	if prom == "" {
		p, err := exec.LookPath("prometheus")
		if err != nil {
			return Binaries{}, fmt.Errorf("prometheus not found (hack/install-deps.sh installs the Debian package): %w", err)
		}
		prom = p
	}
	root, err := testbed.RepoRoot()
	if err != nil {
		return Binaries{}, err
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-o", dir+string(filepath.Separator), "./cmd/remediator", "./cmd/demo-app")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return Binaries{}, fmt.Errorf("go build ./cmd/remediator ./cmd/demo-app: %v\n%s", err, out)
	}
	return Binaries{Remediator: filepath.Join(dir, "remediator"), DemoApp: filepath.Join(dir, "demo-app"), Prometheus: prom}, nil
}

// Builder builds the binaries once for a test process, into a temp dir
// removed by Close. Use it next to testbed.Shared:
//
//	var build runbookloop.Builder
//	func TestMain(m *testing.M) { code := bed.Run(m); build.Close(); os.Exit(code) }
type Builder struct {
	mu   sync.Mutex
	done bool
	dir  string
	bins Binaries
	err  error
}

// Get builds on first use and returns the binaries; it fails t if the
// build failed.
func (b *Builder) Get(t T) Binaries {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.done {
		b.done = true
		if b.dir, b.err = os.MkdirTemp("", "remediator-runbookloop-bin-"); b.err == nil {
			b.bins, b.err = Build(t.Context(), b.dir)
		}
	}
	if b.err != nil {
		t.Fatalf("runbookloop: %v", b.err)
	}
	return b.bins
}

// Close removes the binaries.
func (b *Builder) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.dir == "" {
		return nil
	}
	return os.RemoveAll(b.dir)
}
