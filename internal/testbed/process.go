package testbed

import (
	"errors"
	"time"
)

// Process is a child process started by StartProcess, with its output in a
// log file. It runs in its own process group (a Ctrl-C at the terminal
// reaches only the parent, which stops it) and the kernel kills it if this
// process dies.
type Process struct{ p *proc }

// StartProcess starts bin with args, appending its stdout and stderr to
// logPath, as the bed starts its own processes.
func StartProcess(name, bin string, args []string, logPath string) (*Process, error) {
	p, err := startProc(name, bin, args, logPath, true)
	if err != nil {
		return nil, err
	}
	return &Process{p: p}, nil
}

// PID is the process id.
func (p *Process) PID() int { return p.p.pid() }

// LogFile is where its output goes.
func (p *Process) LogFile() string { return p.p.logPath }

// Exited reports whether it has exited (and been reaped).
func (p *Process) Exited() bool { return p.p.exited() }

// Failure describes an early exit or a readiness failure what, with the
// process's state and the last lines of its log.
func (p *Process) Failure(what error) error {
	if what == nil {
		what = errors.New("failed")
	}
	return p.p.failure(what)
}

// Stop sends SIGTERM, waits up to grace, then kills its process group.
func (p *Process) Stop(grace time.Duration) error { return p.p.stop(grace) }
