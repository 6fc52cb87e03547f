-- Realtime presence shared by every node: who is present on each topic. A node keeps its own entries alive
-- (expires_at moves forward while it runs); the entries of a node that died expire and are removed, with a leave
-- sent to the topic's subscribers. SQLite has no such table: one process keeps presence in memory.

CREATE TABLE realtime_presence (
    id           BIGSERIAL PRIMARY KEY,
    topic        TEXT NOT NULL,                    -- the hub topic, with its account
    connection   TEXT NOT NULL,                    -- the tracking websocket connection
    presence_key TEXT NOT NULL,
    phx_ref      TEXT NOT NULL,
    meta         JSONB NOT NULL,
    node         TEXT NOT NULL,                    -- the node holding the connection
    expires_at   BIGINT NOT NULL,                  -- unix milliseconds
    UNIQUE (topic, connection)
);

CREATE INDEX realtime_presence_node ON realtime_presence (node);
CREATE INDEX realtime_presence_expiry ON realtime_presence (expires_at);
