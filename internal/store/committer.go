package store

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/remediator/remediator/internal/incident"
)

// BatchFunc stores notifications in ONE transaction, all or nothing, and
// returns one result per notification, in order. It must not modify the
// notifications. Backends implement it; the Committer calls it.
type BatchFunc func(ctx context.Context, ns []*incident.Notification) ([]incident.IngestResult, error)

// Committer group-commits Ingest calls: concurrent callers are queued, and
// each worker takes whatever is queued (up to a cap), stores it in one
// transaction with BatchFunc and answers every caller. While one transaction
// commits, the next batch gathers, so the cost of a durable commit (an fsync)
// is shared by all notifications in it.
//
// When a batch fails, its members are retried one at a time, so one bad
// notification never fails the others. A caller whose context ends while it
// waits gets the context's error (its notification may still be committed
// if the batch it joined was already running; a re-send is then counted as a
// duplicate).
type Committer struct {
	run     BatchFunc
	max     int
	timeout time.Duration

	reqs chan *commitReq
	mu   sync.RWMutex // guards closed against sends on a closed channel
	done bool
	wg   sync.WaitGroup
}

type commitReq struct {
	ctx   context.Context
	n     *incident.Notification
	reply chan commitReply
}

type commitReply struct {
	res incident.IngestResult
	err error
}

// NewCommitter starts workers goroutines (at least 1) that run batches of at
// most maxBatch notifications, each bounded by timeout.
func NewCommitter(run BatchFunc, workers, maxBatch int, timeout time.Duration) *Committer {
	if workers < 1 {
		workers = 1
	}
	if maxBatch < 1 {
		maxBatch = 1
	}
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	c := &Committer{
		run:     run,
		max:     maxBatch,
		timeout: timeout,
		reqs:    make(chan *commitReq, maxBatch*workers),
	}
	c.wg.Add(workers)
	for range workers {
		go c.loop()
	}
	return c
}

// Ingest queues n and waits until it is durably stored, failed, or ctx ends.
func (c *Committer) Ingest(ctx context.Context, n *incident.Notification) (incident.IngestResult, error) {
	if err := ctx.Err(); err != nil {
		return incident.IngestResult{}, err
	}
	req := &commitReq{ctx: ctx, n: n, reply: make(chan commitReply, 1)}
	c.mu.RLock()
	if c.done {
		c.mu.RUnlock()
		return incident.IngestResult{}, ErrClosed
	}
	select {
	case c.reqs <- req:
		c.mu.RUnlock()
	case <-ctx.Done():
		c.mu.RUnlock()
		return incident.IngestResult{}, ctx.Err()
	}
	select {
	case r := <-req.reply:
		return r.res, r.err
	case <-ctx.Done():
		return incident.IngestResult{}, ctx.Err()
	}
}

// Waiting is how many Ingest calls are queued for the next batch (not
// counting the batch being committed): zero means nobody waits for the
// store right now.
func (c *Committer) Waiting() int { return len(c.reqs) }

// Close stops taking new notifications, commits everything already queued
// and waits for the workers to finish. It is safe to call more than once.
func (c *Committer) Close() {
	c.mu.Lock()
	if !c.done {
		c.done = true
		close(c.reqs)
	}
	c.mu.Unlock()
	c.wg.Wait()
}

func (c *Committer) loop() {
	defer c.wg.Done()
	batch := make([]*commitReq, 0, c.max)
	for first := range c.reqs {
		batch = append(batch[:0], first)
	gather:
		for len(batch) < c.max {
			select {
			case r, ok := <-c.reqs:
				if !ok {
					break gather
				}
				batch = append(batch, r)
			default:
				break gather
			}
		}
		c.commit(batch)
		clear(batch) // drop references to answered requests
	}
}

func (c *Committer) commit(batch []*commitReq) {
	live := batch[:0]
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.reply <- commitReply{err: err}
			continue
		}
		live = append(live, r)
	}
	if len(live) == 0 {
		return
	}
	ns := make([]*incident.Notification, len(live))
	for i, r := range live {
		ns[i] = r.n
	}
	res, err := c.runOnce(ns)
	if err == nil {
		for i, r := range live {
			r.reply <- commitReply{res: res[i]}
		}
		return
	}
	if len(live) == 1 {
		live[0].reply <- commitReply{err: err}
		return
	}
	// Retry one by one so a bad notification fails alone. When the store
	// itself is unavailable, stop hammering it and fail the rest at once.
	var down error
	for _, r := range live {
		if down != nil {
			r.reply <- commitReply{err: down}
			continue
		}
		if err := r.ctx.Err(); err != nil {
			r.reply <- commitReply{err: err}
			continue
		}
		res, err := c.runOnce([]*incident.Notification{r.n})
		if err != nil {
			if errors.Is(err, ErrUnavailable) {
				down = err
			}
			r.reply <- commitReply{err: err}
			continue
		}
		r.reply <- commitReply{res: res[0]}
	}
}

func (c *Committer) runOnce(ns []*incident.Notification) ([]incident.IngestResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	res, err := c.run(ctx, ns)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			err = Unavailable(err)
		}
		return nil, err
	}
	if len(res) != len(ns) {
		return nil, errors.New("store: batch returned wrong number of results")
	}
	return res, nil
}
