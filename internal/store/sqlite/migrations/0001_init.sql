-- Times are INTEGER microseconds since the Unix epoch, UTC.

CREATE TABLE notifications (
    id             TEXT    PRIMARY KEY,
    received_at    INTEGER NOT NULL,
    correlation_id TEXT    NOT NULL DEFAULT '',
    receiver       TEXT    NOT NULL DEFAULT '',
    group_key      TEXT    NOT NULL DEFAULT '',
    status         TEXT    NOT NULL DEFAULT '',
    reason         TEXT    NOT NULL DEFAULT '',
    external_url   TEXT    NOT NULL DEFAULT '',
    alert_count    INTEGER NOT NULL DEFAULT 0,
    body           BLOB
);
CREATE INDEX notifications_received_at ON notifications (received_at);

CREATE TABLE incidents (
    id            TEXT    PRIMARY KEY,
    fingerprint   TEXT    NOT NULL,
    starts_at     INTEGER NOT NULL,
    alertname     TEXT    NOT NULL DEFAULT '',
    namespace     TEXT    NOT NULL DEFAULT '',
    status        TEXT    NOT NULL CHECK (status IN ('firing', 'resolved')),
    labels        TEXT    NOT NULL DEFAULT '{}',
    annotations   TEXT    NOT NULL DEFAULT '{}',
    generator_url TEXT    NOT NULL DEFAULT '',
    first_seen    INTEGER NOT NULL,
    last_seen     INTEGER NOT NULL,
    resolved_at   INTEGER,
    resolved_by   TEXT,
    receipts      INTEGER NOT NULL DEFAULT 1,
    duplicates    INTEGER NOT NULL DEFAULT 0,
    UNIQUE (fingerprint, starts_at)
) WITHOUT ROWID;
-- Listing is newest first; a status or alertname filter walks this index.
CREATE INDEX incidents_first_seen ON incidents (first_seen DESC, id DESC);

-- The timeline. Append-only: it becomes the hash-chained audit trail. Rows
-- are never deleted, so INTEGER PRIMARY KEY ids only grow (no AUTOINCREMENT
-- bookkeeping needed), and id order is time order.
CREATE TABLE events (
    id              INTEGER PRIMARY KEY,
    incident_id     TEXT    NOT NULL REFERENCES incidents (id),
    occurred_at     INTEGER NOT NULL,
    type            TEXT    NOT NULL,
    notification_id TEXT    NOT NULL DEFAULT '',
    correlation_id  TEXT    NOT NULL DEFAULT '',
    actor           TEXT    NOT NULL,
    reason          TEXT    NOT NULL DEFAULT '',
    details         TEXT
);
CREATE INDEX events_incident ON events (incident_id, id);

CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'events are append-only');
END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN
    SELECT RAISE(ABORT, 'events are append-only');
END;

CREATE TABLE jobs (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id     TEXT    NOT NULL REFERENCES incidents (id),
    kind            TEXT    NOT NULL,
    notification_id TEXT    NOT NULL DEFAULT '',
    correlation_id  TEXT    NOT NULL DEFAULT '',
    state           TEXT    NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'leased', 'done')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    lease_owner     TEXT,
    lease_until     INTEGER,
    not_before      INTEGER NOT NULL,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    done_at         INTEGER
);
CREATE INDEX jobs_open ON jobs (id) WHERE state <> 'done';
CREATE INDEX jobs_incident_open ON jobs (incident_id, id) WHERE state <> 'done';
