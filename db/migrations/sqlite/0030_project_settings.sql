-- Admin keys: they manage projects through /v1/organization and nothing
-- else. Only their hash is kept, as for client keys.
CREATE TABLE admin_keys (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT NOT NULL UNIQUE,
    name         TEXT NOT NULL,
    hash         TEXT NOT NULL UNIQUE,
    hint         TEXT NOT NULL,
    user_id      TEXT,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at   INTEGER
);

-- A project's settings: which models it may use (an allow list or a deny
-- list, as OpenAI's ProjectModelPermissions), which server-side tools are
-- on, and an optional upstream of its own whose key is sealed with
-- AES-GCM under a server secret (secrets.name = 'project-upstream-key').
-- A project without a row has no restrictions and the server's upstreams.
CREATE TABLE project_settings (
    project_id       TEXT PRIMARY KEY REFERENCES projects(id),
    model_mode       TEXT NOT NULL DEFAULT 'deny_list' CHECK (model_mode IN ('allow_list', 'deny_list')),
    model_ids        TEXT NOT NULL DEFAULT '[]',
    code_interpreter INTEGER NOT NULL DEFAULT 1,
    file_search      INTEGER NOT NULL DEFAULT 1,
    upstream_url     TEXT,
    upstream_key     BLOB,
    updated_at       INTEGER NOT NULL
) WITHOUT ROWID;

-- Rate limits per project and model, as OpenAI's ProjectRateLimit; 0 is
-- no limit.
CREATE TABLE project_rate_limits (
    seq                       INTEGER PRIMARY KEY AUTOINCREMENT,
    id                        TEXT NOT NULL UNIQUE,
    project_id                TEXT NOT NULL REFERENCES projects(id),
    model                     TEXT NOT NULL,
    max_requests_per_1_minute INTEGER NOT NULL DEFAULT 0,
    max_tokens_per_1_minute   INTEGER NOT NULL DEFAULT 0,
    UNIQUE (project_id, model)
);

-- What each project used of each model in each window (window_start in
-- Unix milliseconds): counted in the database so that limits hold across
-- replicas. Old windows are swept.
CREATE TABLE rate_counters (
    project_id   TEXT NOT NULL,
    model        TEXT NOT NULL,
    window_start INTEGER NOT NULL,
    requests     INTEGER NOT NULL DEFAULT 0,
    tokens       INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (project_id, model, window_start)
) WITHOUT ROWID;
CREATE INDEX rate_counters_window ON rate_counters(window_start);
