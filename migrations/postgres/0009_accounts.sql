-- Several ServiceM8 accounts in one deployment, with users, roles and an audit log.
--
-- Everything that existed before belongs to the account `default`, which start-up completes from the
-- environment: events (their dedup keys are namespaced by account), mirrored records (keyed by account and
-- uuid), the API budget, sync watermarks, portal links and sessions.

-- One ServiceM8 account served by this deployment.
CREATE TABLE accounts (
    slug                   TEXT PRIMARY KEY,        -- URL-safe, fixed at creation: /api/webhooks/sm8/{slug}
    name                   TEXT NOT NULL,
    servicem8_account_uuid TEXT UNIQUE,             -- routes add-on callbacks (their JWT's auth.accountUUID)
    disabled_at            BIGINT,                   -- disabled: its receiver answers 410 and nothing is processed
    credential_kind        TEXT NOT NULL DEFAULT 'none'
                           CHECK (credential_kind IN ('none', 'api_key', 'oauth')),
    sealed_secrets         TEXT,                    -- credentials and webhook secrets, sealed (server/src/sealing.rs)
    oauth_scopes           TEXT,
    oauth_expires_at       BIGINT,                   -- when the OAuth access token expires
    oauth_error            TEXT,                    -- the last failed refresh, shown on the account page
    requests_per_minute    BIGINT NOT NULL,
    requests_per_day       BIGINT NOT NULL,
    sync_interval_seconds  BIGINT NOT NULL,
    retention_days         BIGINT NOT NULL,
    created_at             BIGINT NOT NULL,
    updated_at             BIGINT NOT NULL
);

CREATE TABLE users (
    id             TEXT PRIMARY KEY,
    email          TEXT NOT NULL UNIQUE,            -- lower case
    password_hash  TEXT,                            -- argon2id PHC string; NULL until the user sets one
    instance_owner BIGINT NOT NULL DEFAULT 0,        -- creates accounts; owner of every account
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);

-- A user's role in one account: owner (settings, credentials, users), admin (retry, cleanup, test events,
-- rules), viewer (read only).
CREATE TABLE memberships (
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    account    TEXT NOT NULL,
    role       TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'viewer')),
    created_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, account)
);
CREATE INDEX memberships_account ON memberships (account);

-- Personal API tokens for the management API, scoped to an account and a role; only their SHA-256 is stored.
CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY,
    token_hash   TEXT NOT NULL UNIQUE,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    account      TEXT NOT NULL,
    role         TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'viewer')),
    name         TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT,
    last_used_at BIGINT,
    revoked_at   BIGINT
);
CREATE INDEX api_tokens_user ON api_tokens (user_id);

-- One-time links: an invitation to an account, or (no account) the first-run setup of an instance owner.
CREATE TABLE invites (
    token_hash TEXT PRIMARY KEY,
    account    TEXT,
    role       TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'viewer')),
    email      TEXT,
    created_by TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);

