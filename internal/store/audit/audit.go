// Package audit is the tamper-evident audit trail: the record every
// timeline event becomes, its canonical encoding and hash chain, the
// mapping from an event's details to the record's columns, chain
// verification, the export formats and the background work that keeps the
// trail (the sealer and the retention cleanup).
//
// It holds no storage code: the store backends (internal/store/sqlite,
// internal/store/postgres) persist records and call into this package to
// build and hash them, so both backends produce byte-identical chains.
//
// How the trail is built (docs/audit.md has the whole story):
//
//   - Each event gets one Record with the next gap-free Seq, the previous
//     record's hash as PrevHash, and Hash over the canonical encoding, in
//     id order, inside one serialized transaction.
//   - On SQLite (one writer anyway) that is the transaction that writes
//     the events: intake's group commit and the other writes seal their own
//     events before they commit.
//   - On PostgreSQL intake and the worker never touch the chain head; the
//     sealer (store.SealAudit, run every second by the service) takes
//     unsealed events in id order and appends their records.
//   - Service-level records (pause/resume, maintenance windows, cleanups)
//     are appended straight into the chain (store.AppendAudit).
//   - Cleanup deletes a prefix of the chain behind a Checkpoint that keeps
//     the hash of the last deleted record, so Verify still starts from a
//     known hash.
package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"time"
)

// GenesisHash is the PrevHash of the first record of a chain that has
// never been cleaned up: 64 zeros.
const GenesisHash = "0000000000000000000000000000000000000000000000000000000000000000"

// Version names the canonical encoding; it is the first netstring hashed.
const Version = "remediator-audit-v1"

// Target is the workload a record is about.
type Target struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

// Record is one entry of the audit chain.
type Record struct {
	Seq           int64           `json:"seq"`     // position in the chain: 1, 2, 3, … without gaps
	EventID       int64           `json:"eventId"` // the timeline event; 0 for a service-level record
	Time          time.Time       `json:"time"`    // when it happened (the event's time), UTC, µs
	IncidentID    string          `json:"incidentId"`
	CorrelationID string          `json:"correlationId"`
	AlertName     string          `json:"alertname"`
	Fingerprint   string          `json:"fingerprint"`
	Namespace     string          `json:"namespace"` // the incident's namespace label
	Target        Target          `json:"target"`
	Priority      string          `json:"priority"`
	Type          string          `json:"type"` // the event type
	Action        string          `json:"action"`
	Mode          string          `json:"mode"`
	Outcome       string          `json:"outcome"`
	Reason        string          `json:"reason"`
	Actor         string          `json:"actor"`
	Details       json.RawMessage `json:"details"`
	PrevHash      string          `json:"prevHash"`
	Hash          string          `json:"hash"`
}

// Checkpoint is written by a cleanup: the chain's prefix up to and
// including Seq was deleted, and Hash is the hash of record Seq, which the
// next record's PrevHash must equal.
type Checkpoint struct {
	Seq     int64     `json:"seq"`
	Hash    string    `json:"hash"`
	Deleted int64     `json:"deleted"` // records this cleanup deleted
	Before  time.Time `json:"before"`  // the cutoff: records older than this were eligible
	Time    time.Time `json:"time"`
	Actor   string    `json:"actor"`
}

// State is what the store knows about its chain.
type State struct {
	HeadSeq  int64  `json:"headSeq"`  // the last record's seq (0: none yet)
	HeadHash string `json:"headHash"` // its hash (GenesisHash: none yet)
	// Checkpoint is the latest cleanup's checkpoint, nil when there was none.
	Checkpoint *Checkpoint `json:"checkpoint,omitempty"`
	// Unsealed counts events not sealed yet (the ≈1 s window). On
	// PostgreSQL: the events above the newest sealed one.
	Unsealed int64 `json:"unsealed"`
	// SealedThrough is the sealer's low-water mark: every event with an
	// id up to it is sealed. (On PostgreSQL it trails the newest sealed
	// event by a few seconds; see internal/store/postgres/audit.go.)
	SealedThrough int64 `json:"sealedThrough"`
}

