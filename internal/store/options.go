package store

import "time"

// Options tune a store. Backends read them through Apply; callers set them
// with the With* functions.
type Options struct {
	// Now is the clock used for every timestamp the store writes itself
	// (receipt times when a notification has none, event times, leases).
	// Default time.Now.
	Now func() time.Time
	// MaxBatch caps how many concurrent Ingest calls share one transaction.
	// Default 256.
	MaxBatch int
	// BatchTimeout bounds one group-commit transaction. Default 30s.
	BatchTimeout time.Duration
	// MaxConns caps the connections a backend opens (PostgreSQL pool size,
	// SQLite reader pool). 0 means the backend's default.
	MaxConns int
}

// Option changes Options.
type Option func(*Options)

// WithClock sets the clock the store uses for the timestamps it writes.
func WithClock(now func() time.Time) Option { return func(o *Options) { o.Now = now } }

// WithMaxBatch sets how many notifications at most share one transaction.
func WithMaxBatch(n int) Option { return func(o *Options) { o.MaxBatch = n } }

// WithBatchTimeout bounds one group-commit transaction.
func WithBatchTimeout(d time.Duration) Option { return func(o *Options) { o.BatchTimeout = d } }

// WithMaxConns caps the connections the backend opens.
func WithMaxConns(n int) Option { return func(o *Options) { o.MaxConns = n } }

// Apply returns the options with defaults filled in.
func Apply(opts ...Option) Options {
	o := Options{}
	for _, f := range opts {
		if f != nil {
			f(&o)
		}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 256
	}
	if o.BatchTimeout <= 0 {
		o.BatchTimeout = 30 * time.Second
	}
	return o
}

// UTC returns t in UTC, truncated to the microsecond precision both
// backends store, so a value read back equals the value written.
func UTC(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Truncate(time.Microsecond)
}

// Limit returns the effective row limit of an IncidentFilter: 100 when
// unset, at most 1000.
func Limit(n int) int {
	switch {
	case n <= 0:
		return 100
	case n > 1000:
		return 1000
	}
	return n
}