-- ServiceM8 OAuth: the state of an authorization in progress (its SHA-256), checked on the way back.
CREATE TABLE oauth_states (
    state_hash TEXT PRIMARY KEY,
    account    TEXT NOT NULL,
    user_id    TEXT,
    scopes     TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

-- Every state-changing action, whoever took it, kept for AUDIT_RETENTION_DAYS whatever the event retention.
CREATE TABLE audit_log (
    id             BIGSERIAL PRIMARY KEY,
    at             BIGINT NOT NULL,
    account        TEXT,                            -- NULL: instance-wide (a sign-in, a new account, a user)
    actor_kind     TEXT NOT NULL,                   -- user, api_token, admin_token, system, anonymous
    actor          TEXT,                            -- the user's email, or the token's name
    action         TEXT NOT NULL,
    target         TEXT,
    outcome        TEXT NOT NULL,                   -- success, failure, denied
    client_address TEXT,
    detail         JSONB                           -- what changed (never a secret value)
);
CREATE INDEX audit_log_account ON audit_log (account, id);
CREATE INDEX audit_log_at ON audit_log (at);

-- Dashboard sessions belong to a user.
ALTER TABLE admin_sessions ADD COLUMN user_id TEXT;
DELETE FROM admin_sessions;

-- Events: deduplication is per account; the queue's object is (account, object type, uuid).
UPDATE webhook_events SET dedup_key = account || '/' || dedup_key;
DROP INDEX webhook_events_received;
CREATE INDEX webhook_events_received ON webhook_events (account, received_at DESC, id DESC);
CREATE INDEX webhook_events_account_status ON webhook_events (account, status);
DROP INDEX webhook_events_object;
CREATE INDEX webhook_events_object ON webhook_events (account, object_type, object_uuid);
DROP INDEX webhook_events_in_flight;
CREATE INDEX webhook_events_in_flight ON webhook_events (account, object_type, object_uuid)
    WHERE status = 'processing';

-- Mirrored records are keyed by account and uuid.
ALTER TABLE sm8_jobs ADD COLUMN account TEXT NOT NULL DEFAULT 'default';
ALTER TABLE sm8_jobs DROP CONSTRAINT sm8_jobs_pkey;
ALTER TABLE sm8_jobs ADD PRIMARY KEY (account, uuid);
DROP INDEX sm8_jobs_company;
CREATE INDEX sm8_jobs_company ON sm8_jobs (account, company_uuid);

ALTER TABLE sm8_companies ADD COLUMN account TEXT NOT NULL DEFAULT 'default';
ALTER TABLE sm8_companies DROP CONSTRAINT sm8_companies_pkey;
ALTER TABLE sm8_companies ADD PRIMARY KEY (account, uuid);

ALTER TABLE sm8_job_activities ADD COLUMN account TEXT NOT NULL DEFAULT 'default';
ALTER TABLE sm8_job_activities DROP CONSTRAINT sm8_job_activities_pkey;
ALTER TABLE sm8_job_activities ADD PRIMARY KEY (account, uuid);
DROP INDEX sm8_job_activities_job;
CREATE INDEX sm8_job_activities_job ON sm8_job_activities (account, job_uuid);

ALTER TABLE sm8_attachments ADD COLUMN account TEXT NOT NULL DEFAULT 'default';
ALTER TABLE sm8_attachments DROP CONSTRAINT sm8_attachments_pkey;
ALTER TABLE sm8_attachments ADD PRIMARY KEY (account, uuid);
DROP INDEX sm8_attachments_related;
CREATE INDEX sm8_attachments_related ON sm8_attachments (account, related_object_uuid);

ALTER TABLE sm8_staff ADD COLUMN account TEXT NOT NULL DEFAULT 'default';
ALTER TABLE sm8_staff DROP CONSTRAINT sm8_staff_pkey;
ALTER TABLE sm8_staff ADD PRIMARY KEY (account, uuid);


-- The API budget and the sync watermarks are per account (ServiceM8 counts requests per account).
DROP TABLE api_budget;
CREATE TABLE api_budget (
    account    TEXT NOT NULL,
    window_key TEXT NOT NULL,                       -- day:<n>, or paused
    used       BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (account, window_key)
);
ALTER TABLE api_requests ADD COLUMN account TEXT NOT NULL DEFAULT 'default';
DROP INDEX api_requests_at;
CREATE INDEX api_requests_account_at ON api_requests (account, at);

ALTER TABLE sync_watermarks ADD COLUMN account TEXT NOT NULL DEFAULT 'default';
ALTER TABLE sync_watermarks DROP CONSTRAINT sync_watermarks_pkey;
ALTER TABLE sync_watermarks ADD PRIMARY KEY (account, object_type);

-- Portal links and sessions open one company of one account.
ALTER TABLE portal_links ADD COLUMN account TEXT NOT NULL DEFAULT 'default';
ALTER TABLE portal_sessions ADD COLUMN account TEXT NOT NULL DEFAULT 'default';
