-- Slack notifications (internal/slack). As for executions, incident_id
-- has no FOREIGN KEY.

-- The root message of each incident in each channel it was routed to.
CREATE TABLE slack_threads (
    incident_id text        NOT NULL,
    channel     text        NOT NULL, -- as routed: a name (#incidents) or an id
    channel_id  text        NOT NULL, -- as Slack answered: chat.update needs it
    root_ts     text        NOT NULL,
    updated_at  timestamptz NOT NULL,
    PRIMARY KEY (incident_id, channel)
);

-- Signatures of interaction requests seen in the last minutes: a request
-- whose signature is here is a replay. Shared by every replica.
CREATE TABLE slack_signatures (
    signature  text        PRIMARY KEY,
    expires_at timestamptz NOT NULL
);
CREATE INDEX slack_signatures_expiry ON slack_signatures (expires_at);

-- How far each notification feed (internal/slack Feed) has read the audit
-- trail: the seq of the last record it handled. Notifications follow the
-- trail from here after a restart or a change of leader.
CREATE TABLE notify_cursors (
    name       text        PRIMARY KEY, -- the feed, e.g. slack
    seq        bigint      NOT NULL,
    updated_at timestamptz NOT NULL
);
