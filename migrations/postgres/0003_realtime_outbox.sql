-- Realtime relay: the outbox every node reads broadcasts from, and per-topic offsets for resuming clients.

CREATE TABLE realtime_topic_offsets (
    topic TEXT PRIMARY KEY,                         -- full channel topic, e.g. realtime:jobs
    last  BIGINT NOT NULL                           -- the last offset given out on the topic
);

CREATE TABLE realtime_outbox (
    id            BIGSERIAL PRIMARY KEY,
    topic         TEXT NOT NULL,
    event         TEXT NOT NULL,
    payload       JSONB,                            -- NULL when the payload is raw bytes
    payload_raw   BYTEA,
    topic_offset  BIGINT,                           -- NULL for ephemeral broadcasts (not replayed)
    sender        TEXT,                             -- the pushing connection, so it can be spared its own message
    binary_origin BOOLEAN NOT NULL DEFAULT FALSE,   -- pushed as a binary frame: relayed as one
    created_at    BIGINT NOT NULL,                  -- unix milliseconds
    UNIQUE (topic, topic_offset)
);

CREATE INDEX realtime_outbox_created ON realtime_outbox (created_at);
