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
