-- The audit trail: every timeline event becomes one record of a hash
-- chain, appended by the sealer (SealAudit) after the event committed, so
-- intake never waits on the chain head. Service-level records (event id 0)
-- are appended directly. Docs: docs/audit.md.
-- Times are INTEGER microseconds since the Unix epoch, UTC.

-- A record is kept as its canonical encoding (package audit: every field,
-- prev_hash included, as netstrings), next to the columns exports filter
-- and order by and its hash: an export reads them (as two columns, see
-- auditColumns in audit.go) and decodes the rest in Go. seq, occurred_at
-- and alertname are taken from these columns, not from the body, when a
-- record is read, so an edit of either no longer matches the hash.
CREATE TABLE audit (
    seq         INTEGER PRIMARY KEY,  -- gap-free chain order, assigned by the sealer
    occurred_at INTEGER NOT NULL,     -- the record's time (also in body)
    alertname   TEXT    NOT NULL,     -- the incident's alertname (also in body)
    body        BLOB    NOT NULL,     -- the canonical encoding; its length is the record's size in the stats
    hash        TEXT    NOT NULL      -- SHA-256 of the canonical encoding
);
-- Export by date walks this index in order: no sort, constant memory.
CREATE INDEX audit_time ON audit (occurred_at, seq);

-- Append-only. Deleting is allowed only for records behind a checkpoint,
-- which only the cleanup writes (in the same transaction).
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN
    SELECT RAISE(ABORT, 'audit records are append-only');
END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
    WHEN OLD.seq > coalesce((SELECT max(seq) FROM audit_checkpoints), 0)
BEGIN
    SELECT RAISE(ABORT, 'audit records are deleted only by the cleanup, behind a checkpoint');
END;

-- One row per cleanup chunk: the chain's prefix up to seq was deleted; hash
-- is record seq's hash, the next record's prev_hash.
CREATE TABLE audit_checkpoints (
    id      INTEGER PRIMARY KEY,
    seq     INTEGER NOT NULL UNIQUE,
    hash    TEXT    NOT NULL,
    deleted INTEGER NOT NULL,
    cutoff  INTEGER NOT NULL,
    at      INTEGER NOT NULL,
    actor   TEXT    NOT NULL DEFAULT ''
);
CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
BEGIN
    SELECT RAISE(ABORT, 'audit checkpoints are append-only');
END;
CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
BEGIN
    SELECT RAISE(ABORT, 'audit checkpoints are append-only');
END;

-- The sealer's state, one row: every event with id <= low_water is sealed
-- (SQLite commits event ids in order, so this is the last sealed id), and
-- the chain's head.
CREATE TABLE audit_state (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    low_water INTEGER NOT NULL,
    head_seq  INTEGER NOT NULL,
    head_hash TEXT    NOT NULL
);
INSERT INTO audit_state (id, low_water, head_seq, head_hash)
    VALUES (1, 0, 0, '0000000000000000000000000000000000000000000000000000000000000000');

-- GET /audit/stats reads this instead of grouping the whole table: the
-- sealer adds each record here, the cleanup subtracts what it deletes.
-- dim: total (key ''), type, action, outcome, alertname, priority.
CREATE TABLE audit_stats (
    dim     TEXT    NOT NULL,
    key     TEXT    NOT NULL,
    records INTEGER NOT NULL,
    bytes   INTEGER NOT NULL,
    PRIMARY KEY (dim, key)
) WITHOUT ROWID;
