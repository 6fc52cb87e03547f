-- Rules and where they send what they make of events: an account's destinations (a webhook URL, a Slack channel,
-- email, SMS), its rules in order, and every delivery of a message to a destination with its attempts.

-- A place to send messages, named in rules by its name.
CREATE TABLE destinations (
    id                   TEXT PRIMARY KEY,          -- UUIDv7
    account              TEXT NOT NULL,
    name                 TEXT NOT NULL,             -- what rules call it: one per name in an account
    kind                 TEXT NOT NULL CHECK (kind IN ('webhook', 'slack', 'email', 'sms')),
    settings             TEXT NOT NULL,             -- JSON of what is not secret: URL, channel, addresses
    sealed_secrets       TEXT,                      -- signing secret, tokens, passwords (destinations:{id}:secrets)
    paused_at            INTEGER,                   -- paused by a user: nothing is sent until resumed
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    circuit_opened_at    INTEGER,                   -- too many failures in a row: nothing is sent for a while
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL,
    UNIQUE (account, name)
);

-- An account's rules, applied to each event in position order.
CREATE TABLE rules (
    id         TEXT PRIMARY KEY,                    -- UUIDv7
    account    TEXT NOT NULL,
    position   INTEGER NOT NULL,
    enabled    INTEGER NOT NULL DEFAULT 1,
    definition TEXT NOT NULL,                       -- the rule as JSON (server/src/rules: `Rule`)
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX rules_account ON rules (account, position);

-- One message for one destination, queued until a worker delivers it or gives up. A delivery outlives its
-- destination and its rule, so that the history stays readable.
CREATE TABLE deliveries (
    id              TEXT PRIMARY KEY,               -- UUIDv7; also the webhook-id receivers deduplicate on
    account         TEXT NOT NULL,
    destination_id  TEXT NOT NULL,
    event_id        TEXT,
    rule_id         TEXT,
    rule_name       TEXT,                           -- as it was when the rule made the message
    dedup_key       TEXT,                           -- processing an event again enqueues nothing new
    message         TEXT NOT NULL,                  -- JSON
    status          TEXT NOT NULL CHECK (status IN ('queued', 'delivering', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,     -- since it was enqueued or last retried by hand
    next_attempt_at INTEGER NOT NULL,
    lease_owner     TEXT,                           -- the worker delivering it
    lease_until     INTEGER,
    claimed_at      INTEGER,                        -- when the attempt in hand began
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    finished_at     INTEGER,
    UNIQUE (account, dedup_key)
);
CREATE INDEX deliveries_due ON deliveries (status, next_attempt_at);
CREATE INDEX deliveries_leases ON deliveries (status, lease_until);
CREATE INDEX deliveries_account ON deliveries (account, created_at DESC, id DESC);
CREATE INDEX deliveries_destination ON deliveries (destination_id, created_at DESC, id DESC);
CREATE INDEX deliveries_event ON deliveries (event_id);

-- Every attempt at a delivery, numbered as `deliveries.attempts` counts them.
CREATE TABLE delivery_attempts (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id      TEXT NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    attempt          INTEGER NOT NULL,
    started_at       INTEGER NOT NULL,
    duration_ms      INTEGER NOT NULL,
    http_status      INTEGER,
    response_excerpt TEXT,                          -- the start of the response, at most 4 KiB
    error            TEXT,
    outcome          TEXT NOT NULL CHECK (outcome IN ('delivered', 'retry', 'failed', 'interrupted'))
);
CREATE INDEX delivery_attempts_delivery ON delivery_attempts (delivery_id, id);
