CREATE TABLE notifications (
    id             text        PRIMARY KEY,
    received_at    timestamptz NOT NULL,
    correlation_id text        NOT NULL DEFAULT '',
    receiver       text        NOT NULL DEFAULT '',
    group_key      text        NOT NULL DEFAULT '',
    status         text        NOT NULL DEFAULT '',
    reason         text        NOT NULL DEFAULT '',
    external_url   text        NOT NULL DEFAULT '',
    alert_count    integer     NOT NULL DEFAULT 0,
    body           bytea
);
CREATE INDEX notifications_received_at ON notifications (received_at);

CREATE TABLE incidents (
    id            text        PRIMARY KEY,
    fingerprint   text        NOT NULL,
    starts_at     timestamptz NOT NULL,
    alertname     text        NOT NULL DEFAULT '',
    namespace     text        NOT NULL DEFAULT '',
    status        text        NOT NULL CHECK (status IN ('firing', 'resolved')),
    labels        jsonb       NOT NULL DEFAULT '{}',
    annotations   jsonb       NOT NULL DEFAULT '{}',
    generator_url text        NOT NULL DEFAULT '',
    first_seen    timestamptz NOT NULL,
    last_seen     timestamptz NOT NULL,
    resolved_at   timestamptz,
    resolved_by   text,
    receipts      integer     NOT NULL DEFAULT 1,
    duplicates    integer     NOT NULL DEFAULT 0,
    UNIQUE (fingerprint, starts_at)
);
-- Listing is newest first; a status or alertname filter walks this index.
-- (Every index costs each ingested alert a btree insert.)
CREATE INDEX incidents_first_seen ON incidents (first_seen DESC, id DESC);

-- The timeline. Append-only: it becomes the hash-chained audit trail.
-- incident_id has no FOREIGN KEY: its per-row trigger doubled the cost of
-- ingest. Ingest writes events only for incidents it just upserted, and
-- AppendEvents inserts only rows whose incident exists.
CREATE TABLE events (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    incident_id     text        NOT NULL,
    occurred_at     timestamptz NOT NULL,
    type            text        NOT NULL,
    notification_id text        NOT NULL DEFAULT '',
    correlation_id  text        NOT NULL DEFAULT '',
    actor           text        NOT NULL,
    reason          text        NOT NULL DEFAULT '',
    details         jsonb
);
CREATE INDEX events_incident ON events (incident_id, id);

CREATE FUNCTION events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'events are append-only';
END;
$$;
CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_append_only();

-- Like events, jobs are only written for incidents that exist.
CREATE TABLE jobs (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    incident_id     text        NOT NULL,
    kind            text        NOT NULL,
    notification_id text        NOT NULL DEFAULT '',
    correlation_id  text        NOT NULL DEFAULT '',
    state           text        NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'leased', 'done')),
    attempts        integer     NOT NULL DEFAULT 0,
    lease_owner     text,
    lease_until     timestamptz,
    not_before      timestamptz NOT NULL,
    last_error      text,
    created_at      timestamptz NOT NULL,
    done_at         timestamptz
);
CREATE INDEX jobs_open ON jobs (id) WHERE state <> 'done';
CREATE INDEX jobs_incident_open ON jobs (incident_id, id) WHERE state <> 'done';
