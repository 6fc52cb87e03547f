-- The ServiceM8 requests of the last minute, one row each, shared by every node: the per-minute budget is a
-- rolling window, as ServiceM8 counts it, not a clock minute (a burst around a minute's turn would pass twice the
-- limit in 60 s). Rows older than a minute are deleted as requests are counted.
CREATE TABLE api_requests (
    at INTEGER NOT NULL
);
CREATE INDEX api_requests_at ON api_requests (at);
