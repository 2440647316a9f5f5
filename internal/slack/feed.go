package slack

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/remediator/remediator/internal/notify"
	"github.com/remediator/remediator/internal/store"
	"github.com/remediator/remediator/internal/store/audit"
)

// FeedStore is what a Feed reads and keeps: the audit trail, the incidents
// (notify.Load) and its cursor (store.Store).
type FeedStore interface {
	notify.Source
	ScanAudit(ctx context.Context, f audit.Filter, fn func(*audit.Record) error) error
	AuditState(ctx context.Context) (audit.State, error)
	NotifyCursor(ctx context.Context, name string) (int64, bool, error)
	SetNotifyCursor(ctx context.Context, name string, seq int64) error
}

// Feed delivers notifications by following the audit trail: every
// timeline event is sealed into the trail within about a second, in a
// gap-free seq order (on PostgreSQL also when event ids commit out of
// order), so the feed reads the records after its cursor, in seq order,
// and for each notable event of an incident builds the notification
// (notify.Load) and calls Deliverer, one at a time. The cursor (the seq of
// the last record handled) is kept in the store, so a restart or the next
// leader continues where it stopped; the first run starts at the trail's
// head (history is not replayed).
//
// A failed delivery is retried — the same record, later ones waiting — after
// the channel's Retry-After or a backoff (MinBackoff doubling up to
// MaxBackoff), until the event is GiveUpAfter old; a permanent failure is
// logged and skipped. Delivery is at least once: a record being delivered
// when the feed stops is delivered again by the next run.
//
// The feed runs apart from remediation (its own goroutine, on the leader):
// a Slack outage delays notifications, never a job. Run must not be called
// twice at once.
type Feed struct {
	Store     FeedStore
	Deliverer notify.Deliverer
	// Name is the cursor's name and the channel label of the metrics
	// (default "slack").
	Name string
	// Options are passed to notify.Load (ServiceURL: config external_url).
	Options notify.Options
	// Poll is how often the trail is read when it is idle (default 1s);
	// Batch how many records are read at once (default 100).
	Poll  time.Duration
	Batch int
	// Timeout bounds one Deliver call (default 1m); a call that times out
	// is retried.
	Timeout time.Duration
	// MinBackoff, doubling per failed attempt up to MaxBackoff, is the wait
	// before a retry (defaults 1s, 5m); a Retry-After up to MaxRetryAfter
	// (default 1h) replaces it.
	MinBackoff, MaxBackoff, MaxRetryAfter time.Duration
	// GiveUpAfter ends the retries of an event this old (default 24h).
	GiveUpAfter time.Duration
	// Notifications counts deliveries by channel (Name) and outcome (sent,
	// retry, failed, gave_up): remediator_notifications_total.
	Notifications *prometheus.CounterVec
	// Backlog is the audit records not yet handled (head seq − cursor):
	// remediator_slack_backlog.
	Backlog prometheus.Gauge
	Log     *zap.Logger
	// Now and Sleep are the clock (tests replace them).
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error

	cursor int64 // the seq of the last record handled
}

// Feed outcomes, the outcome label of remediator_notifications_total.
const (
	OutcomeSent   = "sent"
	OutcomeRetry  = "retry"
	OutcomeFailed = "failed"
	OutcomeGaveUp = "gave_up"
)

// NewBacklogGauge registers remediator_slack_backlog on reg (nil: not
// registered).
func NewBacklogGauge(reg prometheus.Registerer) prometheus.Gauge {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "remediator_slack_backlog",
		Help: "Audit records the Slack feed has not handled yet (audit head seq − its cursor); grows while Slack is unreachable. Set by the leader.",
	})
	if reg != nil {
		reg.MustRegister(g)
	}
	return g
}

