-- Escalation: an incident's priority (only ever raised), its
-- acknowledgement and escalation state; the escalations, each recorded once
-- per cause; the outbox of notifications waiting for delivery.

-- Constant defaults: no table rewrite.
ALTER TABLE incidents
    ADD COLUMN priority           text NOT NULL DEFAULT '' CHECK (priority IN ('', 'P0', 'P1', 'P2', 'P3')),
    ADD COLUMN priority_since     timestamptz,
    ADD COLUMN escalation_level   integer NOT NULL DEFAULT 0,
    ADD COLUMN escalation_count   integer NOT NULL DEFAULT 0,
    ADD COLUMN escalated_priority text NOT NULL DEFAULT '',
    ADD COLUMN last_escalated_at  timestamptz,
    ADD COLUMN acknowledged_at    timestamptz,
    ADD COLUMN acknowledged_by    text NOT NULL DEFAULT '',
    ADD COLUMN ack_reason         text NOT NULL DEFAULT '';
-- remediator_incidents_open{priority} counts this index at scrape time.
CREATE INDEX incidents_firing_priority ON incidents (priority) WHERE status = 'firing';

-- One row per hand-over to people. (incident_id, dedup_key) is unique: a
-- deadline fires once, a job that runs twice escalates once.
CREATE TABLE escalations (
    id          text        PRIMARY KEY,
    incident_id text        NOT NULL,
    dedup_key   text        NOT NULL,
    priority    text        NOT NULL,
    reason      text        NOT NULL DEFAULT '',
    level       integer     NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL,
    UNIQUE (incident_id, dedup_key)
);

-- Notifications to deliver, one per target and channel, written in the
-- transaction of their escalation and leased by the delivery loop.
CREATE TABLE outbox (
    id            bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    incident_id   text        NOT NULL,
    escalation_id text        NOT NULL,
    channel       text        NOT NULL,
    target        text        NOT NULL,
    destination   text        NOT NULL DEFAULT '',
    payload       json        NOT NULL, -- json, not jsonb: sent byte for byte
    state         text        NOT NULL CHECK (state IN ('pending', 'leased', 'sent', 'failed')),
    attempts      integer     NOT NULL DEFAULT 0,
    not_before    timestamptz NOT NULL,
    lease_owner   text,
    lease_until   timestamptz,
    last_error    text        NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL,
    done_at       timestamptz
);
CREATE INDEX outbox_open ON outbox (id) WHERE state IN ('pending', 'leased');
CREATE INDEX outbox_incident ON outbox (incident_id, id);