// Canonical returns the canonical encoding of r that Hash covers: the
// netstrings ("<decimal length>:<bytes>,") of Version and then, in this
// order, seq, event id (decimal), time (RFC 3339, UTC, exactly six
// fractional digits), incident id, correlation id, alertname, fingerprint,
// namespace, target kind, target namespace, target name, priority, type,
// action, mode, outcome, reason, actor, details (the JSON bytes as stored;
// empty when none) and prev hash. r.Hash itself is not covered.
func Canonical(r *Record) []byte { return AppendCanonical(nil, r) }

// AppendCanonical appends Canonical(r) to b.
func AppendCanonical(b []byte, r *Record) []byte {
	var num [24]byte
	b = netstring(b, Version)
	b = netbytes(b, strconv.AppendInt(num[:0], r.Seq, 10))
	b = netbytes(b, strconv.AppendInt(num[:0], r.EventID, 10))
	var ts [32]byte
	b = netbytes(b, appendTime(ts[:0], r.Time))
	for _, s := range [...]string{r.IncidentID, r.CorrelationID, r.AlertName, r.Fingerprint, r.Namespace,
		r.Target.Kind, r.Target.Namespace, r.Target.Name, r.Priority, r.Type, r.Action, r.Mode, r.Outcome,
		r.Reason, r.Actor} {
		b = netstring(b, s)
	}
	b = netbytes(b, r.Details)
	return netstring(b, r.PrevHash)
}

// TimeFormat is how times are written in the canonical encoding and in
// exports: UTC, microseconds.
const TimeFormat = "2006-01-02T15:04:05.000000Z"

func netstring(b []byte, s string) []byte {
	b = strconv.AppendInt(b, int64(len(s)), 10)
	b = append(b, ':')
	b = append(b, s...)
	return append(b, ',')
}

func netbytes(b, s []byte) []byte {
	b = strconv.AppendInt(b, int64(len(s)), 10)
	b = append(b, ':')
	b = append(b, s...)
	return append(b, ',')
}

// Hasher computes record hashes, reusing its buffer.
type Hasher struct{ buf []byte }

// Hash returns the lowercase hex SHA-256 of Canonical(r), and the length
// of the encoding (the record's size in the stats).
func (h *Hasher) Hash(r *Record) (string, int) {
	h.buf = AppendCanonical(h.buf[:0], r)
	sum := sha256.Sum256(h.buf)
	return hex.EncodeToString(sum[:]), len(h.buf)
}

// Hash returns the hash of r as the chain stores it.
func Hash(r *Record) string {
	var h Hasher
	s, _ := h.Hash(r)
	return s
}

// Chain continues a chain whose last record has seq headSeq and hash
// headHash with recs, in order: it sets each record's Seq, PrevHash and
// Hash and returns the new head and the canonical size of each record.
func Chain(headSeq int64, headHash string, recs []Record) (int64, string, []int) {
	var h Hasher
	sizes := make([]int, len(recs))
	for i := range recs {
		headSeq++
		recs[i].Seq, recs[i].PrevHash = headSeq, headHash
		recs[i].Hash, sizes[i] = h.Hash(&recs[i])
		headHash = recs[i].Hash
	}
	return headSeq, headHash, sizes
}

// Derived are the record columns read from an event's details.
type Derived struct {
	Target   Target
	Priority string
	Action   string
	Mode     string
	Outcome  string
}

// outcomes normalises event types into outcomes. Types not listed are
// their own outcome (so a new event type is never lost).
var outcomes = map[string]string{
	// steps that record what was seen or decided, not a result
	"received":  "recorded",
	"duplicate": "recorded",
	"resolved":  "recorded",
	"matched":   "recorded",
	"diagnosed": "recorded",
	// the execution ledger
	"intent":                        "pending",
	"rollout-complete":              "rolled-out",
	"duplicate-execution-prevented": "prevented",
}

