-- Every configuration an assistant has had, numbered from 1: written in
-- the transaction that creates or changes the assistant, so the history
-- can never miss a change. id is the version number as text: the cursor
-- of the versions list (unique within one assistant's versions).
CREATE TABLE assistant_versions (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    assistant_id     TEXT NOT NULL REFERENCES assistants(id) ON DELETE CASCADE,
    id               TEXT NOT NULL,
    version          INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    -- Who made the change: 'api_key' (id and name of the key; id empty for
    -- the configured key), 'user' (a web app user) or 'system'.
    actor_type       TEXT NOT NULL,
    actor_id         TEXT NOT NULL DEFAULT '',
    actor_name       TEXT NOT NULL DEFAULT '',
    -- The full configuration, as the assistants table holds it.
    name             TEXT,
    description      TEXT,
    model            TEXT NOT NULL,
    instructions     TEXT,
    tools            TEXT NOT NULL DEFAULT '[]',
    tool_resources   TEXT NOT NULL DEFAULT '{}',
    metadata         TEXT NOT NULL DEFAULT '{}',
    temperature      REAL,
    top_p            REAL,
    response_format  TEXT NOT NULL DEFAULT '"auto"',
    reasoning_effort TEXT,
    UNIQUE (assistant_id, version)
);
CREATE UNIQUE INDEX assistant_versions_id ON assistant_versions(assistant_id, id);

-- The assistants that exist now start their history at version 1.
INSERT INTO assistant_versions (assistant_id, id, version, created_at, actor_type, name, description, model,
    instructions, tools, tool_resources, metadata, temperature, top_p, response_format, reasoning_effort)
SELECT id, '1', 1, created_at, 'system', name, description, model, instructions, tools, tool_resources,
    metadata, temperature, top_p, response_format, reasoning_effort
FROM assistants ORDER BY seq;
