-- Guarded remediation: job references and scheduling, the execution ledger,
-- proposals, the pause switch and maintenance windows.

-- What a job is about (an execution or a proposal id); '' for the jobs
-- intake enqueues. jobs.not_before already schedules a job. (A constant
-- default: no table rewrite.)
ALTER TABLE jobs ADD COLUMN ref text NOT NULL DEFAULT '';
-- Never two jobs of one incident leased at once, even when two replicas'
-- claims race. Intake only inserts pending jobs, which this index skips.
CREATE UNIQUE INDEX jobs_one_leased ON jobs (incident_id) WHERE state = 'leased';

-- The intent/outcome ledger. A row is written (state intent) before its
-- change is applied. Like events and jobs, incident_id has no FOREIGN
-- KEY (its triggers would tax every ingested alert's upsert); the store
-- writes executions only for incidents it has locked.
-- change and plan are json, not jsonb: kept byte for byte.
CREATE TABLE executions (
    id          text        PRIMARY KEY,
    incident_id text        NOT NULL,
    step        integer     NOT NULL,
    policy      text        NOT NULL DEFAULT '',
    remedy      text        NOT NULL DEFAULT '',
    action      text        NOT NULL DEFAULT '',
    namespace   text        NOT NULL DEFAULT '',
    kind        text        NOT NULL DEFAULT '',
    name        text        NOT NULL DEFAULT '',
    mode        text        NOT NULL DEFAULT '',
    change      json,
    state       text        NOT NULL CHECK (state IN ('intent', 'applied', 'verified', 'failed', 'ineffective', 'abandoned')),
    reason      text        NOT NULL DEFAULT '',
    owner       text        NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    applied_at  timestamptz
);
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
    id          text        PRIMARY KEY,
    incident_id text        NOT NULL,
    step        integer     NOT NULL,
    policy      text        NOT NULL DEFAULT '',
    remedy      text        NOT NULL DEFAULT '',
    action      text        NOT NULL DEFAULT '',
    namespace   text        NOT NULL DEFAULT '',
    kind        text        NOT NULL DEFAULT '',
    name        text        NOT NULL DEFAULT '',
    plan        json,
    state       text        NOT NULL CHECK (state IN ('pending', 'approved', 'rejected', 'expired')),
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    decided_by  text        NOT NULL DEFAULT '',
    reason      text        NOT NULL DEFAULT '',
    decided_at  timestamptz,
    UNIQUE (incident_id, step)
);
CREATE INDEX proposals_state ON proposals (state, expires_at);

-- The global pause switch: one row, always present.
CREATE TABLE pause_state (
    id        integer     PRIMARY KEY CHECK (id = 1),
    paused    boolean     NOT NULL,
    paused_by text        NOT NULL DEFAULT '',
    reason    text        NOT NULL DEFAULT '',
    at        timestamptz
);
INSERT INTO pause_state (id, paused) VALUES (1, false);

-- Ad-hoc maintenance windows; empty namespaces means all.
CREATE TABLE maintenance_windows (
    id         text        PRIMARY KEY,
    start_at   timestamptz NOT NULL,
    end_at     timestamptz NOT NULL,
    namespaces text[]      NOT NULL DEFAULT '{}',
    reason     text        NOT NULL DEFAULT '',
    created_by text        NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL,
    CHECK (end_at > start_at)
);
CREATE INDEX maintenance_windows_end ON maintenance_windows (end_at);