// Derive maps an event's type and details (JSON, may be empty or invalid)
// to the record's target, priority, action, mode and outcome. It is the
// one place that knows where the stages put these in their details:
//
//	target   details.target {kind,namespace,name}, else details.change.target
//	action   details.action, else details.change.action, else details.decision.action
//	priority details.priority, else details.decision.priority
//	mode     details.mode
//	outcome  the event type, normalised: received, duplicate, resolved,
//	         matched, diagnosed → "recorded"; intent → "pending";
//	         rollout-complete → "rolled-out"; duplicate-execution-prevented
//	         → "prevented"; every other type (applied, failed, verified,
//	         ineffective, blocked, proposed, escalated, approved, rejected,
//	         expired, cancelled, unmatched, planned, reconciled, service-level
//	         types, …) is its own outcome.
//
// Values of the wrong JSON type are ignored, never an error: the record
// keeps the details verbatim either way.
func Derive(eventType string, details []byte) Derived {
	d := Derived{Outcome: eventType}
	if o, ok := outcomes[eventType]; ok {
		d.Outcome = o
	}
	details = bytes.TrimSpace(details)
	if len(details) == 0 || details[0] != '{' {
		return d
	}
	var top struct {
		Action   json.RawMessage `json:"action"`
		Mode     json.RawMessage `json:"mode"`
		Priority json.RawMessage `json:"priority"`
		Target   json.RawMessage `json:"target"`
		Change   json.RawMessage `json:"change"`
		Decision json.RawMessage `json:"decision"`
	}
	if json.Unmarshal(details, &top) != nil {
		return d
	}
	var change, decision struct {
		Action   json.RawMessage `json:"action"`
		Priority json.RawMessage `json:"priority"`
		Target   json.RawMessage `json:"target"`
	}
	object(top.Change, &change)
	object(top.Decision, &decision)
	d.Action = firstString(top.Action, change.Action, decision.Action)
	d.Mode = firstString(top.Mode)
	d.Priority = firstString(top.Priority, decision.Priority)
	if t, ok := target(top.Target); ok {
		d.Target = t
	} else if t, ok := target(change.Target); ok {
		d.Target = t
	}
	return d
}

func object(raw json.RawMessage, v any) {
	if len(raw) > 0 && raw[0] == '{' {
		_ = json.Unmarshal(raw, v)
	}
}

// firstString returns the first of raws that is a non-empty JSON string.
func firstString(raws ...json.RawMessage) string {
	for _, raw := range raws {
		if len(raw) == 0 || raw[0] != '"' {
			continue
		}
		var s string
		if json.Unmarshal(raw, &s) == nil && s != "" {
			return s
		}
	}
	return ""
}

func target(raw json.RawMessage) (Target, bool) {
	if len(raw) == 0 || raw[0] != '{' {
		return Target{}, false
	}
	var t struct{ Kind, Namespace, Name json.RawMessage }
	if json.Unmarshal(raw, &t) != nil {
		return Target{}, false
	}
	out := Target{Kind: firstString(t.Kind), Namespace: firstString(t.Namespace), Name: firstString(t.Name)}
	return out, out != Target{}
}

// EventRecord builds the record of a timeline event (without Seq,
// PrevHash and Hash, which Chain sets): the event's own fields, the
// incident's alertname, fingerprint and namespace, and the Derived
// columns. A zero EventID or empty IncidentID makes a service-level record.
func EventRecord(eventID int64, at time.Time, incidentID, correlationID, alertName, fingerprint, namespace,
	typ, actor, reason string, details []byte) Record {
	d := Derive(typ, details)
	var det json.RawMessage
	if len(details) > 0 {
		det = append(json.RawMessage(nil), details...)
	}
	return Record{
		EventID: eventID, Time: at.UTC().Truncate(time.Microsecond), IncidentID: incidentID,
		CorrelationID: correlationID, AlertName: alertName, Fingerprint: fingerprint, Namespace: namespace,
		Target: d.Target, Priority: d.Priority, Type: typ, Action: d.Action, Mode: d.Mode, Outcome: d.Outcome,
		Reason: reason, Actor: actor, Details: det,
	}
}

