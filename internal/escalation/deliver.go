package escalation

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/remediator/remediator/internal/incident"
	"github.com/remediator/remediator/internal/store"
)

// OutboxStore is what the delivery loop needs from the store.
type OutboxStore interface {
	ClaimOutbox(ctx context.Context, owner string, limit int, lease time.Duration) ([]store.OutboxMessage, error)
	SettleOutbox(ctx context.Context, owner string, id int64, r store.OutboxResult, events ...incident.Event) error
}

// Deliverer sends the outbox's messages, apart from remediation: it
// leases messages (so replicas never send one at the same time, and a
// message whose sender died is sent again after its lease), sends each
// through its channel's Sender, and settles it with a notified event in
// one transaction. A failed attempt is retried with exponential backoff —
// or when the receiver's Retry-After says — until GiveUpAfter; a permanent
// failure (a 4xx, a target no longer configured) is final. Delivery is
// at least once: a crash between sending and settling sends again, with
// the same payload ID.
type Deliverer struct {
	Store   OutboxStore
	Senders map[string]Sender // by channel
	// Owner names this loop on leases; unique per process.
	Owner string
	// Batch is how many messages are leased and sent at once (default 16).
	Batch int
	// Lease is how long a message is held while it is sent (default 2m;
	// longer than any Sender's timeout).
	Lease time.Duration
	// Poll is how often the outbox is read when nothing kicks the loop
	// (default 1s).
	Poll time.Duration
	// MinBackoff, doubling per attempt up to MaxBackoff, is the wait after
	// a failed attempt (defaults 1s, 5m); a Retry-After up to
	// MaxRetryAfter (default 1h) replaces it.
	MinBackoff, MaxBackoff, MaxRetryAfter time.Duration
	// GiveUpAfter ends the retries of a message this old (default 24h).
	GiveUpAfter time.Duration
	Metrics     *Metrics
	Log         *zap.Logger
	Now         func() time.Time

	once sync.Once
	kick chan struct{}
}

func (d *Deliverer) init() {
	d.once.Do(func() {
		d.kick = make(chan struct{}, 1)
		if d.Batch <= 0 {
			d.Batch = 16
		}
		if d.Lease <= 0 {
			d.Lease = 2 * time.Minute
		}
		if d.Poll <= 0 {
			d.Poll = time.Second
		}
		if d.MinBackoff <= 0 {
			d.MinBackoff = time.Second
		}
		if d.MaxBackoff <= 0 {
			d.MaxBackoff = 5 * time.Minute
		}
		if d.MaxRetryAfter <= 0 {
			d.MaxRetryAfter = time.Hour
		}
		if d.GiveUpAfter <= 0 {
			d.GiveUpAfter = 24 * time.Hour
		}
		if d.Log == nil {
			d.Log = zap.NewNop()
		}
	})
}

func (d *Deliverer) now() time.Time {
	if d.Now != nil {
		return d.Now().UTC()
	}
	return time.Now().UTC()
}

// Kick wakes the loop now (a message was stored). It never blocks.
func (d *Deliverer) Kick() {
	d.init()
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

// Run delivers until ctx ends. Messages being sent when it ends are left
// leased; they are sent again after their lease.
func (d *Deliverer) Run(ctx context.Context) error {
	d.init()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-d.kick:
		case <-timer.C:
		}
		for {
			n, err := d.RunOnce(ctx)
			if err != nil && ctx.Err() == nil {
				d.Log.Warn("outbox unavailable", zap.Error(err))
			}
			if n < d.Batch || err != nil || ctx.Err() != nil {
				break
			}
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(d.Poll)
	}
}

// RunOnce leases one batch of due messages and delivers them (concurrently)
// to the end. It returns how many it leased.
func (d *Deliverer) RunOnce(ctx context.Context) (int, error) {
	d.init()
	msgs, err := d.Store.ClaimOutbox(ctx, d.Owner, d.Batch, d.Lease)
	if err != nil {
		return 0, err
	}
	var wg sync.WaitGroup
	for _, m := range msgs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.deliver(ctx, m)
		}()
	}
	wg.Wait()
	return len(msgs), nil
}

