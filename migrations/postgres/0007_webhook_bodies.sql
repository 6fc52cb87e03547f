-- What arrived in one request is stored once: its raw body and headers, which every event of the delivery refers
-- to. (An object callback with a thousand entries used to store its whole body a thousand times.)

CREATE TABLE webhook_bodies (
    id          TEXT PRIMARY KEY,                   -- UUIDv7
    raw_body    BYTEA NOT NULL,                     -- the delivery exactly as received
    headers     JSONB NOT NULL DEFAULT '{}',        -- the delivery's headers, as a JSON object
    received_at BIGINT NOT NULL
);
CREATE INDEX webhook_bodies_received ON webhook_bodies (received_at);

-- Every stored event keeps its body: one row each, under the event's own id.
INSERT INTO webhook_bodies (id, raw_body, headers, received_at)
    SELECT id, raw_body, headers, received_at FROM webhook_events;

ALTER TABLE webhook_events ADD COLUMN body_id TEXT;
UPDATE webhook_events SET body_id = id;
ALTER TABLE webhook_events DROP COLUMN raw_body;
ALTER TABLE webhook_events DROP COLUMN headers;
CREATE INDEX webhook_events_body ON webhook_events (body_id);
