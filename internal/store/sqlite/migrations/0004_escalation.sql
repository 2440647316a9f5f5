-- Escalation: an incident's priority (only ever raised), its
-- acknowledgement and escalation state; the escalations, each recorded once
-- per cause; the outbox of notifications waiting for delivery.
-- Times are INTEGER microseconds since the Unix epoch, UTC.

ALTER TABLE incidents ADD COLUMN priority TEXT NOT NULL DEFAULT ''
    CHECK (priority IN ('', 'P0', 'P1', 'P2', 'P3'));
ALTER TABLE incidents ADD COLUMN priority_since INTEGER;
ALTER TABLE incidents ADD COLUMN escalation_level INTEGER NOT NULL DEFAULT 0;
ALTER TABLE incidents ADD COLUMN escalation_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE incidents ADD COLUMN escalated_priority TEXT NOT NULL DEFAULT '';
ALTER TABLE incidents ADD COLUMN last_escalated_at INTEGER;
ALTER TABLE incidents ADD COLUMN acknowledged_at INTEGER;
ALTER TABLE incidents ADD COLUMN acknowledged_by TEXT NOT NULL DEFAULT '';
ALTER TABLE incidents ADD COLUMN ack_reason TEXT NOT NULL DEFAULT '';
-- remediator_incidents_open{priority} counts this index at scrape time.
CREATE INDEX incidents_firing_priority ON incidents (priority) WHERE status = 'firing';

-- One row per hand-over to people. (incident_id, dedup_key) is unique: a
-- deadline fires once, a job that runs twice escalates once.
CREATE TABLE escalations (
    id          TEXT    PRIMARY KEY,
    incident_id TEXT    NOT NULL,
    dedup_key   TEXT    NOT NULL,
    priority    TEXT    NOT NULL,
    reason      TEXT    NOT NULL DEFAULT '',
    level       INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL,
    UNIQUE (incident_id, dedup_key)
) WITHOUT ROWID;

-- Notifications to deliver, one per target and channel, written in the
-- transaction of their escalation and leased by the delivery loop.
CREATE TABLE outbox (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id   TEXT    NOT NULL,
    escalation_id TEXT    NOT NULL,
    channel       TEXT    NOT NULL,
    target        TEXT    NOT NULL,
    destination   TEXT    NOT NULL DEFAULT '',
    payload       TEXT    NOT NULL,
    state         TEXT    NOT NULL CHECK (state IN ('pending', 'leased', 'sent', 'failed')),
    attempts      INTEGER NOT NULL DEFAULT 0,
    not_before    INTEGER NOT NULL,
    lease_owner   TEXT,
    lease_until   INTEGER,
    last_error    TEXT    NOT NULL DEFAULT '',
    created_at    INTEGER NOT NULL,
    done_at       INTEGER
);
CREATE INDEX outbox_open ON outbox (id) WHERE state IN ('pending', 'leased');
CREATE INDEX outbox_incident ON outbox (incident_id, id);