func (d *Deliverer) deliver(ctx context.Context, m store.OutboxMessage) {
	log := d.Log.With(zap.Int64("message", m.ID), zap.String("incident", m.IncidentID),
		zap.String("channel", m.Channel), zap.String("target", m.Target), zap.Int("attempt", m.Attempts))
	sctx, cancel := context.WithTimeout(ctx, d.Lease*3/4) // settle well inside the lease
	var err error
	if s, ok := d.Senders[m.Channel]; ok {
		err = s.Send(sctx, m)
	} else {
		err = &SendError{Permanent: true, Err: fmt.Errorf("channel %q is not configured", m.Channel)}
	}
	cancel()
	if ctx.Err() != nil {
		return // shutting down: the lease expires and the message is sent again
	}
	now := d.now()
	details := map[string]any{"channel": m.Channel, "target": m.Target, "destination": m.Destination,
		"message": m.ID, "escalation": m.EscalationID, "attempt": m.Attempts}
	var res store.OutboxResult
	var events []incident.Event
	outcome := "sent"
	if err == nil {
		res = store.OutboxResult{State: store.OutboxSent}
		details["ok"] = true
		events = append(events, notified(m, now, fmt.Sprintf("%s %s: delivered (attempt %d)", m.Channel, m.Target, m.Attempts), details))
	} else {
		var se *SendError
		if !errors.As(err, &se) {
			se = &SendError{Err: err}
		}
		details["ok"], details["error"] = false, err.Error()
		if se.Status != 0 {
			details["status"] = se.Status
		}
		age := now.Sub(m.CreatedAt)
		switch {
		case se.Permanent || age >= d.GiveUpAfter:
			outcome = "failed"
			why := "permanent failure"
			if !se.Permanent {
				why = fmt.Sprintf("still failing after %s", d.GiveUpAfter)
			}
			res = store.OutboxResult{State: store.OutboxFailed, Error: err.Error()}
			details["final"] = true
			events = append(events, notified(m, now, fmt.Sprintf("%s %s: NOT delivered, given up (%s, attempt %d): %v",
				m.Channel, m.Target, why, m.Attempts, err), details))
			log.Error("notification given up", zap.Error(err))
		default:
			outcome = "retry"
			wait := d.backoff(m.Attempts)
			if se.RetryAfter > 0 {
				wait = min(se.RetryAfter, d.MaxRetryAfter)
			}
			at := now.Add(wait)
			res = store.OutboxResult{State: store.OutboxPending, NotBefore: at, Error: err.Error()}
			// The first failure is recorded; later retries only when they
			// end (delivered or given up), so an outage does not flood the
			// timeline.
			if m.Attempts == 1 {
				details["retryAt"], details["final"] = at, false
				events = append(events, notified(m, now, fmt.Sprintf("%s %s: delivery failing, retrying (attempt %d, next at %s): %v",
					m.Channel, m.Target, m.Attempts, at.Format(time.RFC3339), err), details))
			}
			log.Warn("notification failed; will retry", zap.Error(err), zap.Time("retryAt", at))
		}
	}
	if err := d.Store.SettleOutbox(context.WithoutCancel(ctx), d.Owner, m.ID, res, events...); err != nil {
		log.Error("could not settle notification; it is sent again after its lease", zap.Error(err))
		return
	}
	if d.Metrics != nil {
		d.Metrics.Notifications.WithLabelValues(m.Channel, outcome).Inc()
	}
}

func notified(m store.OutboxMessage, at time.Time, reason string, details map[string]any) incident.Event {
	w := incident.Event{IncidentID: m.IncidentID, Time: at, Type: EventNotified, Actor: incident.ActorService, Reason: reason}
	w.Details = mustJSON(details)
	return w
}

// backoff is the wait after failed attempt number attempts (1-based):
// MinBackoff doubling, at most MaxBackoff.
func (d *Deliverer) backoff(attempts int) time.Duration {
	w := d.MinBackoff
	for i := 1; i < attempts && w < d.MaxBackoff; i++ {
		w *= 2
	}
	return min(w, d.MaxBackoff)
}
