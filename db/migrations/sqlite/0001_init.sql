-- Foundation: assistants, threads, messages, files and API keys.
-- Every listable table has seq, an AUTOINCREMENT key that orders lists and
-- resolves pagination cursors (created_at ties within one second never
-- reorder or skip). JSON columns hold the nested parts of the API objects.

CREATE TABLE assistants (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL UNIQUE,
    created_at      INTEGER NOT NULL,
    name            TEXT,
    description     TEXT,
    model           TEXT NOT NULL,
    instructions    TEXT,
    tools           TEXT NOT NULL DEFAULT '[]',
    tool_resources  TEXT NOT NULL DEFAULT '{}',
    metadata        TEXT NOT NULL DEFAULT '{}',
    temperature     REAL,
    top_p           REAL,
    response_format TEXT NOT NULL DEFAULT '"auto"',
    reasoning_effort TEXT
);

CREATE TABLE threads (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    id             TEXT NOT NULL UNIQUE,
    created_at     INTEGER NOT NULL,
    tool_resources TEXT NOT NULL DEFAULT '{}',
    metadata       TEXT NOT NULL DEFAULT '{}'
);

CREATE TABLE messages (
    seq                INTEGER PRIMARY KEY AUTOINCREMENT,
    id                 TEXT NOT NULL UNIQUE,
    thread_id          TEXT NOT NULL REFERENCES threads(id) ON DELETE CASCADE,
    created_at         INTEGER NOT NULL,
    status             TEXT NOT NULL CHECK (status IN ('in_progress', 'incomplete', 'completed')),
    incomplete_details TEXT,
    completed_at       INTEGER,
    incomplete_at      INTEGER,
    role               TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
    content            TEXT NOT NULL DEFAULT '[]',
    assistant_id       TEXT,
    run_id             TEXT,
    attachments        TEXT NOT NULL DEFAULT '[]',
    metadata           TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX messages_thread ON messages(thread_id, seq);
CREATE INDEX messages_run ON messages(run_id) WHERE run_id IS NOT NULL;

CREATE TABLE files (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    id             TEXT NOT NULL UNIQUE,
    created_at     INTEGER NOT NULL,
    bytes          INTEGER NOT NULL,
    filename       TEXT NOT NULL,
    purpose        TEXT NOT NULL,
    status         TEXT NOT NULL DEFAULT 'processed',
    status_details TEXT,
    expires_at     INTEGER,
    content_type   TEXT NOT NULL DEFAULT 'application/octet-stream',
    sha256         TEXT NOT NULL DEFAULT ''
);
CREATE INDEX files_purpose ON files(purpose, seq);

-- API keys are stored as SHA-256 hashes only; the key itself is shown once.
CREATE TABLE api_keys (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT NOT NULL UNIQUE,
    name         TEXT NOT NULL,
    hash         TEXT NOT NULL UNIQUE,
    hint         TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at   INTEGER
);
