package slack

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/remediator/remediator/internal/store"
)

// ThreadStore keeps each incident's root message per channel, so replies
// thread under it and status changes update it, across restarts and
// replicas. store.Store implements it (table slack_threads).
type ThreadStore interface {
	// RootTS returns the root message of an incident in a channel (as
	// routed); the zero value, and no error, when there is none yet.
	RootTS(ctx context.Context, incidentID, channel string) (store.SlackRoot, error)
	// SetRootTS records (or replaces) it.
	SetRootTS(ctx context.Context, incidentID, channel string, root store.SlackRoot) error
}

// ReplayStore remembers the signatures of recent interaction requests.
// store.Store implements it (table slack_signatures, shared by replicas).
type ReplayStore interface {
	// RememberSignature records signature until at+keep and reports whether
	// it is new (false: a replay).
	RememberSignature(ctx context.Context, signature string, at time.Time, keep time.Duration) (bool, error)
}

// MemoryThreads is a ThreadStore in memory (tests; a single replica that
// may forget its threads on restart).
type MemoryThreads struct {
	mu    sync.Mutex
	roots map[[2]string]store.SlackRoot
}

// RootTS implements ThreadStore.
func (m *MemoryThreads) RootTS(_ context.Context, incidentID, channel string) (store.SlackRoot, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.roots[[2]string{incidentID, channel}], nil
}

// SetRootTS implements ThreadStore.
func (m *MemoryThreads) SetRootTS(_ context.Context, incidentID, channel string, root store.SlackRoot) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.roots == nil {
		m.roots = map[[2]string]store.SlackRoot{}
	}
	m.roots[[2]string{incidentID, channel}] = root
	return nil
}

// ErrReplayMemoryFull is returned by MemoryReplay when it holds Max
// signatures that have not expired: the request is refused (fail closed)
// rather than forgetting a signature that may be replayed.
var ErrReplayMemoryFull = errors.New("too many recent interaction requests to remember")

// MemoryReplay is a ReplayStore in memory: it protects one replica only
// (a request replayed to another replica is not recognised; use the store
// with several replicas) and holds at most Max signatures (default 10,000,
// far more than people click in 10 minutes).
type MemoryReplay struct {
	Max int

	mu   sync.Mutex
	seen map[string]time.Time // signature → expiry
}

// RememberSignature implements ReplayStore.
func (m *MemoryReplay) RememberSignature(_ context.Context, signature string, at time.Time, keep time.Duration) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.seen == nil {
		m.seen = map[string]time.Time{}
	}
	for sig, exp := range m.seen {
		if !exp.After(at) {
			delete(m.seen, sig)
		}
	}
	if _, ok := m.seen[signature]; ok {
		return false, nil
	}
	limit := m.Max
	if limit <= 0 {
		limit = 10000
	}
	if len(m.seen) >= limit {
		return false, ErrReplayMemoryFull
	}
	m.seen[signature] = at.Add(keep)
	return true, nil
}
