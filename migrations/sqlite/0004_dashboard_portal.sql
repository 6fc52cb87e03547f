-- The dashboard's processing-time views, and the client portal's one-time links and sessions.

CREATE INDEX webhook_events_processed ON webhook_events (processed_at);

-- A portal link carries a one-time token; only its SHA-256 is stored.
CREATE TABLE portal_links (
    token_hash   TEXT PRIMARY KEY,
    company_uuid TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    used_at      INTEGER
);

CREATE TABLE portal_sessions (
    token_hash   TEXT PRIMARY KEY,
    company_uuid TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL
);
