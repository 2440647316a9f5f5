package store

import (
	"slices"
	"time"

	"github.com/remediator/remediator/internal/incident"
	"github.com/remediator/remediator/internal/jsonstr"
)

// Duplicate reasons recorded on duplicate events.
const (
	ReasonAlreadyFiring    = "already firing"
	ReasonAlreadyResolved  = "episode already resolved"
	ReasonFirstSeenResolve = "first seen resolved"
)

// IngestPlan is the backend-independent half of storing a batch of
// notifications. A backend stores Notifications, runs one upsert per entry of
// Upserts (in one statement or many, in the same transaction), hands the
// returned rows to Resolve, and writes what Resolve returns: Updates, Events
// and Jobs, in that order.
//
// Every episode (fingerprint+startsAt) reaches the database once per batch,
// with its first occurrence; later occurrences in the same batch (the same
// notification re-sent by an HA peer, or a fingerprint repeated inside one
// notification) are worked out here from the row the upsert returned. That
// is exact: the upsert holds the row (PostgreSQL row lock, SQLite writer
// lock) until the transaction ends.
type IngestPlan struct {
	// Notifications are copies of the batch with ID and ReceivedAt (UTC)
	// filled in. Their Alerts are the callers' and must not be modified.
	Notifications []incident.Notification
	// Upserts has one entry per distinct episode in the batch.
	Upserts []Upsert

	occ []occurrence
}

// Upsert asks the backend to insert an incident or, when its episode exists,
// to count a receipt. The statement must:
//   - on insert: store the row as given (receipts 1, duplicates 0,
//     first_seen = last_seen = Seen, resolved_at/resolved_by set only when
//     Status is resolved);
//   - on conflict with (fingerprint, starts_at): receipts+1,
//     last_seen = max(last_seen, Seen); if the stored status is firing and
//     Status is resolved, set status resolved, resolved_at = ResolvedAt and
//     resolved_by = NotificationID; otherwise duplicates+1;
//   - return id, status and resolved_by of the resulting row.
type Upsert struct {
	ProposedID      string // the new incident's id, if inserted
	Fingerprint     string
	StartsAt        time.Time
	AlertName       string
	Namespace       string
	Status          string // incoming status: firing or resolved
	Labels          []byte // JSON object
	Annotations     []byte // JSON object
	GeneratorURL    string
	Seen            time.Time // the notification's ReceivedAt
	ResolvedAt      time.Time // when Status is resolved: endsAt, or Seen if zero
	NotificationID  string
	notificationIdx int
}

// UpsertResult is the row an Upsert returned.
type UpsertResult struct {
	ID         string
	Status     string
	ResolvedBy string
}

// Update is a change to an incident beyond its upsert, for episodes that
// occur more than once in a batch: add Receipts and Duplicates, raise
// last_seen to LastSeen, and when Resolve is set, close the episode.
type Update struct {
	IncidentID string
	Receipts   int
	Duplicates int
	LastSeen   time.Time
	Resolve    bool
	ResolvedAt time.Time
	ResolvedBy string
}

// NewJob is a job to enqueue (state pending).
type NewJob struct {
	IncidentID     string
	Kind           string
	Ref            string // the execution or proposal the job is about
	NotificationID string
	CorrelationID  string
	CreatedAt      time.Time // zero: now
	NotBefore      time.Time // the job is not handed out before; zero: CreatedAt
}

// IngestOutcome is what Resolve works out for a batch.
type IngestOutcome struct {
	Results []incident.IngestResult // one per notification, in order
	Updates []Update
	Events  []incident.Event // in timeline order; the backend assigns IDs
	Jobs    []NewJob
}

type episodeKey struct {
	fp string
	at int64
}

type occurrence struct {
	n      int // notification index
	a      int // alert index in the notification
	upsert int // index into Upserts
	first  bool
}

// NewIngestPlan prepares a batch. now is used for notifications that carry
// no ReceivedAt.
func NewIngestPlan(now time.Time, ns []*incident.Notification) *IngestPlan {
	p := &IngestPlan{Notifications: make([]incident.Notification, len(ns))}
	total := 0
	for _, n := range ns {
		total += len(n.Alerts)
	}
	p.occ = make([]occurrence, 0, total)
	p.Upserts = make([]Upsert, 0, total)
	seen := make(map[episodeKey]int, total)
	var buf []byte
	for i, src := range ns {
		n := *src
		if n.ID == "" {
			n.ID = incident.NewID()
		}
		if n.ReceivedAt.IsZero() {
			n.ReceivedAt = now
		}
		n.ReceivedAt = UTC(n.ReceivedAt)
		p.Notifications[i] = n
		for j := range n.Alerts {
			a := &n.Alerts[j]
			startsAt := UTC(a.StartsAt)
			k := episodeKey{fp: a.Fingerprint, at: startsAt.UnixMicro()}
			if u, ok := seen[k]; ok {
				p.occ = append(p.occ, occurrence{n: i, a: j, upsert: u})
				continue
			}
			u := Upsert{
				ProposedID:      incident.NewID(),
				Fingerprint:     a.Fingerprint,
				StartsAt:        startsAt,
				AlertName:       a.Labels["alertname"],
				Namespace:       a.Labels["namespace"],
				Status:          alertStatus(a),
				GeneratorURL:    a.GeneratorURL,
				Seen:            n.ReceivedAt,
				NotificationID:  n.ID,
				notificationIdx: i,
			}
			buf = AppendJSONMap(buf[:0], a.Labels)
			u.Labels = slices.Clone(buf)
			buf = AppendJSONMap(buf[:0], a.Annotations)
			u.Annotations = slices.Clone(buf)
			if u.Status == incident.StatusResolved {
				u.ResolvedAt = resolvedAt(a, n.ReceivedAt)
			}
			seen[k] = len(p.Upserts)
			p.occ = append(p.occ, occurrence{n: i, a: j, upsert: len(p.Upserts), first: true})
			p.Upserts = append(p.Upserts, u)
		}
	}
	return p
}

