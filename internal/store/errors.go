package store

import (
	"errors"
	"fmt"
)

// ErrClosed is returned by a store after Close. It wraps ErrUnavailable: a
// store that is shutting down cannot take writes, so intake answers 503.
var ErrClosed = fmt.Errorf("%w: store closed", ErrUnavailable)

// ErrLeaseLost is returned by CompleteJob and FailJob when the worker does
// not hold the job's lease (it expired and another worker took the job, or
// the job was never leased to this worker, or it is already done).
var ErrLeaseLost = errors.New("job lease not held")

// Unavailable wraps err so that errors.Is(err, ErrUnavailable) holds, keeping
// the original error in the chain. It returns nil for nil and err unchanged
// when it already wraps ErrUnavailable.
func Unavailable(err error) error {
	if err == nil || errors.Is(err, ErrUnavailable) {
		return err
	}
	return &unavailableError{err: err}
}

type unavailableError struct{ err error }

func (e *unavailableError) Error() string { return ErrUnavailable.Error() + ": " + e.err.Error() }

func (e *unavailableError) Unwrap() []error { return []error{ErrUnavailable, e.err} }