func (f *Feed) init() {
	if f.Name == "" {
		f.Name = "slack"
	}
	if f.Poll <= 0 {
		f.Poll = time.Second
	}
	if f.Batch <= 0 {
		f.Batch = 100
	}
	if f.Timeout <= 0 {
		f.Timeout = time.Minute
	}
	if f.MinBackoff <= 0 {
		f.MinBackoff = time.Second
	}
	if f.MaxBackoff <= 0 {
		f.MaxBackoff = 5 * time.Minute
	}
	if f.MaxRetryAfter <= 0 {
		f.MaxRetryAfter = time.Hour
	}
	if f.GiveUpAfter <= 0 {
		f.GiveUpAfter = 24 * time.Hour
	}
	if f.Log == nil {
		f.Log = zap.NewNop()
	}
	if f.Notifications != nil {
		for _, o := range []string{OutcomeSent, OutcomeRetry, OutcomeFailed, OutcomeGaveUp} {
			f.Notifications.WithLabelValues(f.Name, o)
		}
	}
}

func (f *Feed) now() time.Time {
	if f.Now != nil {
		return f.Now()
	}
	return time.Now()
}

func (f *Feed) sleep(ctx context.Context, d time.Duration) error {
	if f.Sleep != nil {
		return f.Sleep(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Run delivers until ctx ends (it returns nil then). It reads its cursor
// from the store each time it starts, so it may run again after a change
// of leader.
func (f *Feed) Run(ctx context.Context) error {
	f.init()
	for {
		err := f.start(ctx)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		f.Log.Warn("notification feed: cannot read its cursor; retrying", zap.Error(err))
		if f.sleep(ctx, f.Poll) != nil {
			return nil
		}
	}
	for {
		n, err := f.step(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			f.Log.Warn("notification feed: audit trail unavailable", zap.Error(err))
		}
		if n < f.Batch || err != nil {
			if f.sleep(ctx, f.Poll) != nil {
				return nil
			}
		}
	}
}

// start reads the cursor; without one (the first run) it starts at the
// trail's head.
func (f *Feed) start(ctx context.Context) error {
	seq, ok, err := f.Store.NotifyCursor(ctx, f.Name)
	if err != nil {
		return err
	}
	st, err := f.Store.AuditState(ctx)
	if err != nil {
		return err
	}
	save := !ok
	switch {
	case !ok:
		f.Log.Info("notification feed: first start, following the audit trail from its head (earlier events are not sent)",
			zap.String("feed", f.Name), zap.Int64("seq", st.HeadSeq))
		seq = st.HeadSeq
	case seq > st.HeadSeq:
		// The trail is shorter than what was read (a store restored from
		// an older backup): follow it from its head.
		f.Log.Warn("notification feed: cursor beyond the audit trail's head; following from the head",
			zap.String("feed", f.Name), zap.Int64("cursor", seq), zap.Int64("head", st.HeadSeq))
		seq, save = st.HeadSeq, true
	default:
		f.Log.Info("notification feed: continuing", zap.String("feed", f.Name), zap.Int64("cursor", seq), zap.Int64("head", st.HeadSeq))
	}
	if save {
		if err := f.Store.SetNotifyCursor(ctx, f.Name, seq); err != nil {
			return err
		}
	}
	f.cursor = seq
	f.setBacklog(st.HeadSeq)
	return nil
}

// entry is what the feed needs of an audit record.
type entry struct {
	seq, eventID int64
	incidentID   string
	typ          string
	at           time.Time
}

var errBatchFull = errors.New("batch full")

// step handles the next batch of records after the cursor and returns how
// many it read.
func (f *Feed) step(ctx context.Context) (int, error) {
	var batch []entry
	err := f.Store.ScanAudit(ctx, audit.Filter{AfterSeq: f.cursor}, func(r *audit.Record) error {
		batch = append(batch, entry{seq: r.Seq, eventID: r.EventID, incidentID: r.IncidentID, typ: r.Type, at: r.Time})
		if len(batch) >= f.Batch {
			return errBatchFull
		}
		return nil
	})
	if err != nil && !errors.Is(err, errBatchFull) {
		return 0, err
	}
	// The head, as far as known: the last record read, or the trail's
	// state when there may be more.
	head := f.cursor
	if len(batch) > 0 {
		head = batch[len(batch)-1].seq
	}
	if len(batch) == f.Batch {
		if st, err := f.Store.AuditState(ctx); err == nil {
			head = max(head, st.HeadSeq)
		}
	}
	f.setBacklog(head)
	dirty := false // the cursor moved past records that need no delivery
	for _, e := range batch {
		if e.incidentID == "" || e.eventID == 0 || !notify.Notable(e.typ) {
			f.cursor, dirty = e.seq, true
			continue
		}
		if !f.deliver(ctx, e, &head) {
			break // stopping: this record is delivered again next time
		}
		f.cursor, dirty = e.seq, false
		f.save(ctx)
		f.setBacklog(head)
	}
	if dirty {
		f.save(ctx)
	}
	f.setBacklog(head)
	return len(batch), nil
}

// save persists the cursor. When it cannot, the feed goes on: after a
// restart the records since the last saved cursor are delivered again.
func (f *Feed) save(ctx context.Context) {
	if err := f.Store.SetNotifyCursor(context.WithoutCancel(ctx), f.Name, f.cursor); err != nil {
		f.Log.Warn("notification feed: cannot save its cursor", zap.Int64("seq", f.cursor), zap.Error(err))
	}
}

func (f *Feed) setBacklog(head int64) {
	if f.Backlog != nil {
		f.Backlog.Set(float64(max(head-f.cursor, 0)))
	}
}

func (f *Feed) count(outcome string) {
	if f.Notifications != nil {
		f.Notifications.WithLabelValues(f.Name, outcome).Inc()
	}
}

// deliver delivers one record's notification, retrying it until it is
// delivered, fails permanently or is too old. It returns false when ctx
// ended first.
func (f *Feed) deliver(ctx context.Context, e entry, head *int64) bool {
	log := f.Log.With(zap.Int64("seq", e.seq), zap.String("incident", e.incidentID), zap.Int64("event", e.eventID),
		zap.String("type", e.typ))
	for attempt := 1; ; attempt++ {
		n, ok, err := notify.Load(ctx, f.Store, e.incidentID, e.eventID, f.Options)
		switch {
		case errors.Is(err, store.ErrNotFound):
			err = &notify.Permanent{Err: fmt.Errorf("load the notification: %w", err)}
		case err != nil:
			err = &notify.Retryable{Err: fmt.Errorf("load the notification: %w", err)}
		case !ok:
			return true // not news after all
		default:
			dctx, cancel := context.WithTimeout(ctx, f.Timeout)
			err = f.Deliverer.Deliver(dctx, n)
			cancel()
		}
		if ctx.Err() != nil {
			return false
		}
		retry, wait := notify.Next(err)
		switch {
		case err == nil:
			f.count(OutcomeSent)
			if attempt > 1 {
				log.Info("notification delivered after retries", zap.Int("attempt", attempt))
			}
			return true
		case !retry:
			f.count(OutcomeFailed)
			log.Error("notification not delivered: permanent failure, skipped", zap.Int("attempt", attempt), zap.Error(err))
			return true
		case f.now().Sub(e.at) >= f.GiveUpAfter:
			f.count(OutcomeGaveUp)
			log.Error("notification not delivered: given up", zap.Duration("after", f.GiveUpAfter), zap.Int("attempt", attempt), zap.Error(err))
			return true
		}
		f.count(OutcomeRetry)
		if wait <= 0 {
			wait = f.backoff(attempt)
		} else {
			wait = min(wait, f.MaxRetryAfter)
		}
		log.Warn("notification failed; retrying it before the later ones", zap.Int("attempt", attempt),
			zap.Duration("wait", wait), zap.Error(err))
		if f.sleep(ctx, wait) != nil {
			return false
		}
		if st, err := f.Store.AuditState(ctx); err == nil {
			*head = max(*head, st.HeadSeq)
			f.setBacklog(*head)
		}
	}
}

// backoff is the wait after failed attempt number attempt (1-based):
// MinBackoff doubling, at most MaxBackoff.
func (f *Feed) backoff(attempt int) time.Duration {
	w := f.MinBackoff
	for i := 1; i < attempt && w < f.MaxBackoff; i++ {
		w *= 2
	}
	return min(w, f.MaxBackoff)
}
