-- Analytics: hourly and daily rollups of what the pipeline did, kept for ANALYTICS_RETENTION_DAYS whatever the
-- events' retention. A rollup pass (server/src/analytics) adds each window of finished events once, behind the
-- account's watermark; daily rows are recomputed from the hours.

-- Counts per bucket: events by object type or event type and outcome, error classes, deliveries by destination
-- and outcome, failing objects, and what nodes count in memory (API requests, duplicates, refused deliveries).
CREATE TABLE analytics_counts (
    account      TEXT NOT NULL,
    period       TEXT NOT NULL CHECK (period IN ('hour', 'day')),
    bucket_start INTEGER NOT NULL,                  -- unix ms, the start of the UTC hour or day
    dimension    TEXT NOT NULL,
    key          TEXT NOT NULL,
    outcome      TEXT NOT NULL DEFAULT '',          -- '' where the dimension has no outcome
    count        INTEGER NOT NULL,
    PRIMARY KEY (account, period, bucket_start, dimension, key, outcome)
);

-- Latency distributions per bucket as HdrHistogram V2 bytes, which merge exactly: one row per source (`events`
-- for processing latency; a node id for webhook-to-browser latency, which each node measures), merged on read.
CREATE TABLE analytics_latency (
    account      TEXT NOT NULL,
    period       TEXT NOT NULL CHECK (period IN ('hour', 'day')),
    bucket_start INTEGER NOT NULL,
    metric       TEXT NOT NULL CHECK (metric IN ('processing', 'browser')),
    source       TEXT NOT NULL,
    histogram    BLOB NOT NULL,
    PRIMARY KEY (account, period, bucket_start, metric, source)
);

-- How far each account's finished events, attempts and deliveries have been rolled up (unix ms, exclusive).
CREATE TABLE analytics_watermarks (
    account      TEXT PRIMARY KEY,
    rolled_until INTEGER NOT NULL
);

-- The rollup pass reads deliveries by when they finished (attempts by 0012's event_attempts_finished).
CREATE INDEX deliveries_finished ON deliveries (account, finished_at);

-- A digest of the analytics sent after each day or week (UTC; weeks start on Monday) to one of the account's
-- destinations, as a delivery keyed by its period so that it goes once whichever node sends it.
CREATE TABLE analytics_digests (
    account        TEXT PRIMARY KEY,
    destination_id TEXT NOT NULL,
    cadence        TEXT NOT NULL CHECK (cadence IN ('daily', 'weekly')),
    updated_at     INTEGER NOT NULL
);