// Dimensions the stats count records by.
const (
	DimTotal     = "total"
	DimType      = "type"
	DimAction    = "action"
	DimOutcome   = "outcome"
	DimAlertName = "alertname"
	DimPriority  = "priority"
)

// StatKey is one counter of the stats aggregate.
type StatKey struct{ Dim, Key string }

// StatDelta is a change to the aggregate: records and bytes per key.
type StatDelta map[StatKey][2]int64

// Add counts one record of size bytes (or removes it, with n = -1).
func (d StatDelta) Add(r *Record, size int, n int64) {
	d.AddKeys(r.Type, r.Action, r.Outcome, r.AlertName, r.Priority, int64(size)*n, n)
}

// AddKeys counts n records of the given column values and bytes in total.
func (d StatDelta) AddKeys(typ, action, outcome, alertname, priority string, bytes, n int64) {
	for _, k := range [...]StatKey{{DimTotal, ""}, {DimType, typ}, {DimAction, action}, {DimOutcome, outcome},
		{DimAlertName, alertname}, {DimPriority, priority}} {
		v := d[k]
		v[0] += n
		v[1] += bytes
		d[k] = v
	}
}

// Stats summarise the trail (GET /audit/stats).
type Stats struct {
	Records int64 `json:"records"`
	// Bytes is the total size of the records' canonical encodings, the
	// trail's logical size (indexes and page overhead not included).
	Bytes       int64            `json:"bytes"`
	Oldest      *time.Time       `json:"oldest"`
	Newest      *time.Time       `json:"newest"`
	ByType      map[string]int64 `json:"byType"`
	ByAction    map[string]int64 `json:"byAction"`
	ByOutcome   map[string]int64 `json:"byOutcome"`
	ByAlertName map[string]int64 `json:"byAlertname"`
	ByPriority  map[string]int64 `json:"byPriority"`
	State
}

// NewStats returns Stats with empty maps.
func NewStats() Stats {
	return Stats{ByType: map[string]int64{}, ByAction: map[string]int64{}, ByOutcome: map[string]int64{},
		ByAlertName: map[string]int64{}, ByPriority: map[string]int64{}}
}

// Set stores one aggregate row. Rows with no records are skipped.
func (s *Stats) Set(dim, key string, records, bytes int64) {
	if records == 0 {
		return
	}
	switch dim {
	case DimTotal:
		s.Records, s.Bytes = records, bytes
	case DimType:
		s.ByType[key] = records
	case DimAction:
		s.ByAction[key] = records
	case DimOutcome:
		s.ByOutcome[key] = records
	case DimAlertName:
		s.ByAlertName[key] = records
	case DimPriority:
		s.ByPriority[key] = records
	}
}

// Filter selects records to scan.
type Filter struct {
	// AfterSeq selects records with Seq > AfterSeq.
	AfterSeq int64
	// Since and Until select Since <= Time < Until; zero means unbounded.
	Since, Until time.Time
	// AlertName selects one alertname; "" means any.
	AlertName string
	// ByTime orders by (Time, Seq) instead of by Seq.
	ByTime bool
}

// CleanupResult is what a cleanup did.
type CleanupResult struct {
	Deleted    int64       `json:"deleted"`
	Before     time.Time   `json:"before"`
	Checkpoint *Checkpoint `json:"checkpoint,omitempty"` // nil when nothing was deleted
}

// Service-level record types the service appends itself.
const (
	TypeCleanup = "audit-cleanup"
)
