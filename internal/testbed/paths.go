package testbed

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"
	"strings"
)

// ModulePath is the main module's path; RepoRoot looks for its go.mod.
const ModulePath = "github.com/remediator/remediator"

// RepoRoot walks up from the working directory to the directory holding the
// main module's go.mod (tests run in their package directory).
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if isMainModule(filepath.Join(dir, "go.mod")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("testbed: cannot find the repository root (go.mod of " + ModulePath + ") above the working directory")
		}
		dir = parent
	}
}

func isMainModule(gomod string) bool {
	f, err := os.Open(gomod)
	if err != nil {
		return false
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := strings.TrimSpace(s.Text())
		if rest, ok := strings.CutPrefix(line, "module "); ok {
			return strings.Trim(strings.TrimSpace(rest), `"`) == ModulePath
		}
	}
	return false
}

// DefaultBinDir is where hack/testbed/build.sh puts the binaries:
// $REMEDIATOR_TESTBED_BIN if set, else <repo>/bin.
func DefaultBinDir() (string, error) {
	if d := os.Getenv("REMEDIATOR_TESTBED_BIN"); d != "" {
		return filepath.Abs(d)
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "bin"), nil
}
