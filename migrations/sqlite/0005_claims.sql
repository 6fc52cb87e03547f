-- Which node holds a claim, so that a node restarting after a crash releases its own claims at once instead of
-- waiting for their leases to run out.
ALTER TABLE webhook_events ADD COLUMN claimed_by TEXT;

-- The events being worked on, by object: a claim skips objects that are in flight on any worker or node, so one
-- object's updates are fetched, mirrored and announced in order.
CREATE INDEX webhook_events_in_flight ON webhook_events (object_type, object_uuid) WHERE status = 'processing';
