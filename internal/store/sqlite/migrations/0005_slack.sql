-- Slack notifications (internal/slack). Times are INTEGER microseconds
-- since the Unix epoch, UTC. No FOREIGN KEY on incident_id, as for
-- executions: SQLite would check this table for every ingested alert.

-- The root message of each incident in each channel it was routed to.
CREATE TABLE slack_threads (
    incident_id TEXT    NOT NULL,
    channel     TEXT    NOT NULL, -- as routed: a name (#incidents) or an id
    channel_id  TEXT    NOT NULL, -- as Slack answered: chat.update needs it
    root_ts     TEXT    NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (incident_id, channel)
) WITHOUT ROWID;

-- Signatures of interaction requests seen in the last minutes: a request
-- whose signature is here is a replay.
CREATE TABLE slack_signatures (
    signature  TEXT    PRIMARY KEY,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX slack_signatures_expiry ON slack_signatures (expires_at);

-- How far each notification feed (internal/slack Feed) has read the audit
-- trail: the seq of the last record it handled. Notifications follow the
-- trail from here after a restart or a change of leader.
CREATE TABLE notify_cursors (
    name       TEXT    PRIMARY KEY, -- the feed, e.g. slack
    seq        INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;
