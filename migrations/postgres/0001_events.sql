-- Webhook events, admin sessions and settings. Timestamps are unix milliseconds (UTC), as in the SQLite schema.

CREATE TABLE webhook_events (
    id              TEXT PRIMARY KEY,               -- UUIDv7: sorts by arrival
    dedup_key       TEXT NOT NULL UNIQUE,           -- a redelivery of the same change has the same key
    account         TEXT NOT NULL DEFAULT 'default',
    format          TEXT NOT NULL,
    object_type     TEXT NOT NULL,
    object_uuid     TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    occurred_at     BIGINT,
    changes         JSONB NOT NULL DEFAULT '{}',
    raw_body        BYTEA NOT NULL,
    headers         JSONB NOT NULL DEFAULT '{}',
    verification    TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'queued'
                    CHECK (status IN ('queued', 'processing', 'success', 'failed', 'skipped')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    locked_until    BIGINT,
    next_attempt_at BIGINT NOT NULL,
    last_error      TEXT,
    received_at     BIGINT NOT NULL,
    processed_at    BIGINT,
    updated_at      BIGINT NOT NULL
);

CREATE INDEX webhook_events_due ON webhook_events (status, next_attempt_at);
CREATE INDEX webhook_events_received ON webhook_events (received_at DESC, id DESC);
CREATE INDEX webhook_events_object ON webhook_events (object_type, object_uuid);

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE admin_sessions (
    token_hash TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
