-- Containers of the Responses API: a code_interpreter kernel of its own
-- (the sandbox's session named by the container id) and the files in its
-- /mnt/data. A container expires expires_minutes after it was last
-- active: its kernel stops, its files stay downloadable until it is
-- deleted.
CREATE TABLE containers (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL UNIQUE,
    created_at      INTEGER NOT NULL,
    name            TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'expired')),
    last_active_at  INTEGER NOT NULL,
    expires_minutes INTEGER NOT NULL,
    memory_limit    TEXT NOT NULL DEFAULT '1g'
);
CREATE INDEX containers_running ON containers(last_active_at) WHERE status = 'running';

-- A container's files: each is a stored file (file_id). owned is 1 when
-- the container made it (an upload, or a file its code wrote) and deletes
-- it with itself; 0 when it names a file the client made.
CREATE TABLE container_files (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT NOT NULL UNIQUE,
    container_id TEXT NOT NULL REFERENCES containers(id) ON DELETE CASCADE,
    created_at   INTEGER NOT NULL,
    file_id      TEXT NOT NULL,
    path         TEXT NOT NULL,
    source       TEXT NOT NULL CHECK (source IN ('user', 'assistant')),
    bytes        INTEGER NOT NULL,
    owned        INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX container_files_container ON container_files(container_id, seq);
