package testbed

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A process that dies during start makes Up fail with the tail of its log,
// and what was already running is stopped again.
func TestUpReportsLogTailOfFailingProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd")
	}
	realBin, err := DefaultBinDir()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(realBin, "etcd")); err != nil {
		t.Skip("bin/etcd not built (hack/testbed/build.sh)")
	}
	bin := t.TempDir()
	if err := os.Symlink(filepath.Join(realBin, "etcd"), filepath.Join(bin, "etcd")); err != nil {
		t.Fatal(err)
	}
	script := "#!/bin/sh\necho 'E0000 fake: flag --no-such-flag is broken' >&2\nexit 3\n"
	if err := os.WriteFile(filepath.Join(bin, "kube-apiserver"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"kube-controller-manager", "kube-scheduler", "kwok", "kwok-stages.yaml", "kwok-crd-logs.yaml"} {
		if err := os.WriteFile(filepath.Join(bin, f), []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	start := time.Now()
	_, err = Up(t.Context(), Options{Dir: dir, BinDir: bin, KillWithParent: true, StartTimeout: 20 * time.Second})
	if err == nil {
		t.Fatal("Up succeeded with a broken kube-apiserver")
	}
	msg := err.Error()
	t.Logf("Up error:\n%s", msg)
	for _, want := range []string{"kube-apiserver", "exited", "fake: flag --no-such-flag is broken"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("failure took %s; an early exit should be noticed at once", d)
	}
	// etcd was stopped again.
	b, _ := os.ReadFile(filepath.Join(dir, "logs", "etcd.log"))
	if len(b) == 0 {
		t.Fatal("no etcd log")
	}
	if _, err := os.Stat(filepath.Join(dir, StateFileName)); err == nil {
		t.Error("state file written for a failed bed")
	}
}
