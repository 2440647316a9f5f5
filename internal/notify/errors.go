package notify

import (
	"errors"
	"fmt"
	"time"
)

// RetryAfter means the channel asked to be left alone for After (HTTP 429
// with Retry-After): schedule the retry then, not sooner.
type RetryAfter struct {
	After time.Duration
	Err   error
}

func (e *RetryAfter) Error() string {
	return fmt.Sprintf("rate limited, retry after %s: %v", e.After, e.Err)
}

func (e *RetryAfter) Unwrap() error { return e.Err }

// Retryable means a transient failure (network, 5xx, the store): retry
// with backoff.
type Retryable struct{ Err error }

func (e *Retryable) Error() string { return "retryable: " + e.Err.Error() }

func (e *Retryable) Unwrap() error { return e.Err }

// Permanent means retrying cannot help (bad token, unknown channel, a
// message the channel refuses): drop the notification and log it.
type Permanent struct{ Err error }

func (e *Permanent) Error() string { return "permanent: " + e.Err.Error() }

func (e *Permanent) Unwrap() error { return e.Err }

// Next says what the outbox should do after err: retry (after at least
// wait, 0 meaning the caller's own backoff), or give up. nil: delivered.
func Next(err error) (retry bool, wait time.Duration) {
	if err == nil {
		return false, 0
	}
	var ra *RetryAfter
	var p *Permanent
	switch {
	case errors.As(err, &ra):
		return true, ra.After
	case errors.As(err, &p):
		return false, 0
	}
	return true, 0
}
