-- Webhook events, admin sessions and settings. Timestamps are unix milliseconds (UTC).

CREATE TABLE webhook_events (
    id              TEXT PRIMARY KEY,               -- UUIDv7: sorts by arrival
    dedup_key       TEXT NOT NULL UNIQUE,           -- a redelivery of the same change has the same key
    account         TEXT NOT NULL DEFAULT 'default',
    format          TEXT NOT NULL,                  -- which delivery format it came in
    object_type     TEXT NOT NULL,                  -- canonical lowercase: job, company, jobactivity, ...
    object_uuid     TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    occurred_at     INTEGER,                        -- when ServiceM8 says the change happened
    changes         TEXT NOT NULL DEFAULT '{}',     -- JSON
    raw_body        BLOB NOT NULL,                  -- the delivery exactly as received
    headers         TEXT NOT NULL DEFAULT '{}',     -- JSON object of the delivery's headers
    verification    TEXT NOT NULL,                  -- how the delivery was authenticated
    status          TEXT NOT NULL DEFAULT 'queued'
                    CHECK (status IN ('queued', 'processing', 'success', 'failed', 'skipped')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    locked_until    INTEGER,                        -- lease of the worker processing it
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,
    received_at     INTEGER NOT NULL,
    processed_at    INTEGER,
    updated_at      INTEGER NOT NULL
);

CREATE INDEX webhook_events_due ON webhook_events (status, next_attempt_at);
CREATE INDEX webhook_events_received ON webhook_events (received_at DESC, id DESC);
CREATE INDEX webhook_events_object ON webhook_events (object_type, object_uuid);

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE admin_sessions (
    token_hash TEXT PRIMARY KEY,                    -- SHA-256 of the cookie value; the value itself is never stored
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
