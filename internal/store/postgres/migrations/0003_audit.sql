-- The audit trail: every timeline event becomes one record of a hash
-- chain, appended by the sealer (SealAudit) after the event committed, so
-- intake never waits on the chain head. Service-level records (event_id
-- NULL) are appended directly. Docs: docs/audit.md.

-- A record is kept as its canonical encoding (package audit: every field,
-- prev_hash included, as netstrings), next to the columns the sealer,
-- exports and the cleanup filter and order by, and its hash: an export
-- reads six columns per row and decodes the rest in Go. seq, event_id,
-- occurred_at and alertname are taken from these columns, not from the
-- body, when a record is read, so an edit of either no longer matches the
-- hash.
CREATE TABLE audit (
    seq         bigint      PRIMARY KEY,  -- gap-free chain order, assigned by the sealer
    event_id    bigint,                   -- events.id; NULL for a service-level record (also in body)
    occurred_at timestamptz NOT NULL,     -- the record's time (also in body)
    alertname   text        NOT NULL,     -- the incident's alertname (also in body)
    body        text        NOT NULL,     -- the canonical encoding; its length in bytes is the record's size in the stats
    hash        text        NOT NULL      -- SHA-256 of the canonical encoding
);
-- An event is sealed once; the sealer's "not sealed yet" anti-join probes this.
CREATE UNIQUE INDEX audit_event ON audit (event_id);
-- Export by date walks this index in order: no sort, constant memory.
CREATE INDEX audit_time ON audit (occurred_at, seq);

-- Append-only. Deleting is allowed only for records behind a checkpoint,
-- which only the cleanup writes (in the same transaction).
CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND TG_TABLE_NAME = 'audit'
       AND OLD.seq <= coalesce((SELECT max(seq) FROM audit_checkpoints), 0) THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION '% is append-only (records are deleted only by the cleanup, behind a checkpoint)', TG_TABLE_NAME;
END;
$$;
CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();

-- One row per cleanup chunk: the chain's prefix up to seq was deleted; hash
-- is record seq's hash, the next record's prev_hash.
CREATE TABLE audit_checkpoints (
    id      bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    seq     bigint      NOT NULL UNIQUE,
    hash    text        NOT NULL,
    deleted bigint      NOT NULL,
    cutoff  timestamptz NOT NULL,
    at      timestamptz NOT NULL,
    actor   text        NOT NULL DEFAULT ''
);
CREATE TRIGGER audit_checkpoints_append_only BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();

-- The sealer's state, one row. Event ids are not commit-ordered here, so:
-- every event with id <= low_water is sealed; cand_id is the low water to
-- be, promoted once every transaction that could still commit an id at or
-- below it has ended (the snapshot xmin passed cand_xmax, an xmax taken at
-- least a second after cand_id was chosen, at cand_at). head_* is the
-- chain's head.
CREATE TABLE audit_state (
    id        integer PRIMARY KEY CHECK (id = 1),
    low_water bigint  NOT NULL,
    cand_id   bigint  NOT NULL,
    cand_xmax bigint  NOT NULL,
    cand_at   timestamptz,
    head_seq  bigint  NOT NULL,
    head_hash text    NOT NULL
);
INSERT INTO audit_state (id, low_water, cand_id, cand_xmax, head_seq, head_hash)
    VALUES (1, 0, 0, 0, 0, '0000000000000000000000000000000000000000000000000000000000000000');

-- GET /audit/stats reads this instead of grouping the whole table: the
-- sealer adds each record here, the cleanup subtracts what it deletes.
-- dim: total (key ''), type, action, outcome, alertname, priority.
CREATE TABLE audit_stats (
    dim     text   NOT NULL,
    key     text   NOT NULL,
    records bigint NOT NULL,
    bytes   bigint NOT NULL,
    PRIMARY KEY (dim, key)
);
