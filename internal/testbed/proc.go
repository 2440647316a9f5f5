package testbed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is one child process of the bed, with its output in a log file.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed when the process has exited and been reaped
	waitErr error         // valid after done is closed
}

// startProc starts bin with args; stdout and stderr go to logPath (appended).
// With killWithParent the kernel kills the child when this process dies, so a
// crashed test binary does not leave a control plane behind.
func startProc(name, bin string, args []string, logPath string, killWithParent bool) (*proc, error) {
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("%s: binary %s: %w (run hack/testbed/build.sh)", name, bin, err)
	}
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("%s: log file: %w", name, err)
	}
	fmt.Fprintf(f, "# %s %s %s\n", time.Now().UTC().Format(time.RFC3339), bin, strings.Join(args, " "))
	cmd := exec.Command(bin, args...)
	cmd.Stdout = f
	cmd.Stderr = f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if killWithParent {
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	}
	start := cmd.Start
	if killWithParent {
		start = func() error { return startOnLockedThread(cmd) }
	}
	if err := start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: start: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

// Pdeathsig fires when the OS thread that forked the child exits, not the
// process. Go may retire a thread (for example when a goroutine locked to it
// returns), so children that must die with us are forked from one goroutine
// that stays locked to its thread for the life of the process.
var spawner struct {
	once sync.Once
	reqs chan spawnReq
}

type spawnReq struct {
	cmd  *exec.Cmd
	done chan error
}

func startOnLockedThread(cmd *exec.Cmd) error {
	spawner.once.Do(func() {
		spawner.reqs = make(chan spawnReq)
		go func() {
			runtime.LockOSThread() // never unlocked: the thread lives as long as the process
			for r := range spawner.reqs {
				r.done <- r.cmd.Start()
			}
		}()
	})
	done := make(chan error, 1)
	spawner.reqs <- spawnReq{cmd: cmd, done: done}
	return <-done
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// procError is a process's start failure with the tail of its log.
type procError struct {
	p   *proc
	err error
	msg string
}

func (e *procError) Error() string { return e.msg }
func (e *procError) Unwrap() error { return e.err }

// failure describes an early exit or a readiness failure, with the log tail.
// An error that wraps one describing p yields that one.
func (p *proc) failure(what error) error {
	var pe *procError
	if errors.As(what, &pe) && pe.p == p {
		return pe
	}
	status := "still running"
	if p.exited() {
		status = fmt.Sprintf("exited: %v", p.waitErr)
	}
	return &procError{p: p, err: what, msg: fmt.Sprintf("testbed: %s (pid %d, %s): %v\n--- last lines of %s ---\n%s",
		p.name, p.pid(), status, what, p.logPath, tailFile(p.logPath, 40))}
}

// stop sends SIGTERM, waits up to grace, then SIGKILLs the process group.
func (p *proc) stop(grace time.Duration) error {
	if p.exited() {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(grace):
	}
	_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
	select {
	case <-p.done:
		return fmt.Errorf("%s (pid %d) did not stop within %s; killed", p.name, p.pid(), grace)
	case <-time.After(10 * time.Second):
		return fmt.Errorf("%s (pid %d) survived SIGKILL", p.name, p.pid())
	}
}

// tailFile returns the last n lines of a file (best effort).
func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read log: %v)", err)
	}
	const maxBytes = 64 << 10
	if len(b) > maxBytes {
		b = b[len(b)-maxBytes:]
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// freePorts returns n distinct free TCP ports on 127.0.0.1. All listeners are
// held until every port is chosen so the kernel does not hand out one twice.
func freePorts(n int) ([]int, error) {
	ls := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("testbed: free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// pollUntil calls check every interval until it returns true, an error that is
// final, ctx ends, timeout passes, or one of the watched processes exits.
func pollUntil(ctx context.Context, timeout time.Duration, watch []*proc, check func(ctx context.Context) (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		ok, err := check(ctx)
		if ok {
			return nil
		}
		var fatal *permanentError
		if errors.As(err, &fatal) {
			return fatal.err
		}
		if err != nil {
			last = err
		}
		for _, p := range watch {
			if p.exited() {
				return p.failure(errors.New("process exited while waiting"))
			}
		}
		select {
		case <-ctx.Done():
			if last != nil {
				return fmt.Errorf("%w (last error: %v)", ctx.Err(), last)
			}
			return ctx.Err()
		case <-t.C:
		}
	}
}

// permanentError stops pollUntil at once.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }

func permanent(err error) error { return &permanentError{err} }

// httpOK reports whether GET url answers 200.
func httpOK(ctx context.Context, c *http.Client, url, bearer string) (bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false, err
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := c.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(buf.String()))
	}
	return true, nil
}

// pidAlive reports whether pid exists and is not a zombie.
func pidAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	// The state follows the ")" that closes the command name.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return false
	}
	return s[i+2] != 'Z' && s[i+2] != 'X'
}

// pidRuns reports whether pid is alive and runs the executable exe (guards
// against PID reuse when stopping processes recorded in a state file).
func pidRuns(pid int, exe string) bool {
	if !pidAlive(pid) {
		return false
	}
	if exe == "" {
		return true
	}
	got, err := os.Readlink(filepath.Join("/proc", strconv.Itoa(pid), "exe"))
	if err != nil {
		return false
	}
	got = strings.TrimSuffix(got, " (deleted)")
	want, err := filepath.EvalSymlinks(exe)
	if err != nil {
		want = exe
	}
	return got == want || filepath.Base(got) == filepath.Base(want)
}

// stopPID stops a process this process did not start (recorded in a state
// file): SIGTERM, wait up to grace, then SIGKILL, and wait for it to vanish.
func stopPID(pid int, exe string, grace time.Duration) error {
	if !pidRuns(pid, exe) {
		return nil
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	if waitPIDGone(pid, grace) {
		return nil
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	if waitPIDGone(pid, 10*time.Second) {
		return nil
	}
	return fmt.Errorf("pid %d (%s) does not exit", pid, exe)
}

func waitPIDGone(pid int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if !pidAlive(pid) {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return !pidAlive(pid)
}