func alertStatus(a *incident.Alert) string {
	if a.Status == incident.StatusResolved {
		return incident.StatusResolved
	}
	return incident.StatusFiring
}

func resolvedAt(a *incident.Alert, seen time.Time) time.Time {
	if a.EndsAt.IsZero() {
		return seen
	}
	return UTC(a.EndsAt)
}

// Resolve works out every alert's outcome from the rows the upserts
// returned (results[i] belongs to Upserts[i]).
func (p *IngestPlan) Resolve(results []UpsertResult) IngestOutcome {
	out := IngestOutcome{
		Results: make([]incident.IngestResult, len(p.Notifications)),
		Events:  make([]incident.Event, 0, len(p.occ)),
	}
	for i := range p.Notifications {
		out.Results[i] = incident.IngestResult{
			NotificationID: p.Notifications[i].ID,
			Alerts:         make([]incident.AlertOutcome, 0, len(p.Notifications[i].Alerts)),
		}
	}
	type state struct {
		status  string
		lastN   int // notification index of the latest occurrence
		update  int // index into out.Updates, -1 if none
		nowSeen time.Time
	}
	states := make([]state, len(p.Upserts))
	for _, o := range p.occ {
		n := &p.Notifications[o.n]
		a := &n.Alerts[o.a]
		u := &p.Upserts[o.upsert]
		r := results[o.upsert]
		st := &states[o.upsert]
		ev := incident.Event{
			IncidentID:     r.ID,
			Time:           n.ReceivedAt,
			NotificationID: n.ID,
			CorrelationID:  n.CorrelationID,
			Actor:          incident.ActorService,
		}
		outcome := incident.OutcomeDuplicate
		if o.first {
			st.update = -1
			switch {
			case r.ID == u.ProposedID:
				outcome = incident.OutcomeNew
				if u.Status == incident.StatusFiring {
					ev.Type = incident.EventReceived
					out.Jobs = append(out.Jobs, newJob(r.ID, incident.JobFiring, n))
				} else {
					ev.Type, ev.Reason = incident.EventResolved, ReasonFirstSeenResolve
				}
			case u.Status == incident.StatusResolved && r.Status == incident.StatusResolved && r.ResolvedBy == u.NotificationID:
				outcome = incident.OutcomeResolved
				ev.Type, ev.Reason = incident.EventResolved, "alert resolved"
				out.Jobs = append(out.Jobs, newJob(r.ID, incident.JobResolved, n))
			default:
				ev.Type, ev.Reason = incident.EventDuplicate, duplicateReason(r.Status)
			}
			st.status = r.Status
		} else {
			if st.update < 0 {
				st.update = len(out.Updates)
				out.Updates = append(out.Updates, Update{IncidentID: r.ID})
			}
			up := &out.Updates[st.update]
			up.Receipts++
			if n.ReceivedAt.After(up.LastSeen) {
				up.LastSeen = n.ReceivedAt
			}
			if st.lastN != o.n && alertStatus(a) == incident.StatusResolved && st.status == incident.StatusFiring {
				outcome = incident.OutcomeResolved
				st.status = incident.StatusResolved
				up.Resolve, up.ResolvedAt, up.ResolvedBy = true, resolvedAt(a, n.ReceivedAt), n.ID
				ev.Type, ev.Reason = incident.EventResolved, "alert resolved"
				out.Jobs = append(out.Jobs, newJob(r.ID, incident.JobResolved, n))
			} else {
				up.Duplicates++
				ev.Type, ev.Reason = incident.EventDuplicate, duplicateReason(st.status)
			}
		}
		st.lastN = o.n
		out.Events = append(out.Events, ev)
		out.Results[o.n].Alerts = append(out.Results[o.n].Alerts, incident.AlertOutcome{
			Fingerprint: a.Fingerprint,
			IncidentID:  r.ID,
			Outcome:     outcome,
		})
	}
	return out
}

func duplicateReason(status string) string {
	if status == incident.StatusResolved {
		return ReasonAlreadyResolved
	}
	return ReasonAlreadyFiring
}

func newJob(incidentID, kind string, n *incident.Notification) NewJob {
	return NewJob{
		IncidentID:     incidentID,
		Kind:           kind,
		NotificationID: n.ID,
		CorrelationID:  n.CorrelationID,
		CreatedAt:      n.ReceivedAt,
	}
}

// AppendJSONMap appends m as a JSON object with sorted keys (the same bytes
// encoding/json produces, without its reflection cost). A nil map is {}.
func AppendJSONMap(b []byte, m map[string]string) []byte {
	var small [16]string
	keys := small[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, k)
		b = append(b, ':')
		b = appendJSONString(b, m[k])
	}
	return append(b, '}')
}

func appendJSONString(b []byte, s string) []byte { return jsonstr.Append(b, s, true) }
