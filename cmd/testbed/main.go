// Command testbed starts and stops the real-component test bed (etcd,
// kube-apiserver, kube-controller-manager, kube-scheduler, kwok, PostgreSQL)
// on loopback, for tests and local runs of the remediator.
//
//	testbed up   [--dir .testbed] [--detach] [--no-postgres] [--bin DIR]
//	testbed down [--dir .testbed]
//	testbed env  [--dir .testbed]
//	testbed postgres --dir DIR        (PostgreSQL only; prints its DSN)
//
// `up` prints shell export lines (REMEDIATOR_TESTBED, KUBECONFIG, ...) and
// keeps the bed running until SIGINT/SIGTERM; with --detach it returns once
// the bed is up and leaves it running in the background until `testbed down`.
// Build the binaries first with hack/testbed/build.sh.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/remediator/remediator/internal/testbed"
	"github.com/remediator/remediator/internal/testbed/pgserver"
)

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "up":
		err = up(os.Args[2:])
	case "down":
		err = down(os.Args[2:])
	case "env":
		err = env(os.Args[2:])
	case "postgres":
		err = postgresOnly(os.Args[2:])
	case "-h", "--help", "help":
		usage()
		return
	default:
		usage()
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "testbed: %v\n", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprint(os.Stderr, `usage:
  testbed up   [--dir .testbed] [--detach] [--no-postgres] [--bin DIR]
  testbed down [--dir .testbed]
  testbed env  [--dir .testbed]
  testbed postgres --dir DIR   (PostgreSQL only: prints its DSN, runs until SIGTERM)
`)
}

func absDir(d string) (string, error) { return filepath.Abs(d) }

func up(args []string) error {
	fs := flag.NewFlagSet("up", flag.ExitOnError)
	dir := fs.String("dir", ".testbed", "directory for the bed's state, logs and kubeconfigs")
	detach := fs.Bool("detach", false, "return once the bed is up; it keeps running in the background until `testbed down`")
	noPG := fs.Bool("no-postgres", false, "do not start PostgreSQL")
	bin := fs.String("bin", "", "directory with the built binaries (default: <repo>/bin or $REMEDIATOR_TESTBED_BIN)")
	timeout := fs.Duration("timeout", 5*time.Minute, "how long --detach waits for the bed")
	_ = fs.Parse(args)
	d, err := absDir(*dir)
	if err != nil {
		return err
	}
	if *detach {
		return upDetached(d, *bin, *noPG, *timeout)
	}
	opts := testbed.Options{
		Dir:            d,
		BinDir:         *bin,
		Postgres:       !*noPG,
		KillWithParent: true,
		Logf:           func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) },
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	bed, err := testbed.Up(ctx, opts)
	if err != nil {
		return err
	}
	st := bed.State()
	lines := envLines(st)
	_ = os.WriteFile(filepath.Join(d, "env.sh"), []byte(lines), 0o644)
	fmt.Print(lines)
	fmt.Fprintf(os.Stderr, "testbed: up in %.1fs; Ctrl-C or `testbed down --dir %s` stops it\n", st.StartupSeconds, d)
	<-ctx.Done()
	fmt.Fprintln(os.Stderr, "testbed: stopping")
	t0 := time.Now()
	if err := bed.Down(); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "testbed: stopped in %.1fs\n", time.Since(t0).Seconds())
	return nil
}

// upDetached re-executes `testbed up` in a new session with its output in
// <dir>/testbed.log and waits until it has written the state file.
func upDetached(dir, bin string, noPG bool, timeout time.Duration) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	stateFile := filepath.Join(dir, testbed.StateFileName)
	if _, err := testbed.Attach(stateFile); err == nil {
		return fmt.Errorf("a bed is already running in %s; run `testbed down --dir %s` first", dir, dir)
	}
	logPath := filepath.Join(dir, "testbed.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logf.Close()
	args := []string{"up", "--dir", dir}
	if bin != "" {
		args = append(args, "--bin", bin)
	}
	if noPG {
		args = append(args, "--no-postgres")
	}
	cmd := exec.Command(self, args...)
	cmd.Stdout = io.Discard
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.After(timeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-exited:
			b, _ := os.ReadFile(logPath)
			return fmt.Errorf("bed process exited (%v):\n%s", err, tail(string(b), 40))
		case <-deadline:
			_ = cmd.Process.Signal(syscall.SIGTERM)
			b, _ := os.ReadFile(logPath)
			return fmt.Errorf("bed not up after %s:\n%s", timeout, tail(string(b), 40))
		case <-tick.C:
			bed, err := testbed.Attach(stateFile)
			if err != nil || bed.State().OwnerPID != cmd.Process.Pid {
				continue
			}
			fmt.Print(envLines(bed.State()))
			fmt.Fprintf(os.Stderr, "testbed: up in %.1fs (pid %d, log %s); stop with `testbed down --dir %s`\n",
				bed.State().StartupSeconds, cmd.Process.Pid, logPath, dir)
			return nil
		}
	}
}

func down(args []string) error {
	fs := flag.NewFlagSet("down", flag.ExitOnError)
	dir := fs.String("dir", ".testbed", "directory of the bed")
	_ = fs.Parse(args)
	d, err := absDir(*dir)
	if err != nil {
		return err
	}
	stateFile := filepath.Join(d, testbed.StateFileName)
	if _, err := os.Stat(stateFile); errors.Is(err, os.ErrNotExist) {
		fmt.Fprintf(os.Stderr, "testbed: no bed in %s\n", d)
		return nil
	}
	t0 := time.Now()
	if err := testbed.StopFromState(stateFile, 60*time.Second); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "testbed: stopped in %.1fs\n", time.Since(t0).Seconds())
	return nil
}

func env(args []string) error {
	fs := flag.NewFlagSet("env", flag.ExitOnError)
	dir := fs.String("dir", ".testbed", "directory of the bed")
	_ = fs.Parse(args)
	d, err := absDir(*dir)
	if err != nil {
		return err
	}
	bed, err := testbed.Attach(filepath.Join(d, testbed.StateFileName))
	if err != nil {
		return err
	}
	fmt.Print(envLines(bed.State()))
	return nil
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func envLines(st testbed.State) string {
	var b strings.Builder
	fmt.Fprintf(&b, "export %s=%s\n", testbed.EnvStateFile, shellQuote(filepath.Join(st.Dir, testbed.StateFileName)))
	fmt.Fprintf(&b, "export KUBECONFIG=%s\n", shellQuote(st.AdminKubeconfig))
	fmt.Fprintf(&b, "export REMEDIATOR_TESTBED_KUBECONFIG=%s\n", shellQuote(st.RemediatorKubeconfig))
	if st.PostgresDSN != "" {
		fmt.Fprintf(&b, "export REMEDIATOR_TESTBED_POSTGRES_DSN=%s\n", shellQuote(st.PostgresDSN))
	}
	return b.String()
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// postgresOnly starts just PostgreSQL (for benchmarks that must not share
// the machine with a control plane), prints its DSN on stdout, and runs
// until SIGINT/SIGTERM.
func postgresOnly(args []string) error {
	fs := flag.NewFlagSet("postgres", flag.ExitOnError)
	dir := fs.String("dir", "", "directory for the cluster (must not exist or be empty)")
	_ = fs.Parse(args)
	if *dir == "" {
		return errors.New("postgres: --dir is required")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv, err := pgserver.Start(ctx, *dir)
	if err != nil {
		return err
	}
	fmt.Println(srv.DSN())
	<-ctx.Done()
	return srv.Stop()
}
