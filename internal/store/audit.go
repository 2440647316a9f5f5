package store

import (
	"encoding/json"
	"errors"
	"time"

	"github.com/remediator/remediator/internal/incident"
	"github.com/remediator/remediator/internal/store/audit"
)

// Backend helpers for the audit trail, so both backends build the same
// records.

// AuditCleanupChunk is how many records one cleanup transaction deletes
// at most, so a large cleanup never holds SQLite's writer for long.
const AuditCleanupChunk = 10000

// ServiceRecords checks service-level events for AppendAudit and returns
// their records (without seq and hashes): Time defaulted to now, Actor to
// incident.ActorService.
func ServiceRecords(events []incident.Event, now time.Time) ([]audit.Record, error) {
	recs := make([]audit.Record, 0, len(events))
	for _, e := range events {
		if e.IncidentID != "" {
			return nil, errors.New("append audit: a service-level record has no IncidentID (use AppendEvents for an incident's timeline)")
		}
		if e.Type == "" {
			return nil, errors.New("append audit: a record needs a Type")
		}
		if len(e.Details) > 0 && !json.Valid(e.Details) {
			return nil, errors.New("append audit: Details is not valid JSON")
		}
		if e.Time.IsZero() {
			e.Time = now
		}
		if e.Actor == "" {
			e.Actor = incident.ActorService
		}
		recs = append(recs, audit.EventRecord(0, UTC(e.Time), "", e.CorrelationID, "", "", "", e.Type, e.Actor, e.Reason, e.Details))
	}
	return recs, nil
}

// CleanupRecord is the service-level record a cleanup appends.
func CleanupRecord(res audit.CleanupResult, now time.Time, actor, correlationID string) audit.Record {
	if actor == "" {
		actor = incident.ActorService
	}
	details, _ := json.Marshal(map[string]any{"deleted": res.Deleted, "before": res.Before.Format(audit.TimeFormat),
		"throughSeq": res.Checkpoint.Seq, "hash": res.Checkpoint.Hash})
	return audit.EventRecord(0, UTC(now), "", correlationID, "", "", "", audit.TypeCleanup, actor,
		"deleted the audit records older than "+res.Before.Format(audit.TimeFormat), details)
}
