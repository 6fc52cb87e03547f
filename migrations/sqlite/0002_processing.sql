-- Processing: attempts, mirrored ServiceM8 records, the shared API request budget and sync watermarks.

ALTER TABLE webhook_events ADD COLUMN skip_reason TEXT;
CREATE INDEX webhook_events_leases ON webhook_events (status, locked_until);

CREATE TABLE event_attempts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id    TEXT NOT NULL REFERENCES webhook_events (id) ON DELETE CASCADE,
    attempt     INTEGER NOT NULL,
    started_at  INTEGER NOT NULL,
    finished_at INTEGER NOT NULL,
    outcome     TEXT NOT NULL,                      -- success, skipped, retry, failed
    http_status INTEGER,
    error       TEXT
);
CREATE INDEX event_attempts_event ON event_attempts (event_id, attempt);

-- One table per ServiceM8 object: typed key columns, the full record as JSON, edit_date and active (0 = deleted).
CREATE TABLE sm8_jobs (
    uuid             TEXT PRIMARY KEY,
    company_uuid     TEXT,
    status           TEXT,
    generated_job_id TEXT,
    edit_date        TEXT NOT NULL,                 -- ServiceM8's "YYYY-MM-DD HH:MM:SS"; sorts as text
    active           INTEGER NOT NULL,
    record           TEXT NOT NULL,
    mirrored_at      INTEGER NOT NULL
);
CREATE INDEX sm8_jobs_company ON sm8_jobs (company_uuid);

CREATE TABLE sm8_companies (
    uuid        TEXT PRIMARY KEY,
    name        TEXT,
    edit_date   TEXT NOT NULL,
    active      INTEGER NOT NULL,
    record      TEXT NOT NULL,
    mirrored_at INTEGER NOT NULL
);

CREATE TABLE sm8_job_activities (
    uuid        TEXT PRIMARY KEY,
    job_uuid    TEXT,
    staff_uuid  TEXT,
    edit_date   TEXT NOT NULL,
    active      INTEGER NOT NULL,
    record      TEXT NOT NULL,
    mirrored_at INTEGER NOT NULL
);
CREATE INDEX sm8_job_activities_job ON sm8_job_activities (job_uuid);

CREATE TABLE sm8_attachments (
    uuid                TEXT PRIMARY KEY,
    related_object      TEXT,
    related_object_uuid TEXT,
    edit_date           TEXT NOT NULL,
    active              INTEGER NOT NULL,
    record              TEXT NOT NULL,
    mirrored_at         INTEGER NOT NULL
);
CREATE INDEX sm8_attachments_related ON sm8_attachments (related_object_uuid);

CREATE TABLE sm8_staff (
    uuid        TEXT PRIMARY KEY,
    email       TEXT,
    edit_date   TEXT NOT NULL,
    active      INTEGER NOT NULL,
    record      TEXT NOT NULL,
    mirrored_at INTEGER NOT NULL
);

-- Requests made to the ServiceM8 API per window, shared by every worker and node.
CREATE TABLE api_budget (
    window_key TEXT PRIMARY KEY,                    -- minute:<n> or day:<n>
    used       INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);

-- Reconciliation: the newest edit_date seen per object type.
CREATE TABLE sync_watermarks (
    object_type TEXT PRIMARY KEY,
    edit_date   TEXT NOT NULL,
    synced_at   INTEGER NOT NULL
);
