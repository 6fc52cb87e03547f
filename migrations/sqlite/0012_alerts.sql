-- Alerts on the pipeline's health: one alert of each kind per account, its thresholds and where it notifies, the
-- state it stands in (ok or firing, acknowledged, silenced), the history of its transitions, and the signals a
-- node raises about itself (its realtime relay down).

CREATE TABLE alerts (
    id               TEXT PRIMARY KEY,              -- UUIDv7
    account          TEXT NOT NULL,
    kind             TEXT NOT NULL,                 -- failure_rate, exhausted_retries, queue_age, ... (server/src/alerts)
    enabled          INTEGER NOT NULL DEFAULT 1,
    settings         TEXT NOT NULL,                 -- JSON: the kind's thresholds
    destination_ids  TEXT NOT NULL DEFAULT '[]',    -- JSON array: where transitions are sent
    renotify_minutes INTEGER NOT NULL,              -- while firing, notify again after this long; 0: never
    state            TEXT NOT NULL DEFAULT 'ok' CHECK (state IN ('ok', 'firing')),
    summary          TEXT,                          -- what the last reading said
    firing_since     INTEGER,
    last_notified_at INTEGER,
    acknowledged_at  INTEGER,                       -- until it resolves: no more notifications, no banner
    acknowledged_by  TEXT,
    silenced_until   INTEGER,                       -- no notifications before then
    version          INTEGER NOT NULL DEFAULT 0,    -- bumped by every change: two nodes never both apply a step
    updated_at       INTEGER NOT NULL,
    UNIQUE (account, kind)
);

-- Every transition of every alert, and what users did to them.
CREATE TABLE alert_history (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id   TEXT NOT NULL,
    account    TEXT NOT NULL,
    kind       TEXT NOT NULL,
    transition TEXT NOT NULL
               CHECK (transition IN ('fired', 'renotified', 'resolved', 'acknowledged', 'silenced', 'unsilenced')),
    summary    TEXT NOT NULL,
    notified   INTEGER NOT NULL,                    -- whether a message went to the alert's destinations
    actor      TEXT,                                -- who acknowledged or silenced it
    at         INTEGER NOT NULL
);
CREATE INDEX alert_history_account ON alert_history (account, id DESC);
CREATE INDEX alert_history_at ON alert_history (at);

-- What a node reports about itself while it lasts (`relay_down`), refreshed each evaluation; a row that is not
-- refreshed (its node stopped) stops counting.
CREATE TABLE node_signals (
    node    TEXT NOT NULL,
    signal  TEXT NOT NULL,
    since   INTEGER NOT NULL,
    seen_at INTEGER NOT NULL,
    detail  TEXT NOT NULL,
    PRIMARY KEY (node, signal)
);

-- The failure-rate alert reads the attempts of the last minutes.
CREATE INDEX event_attempts_finished ON event_attempts (finished_at);
