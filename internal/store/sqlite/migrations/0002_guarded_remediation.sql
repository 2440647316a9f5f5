-- Guarded remediation: job references and scheduling, the execution ledger,
-- proposals, the pause switch and maintenance windows.
-- Times are INTEGER microseconds since the Unix epoch, UTC.

-- What a job is about (an execution or a proposal id); '' for the jobs
-- intake enqueues. jobs.not_before already schedules a job.
ALTER TABLE jobs ADD COLUMN ref TEXT NOT NULL DEFAULT '';
-- Never two jobs of one incident leased at once, whatever the claim query
-- says. Intake only inserts pending jobs, which this index skips.
CREATE UNIQUE INDEX jobs_one_leased ON jobs (incident_id) WHERE state = 'leased';

-- The intent/outcome ledger. A row is written (state intent) before its
-- change is applied.
-- executions and proposals have no FOREIGN KEY on incident_id: SQLite checks
-- every child table of incidents for each incident a multi-row ingest
-- inserts. The store writes them only after reading the incident in the
-- same (write) transaction.
CREATE TABLE executions (
    id          TEXT    PRIMARY KEY,
    incident_id TEXT    NOT NULL,
    step        INTEGER NOT NULL,
    policy      TEXT    NOT NULL DEFAULT '',
    remedy      TEXT    NOT NULL DEFAULT '',
    action      TEXT    NOT NULL DEFAULT '',
    namespace   TEXT    NOT NULL DEFAULT '',
    kind        TEXT    NOT NULL DEFAULT '',
    name        TEXT    NOT NULL DEFAULT '',
    mode        TEXT    NOT NULL DEFAULT '',
    change      TEXT,
    state       TEXT    NOT NULL CHECK (state IN ('intent', 'applied', 'verified', 'failed', 'ineffective', 'abandoned')),
    reason      TEXT    NOT NULL DEFAULT '',
    owner       TEXT    NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    applied_at  INTEGER
) WITHOUT ROWID;
-- Each rung runs at most once: one execution per (incident, step) that may
-- have reached the cluster. An abandoned intent (reconciled: its change
-- never landed) frees its rung, so the step can be decided again.
CREATE UNIQUE INDEX executions_step ON executions (incident_id, step) WHERE state <> 'abandoned';
CREATE INDEX executions_incident ON executions (incident_id, created_at);
-- Guards: a target's in-flight and recent executions.
CREATE INDEX executions_target ON executions (kind, namespace, name, created_at);
-- Guards: executions of the last hour on any target.
CREATE INDEX executions_created ON executions (created_at);
-- Reconciliation: executions by state (intents without outcome).
CREATE INDEX executions_state ON executions (state, created_at);

-- Changes waiting for a person's approval.
CREATE TABLE proposals (
    id          TEXT    PRIMARY KEY,
    incident_id TEXT    NOT NULL,
    step        INTEGER NOT NULL,
    policy      TEXT    NOT NULL DEFAULT '',
    remedy      TEXT    NOT NULL DEFAULT '',
    action      TEXT    NOT NULL DEFAULT '',
    namespace   TEXT    NOT NULL DEFAULT '',
    kind        TEXT    NOT NULL DEFAULT '',
    name        TEXT    NOT NULL DEFAULT '',
    plan        TEXT,
    state       TEXT    NOT NULL CHECK (state IN ('pending', 'approved', 'rejected', 'expired')),
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    decided_by  TEXT    NOT NULL DEFAULT '',
    reason      TEXT    NOT NULL DEFAULT '',
    decided_at  INTEGER,
    UNIQUE (incident_id, step)
) WITHOUT ROWID;
CREATE INDEX proposals_state ON proposals (state, expires_at);

-- The global pause switch: one row, always present.
CREATE TABLE pause_state (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    paused    INTEGER NOT NULL CHECK (paused IN (0, 1)),
    paused_by TEXT    NOT NULL DEFAULT '',
    reason    TEXT    NOT NULL DEFAULT '',
    at        INTEGER
);
INSERT INTO pause_state (id, paused) VALUES (1, 0);

-- Ad-hoc maintenance windows. namespaces is a JSON array; [] means all.
CREATE TABLE maintenance_windows (
    id         TEXT    PRIMARY KEY,
    start_at   INTEGER NOT NULL,
    end_at     INTEGER NOT NULL,
    namespaces TEXT    NOT NULL DEFAULT '[]',
    reason     TEXT    NOT NULL DEFAULT '',
    created_by TEXT    NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    CHECK (end_at > start_at)
) WITHOUT ROWID;
CREATE INDEX maintenance_windows_end ON maintenance_windows (end_at);
