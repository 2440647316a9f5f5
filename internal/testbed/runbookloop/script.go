package runbookloop

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
	"sync"
	"time"
)

// T is the part of testing.TB the loop uses: *testing.T satisfies it, and
// Run gives a program (hack/demo) one. Fatalf stops the calling goroutine,
// which must be the one running the test or script; the functions passed to
// Cleanup run in reverse order when it ends, after Context is cancelled.
type T interface {
	Helper()
	Context() context.Context
	Cleanup(func())
	Logf(format string, args ...any)
	Fatalf(format string, args ...any)
	Failed() bool
}

// Run runs script as a test would run: its T's Fatalf stops it (the error
// is returned), and the cleanups it registered run in reverse order when it
// returns or stops — also when parent is cancelled (Ctrl-C), after the
// script has had interruptGrace to notice (everything the loop waits for
// watches Context). The script's Context ends after timeout (0: none),
// which fails it like a test's deadline. Logf writes through logf.
func Run(parent context.Context, timeout time.Duration, logf func(format string, args ...any), script func(t T)) error {
	var ctx context.Context
	var cancel context.CancelFunc
	if timeout > 0 {
		ctx, cancel = context.WithTimeoutCause(parent, timeout, fmt.Errorf("took longer than %s", timeout))
	} else {
		ctx, cancel = context.WithCancel(parent)
	}
	s := &scriptT{ctx: ctx, parent: parent, logf: logf}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() {
			// A panic fails the script (and still cleans up); Goexit
			// (Fatalf) is not a panic.
			if r := recover(); r != nil {
				s.fail(fmt.Sprintf("panic: %v\n%s", r, debug.Stack()))
			}
		}()
		script(s)
	}()
	select {
	case <-done:
	case <-parent.Done():
		select {
		case <-done:
		case <-time.After(interruptGrace):
			s.fail("the script did not stop within " + interruptGrace.String())
		}
	}
	cancel()
	for f := s.popCleanup(); f != nil; f = s.popCleanup() {
		isolated(f)
	}
	if parent.Err() != nil {
		if s.err() != nil {
			return fmt.Errorf("interrupted (%v): %w", context.Cause(parent), s.err())
		}
		return fmt.Errorf("interrupted: %w", context.Cause(parent))
	}
	return s.err()
}

// interruptGrace is how long Run waits for an interrupted script to stop
// before it cleans up regardless.
const interruptGrace = 15 * time.Second

// isolated runs f in its own goroutine, so that a Fatalf in a cleanup stops
// only that cleanup.
func isolated(f func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	<-done
}

type scriptT struct {
	ctx    context.Context
	parent context.Context
	logf   func(format string, args ...any)

	mu       sync.Mutex
	cleanups []func()
	failed   bool
	msg      string
}

func (s *scriptT) Helper()                  {}
func (s *scriptT) Context() context.Context { return s.ctx }

func (s *scriptT) Cleanup(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cleanups = append(s.cleanups, f)
}

func (s *scriptT) popCleanup() func() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.cleanups) == 0 {
		return nil
	}
	f := s.cleanups[len(s.cleanups)-1]
	s.cleanups = s.cleanups[:len(s.cleanups)-1]
	return f
}

func (s *scriptT) Logf(format string, args ...any) {
	if s.logf != nil {
		s.logf(format, args...)
	}
}

func (s *scriptT) fail(msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.failed {
		s.failed, s.msg = true, msg
	}
}

// Fatalf records the failure (the first one is what Run returns) and stops
// the calling goroutine.
func (s *scriptT) Fatalf(format string, args ...any) {
	s.fail(fmt.Sprintf(format, args...))
	runtime.Goexit()
}

// Failed reports a failure that is not the interruption's doing, so the
// cleanups do not dump the processes' logs after a Ctrl-C.
func (s *scriptT) Failed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failed && s.parent.Err() == nil
}

func (s *scriptT) err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.failed {
		return nil
	}
	return fmt.Errorf("%s", s.msg)
}
