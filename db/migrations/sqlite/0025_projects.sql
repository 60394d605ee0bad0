-- Projects: a team's space on a shared deployment. Every API key belongs
-- to one project and sees only its objects. The Default project receives
-- everything that existed before projects, so a single-team install sees
-- no change.
CREATE TABLE projects (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    archived_at INTEGER
);
INSERT INTO projects (id, name, created_at) VALUES ('proj_default', 'Default project', CAST(strftime('%s','now') AS INTEGER));

-- People's roles in a project. An instance admin (users.role = 'admin')
-- manages every project; anyone else sees the projects they belong to.
CREATE TABLE project_members (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id TEXT NOT NULL REFERENCES projects(id),
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role       TEXT NOT NULL CHECK (role IN ('owner', 'editor', 'viewer')),
    created_at INTEGER NOT NULL,
    UNIQUE (project_id, user_id)
);
CREATE INDEX project_members_user ON project_members(user_id);
-- Everyone who could sign in before keeps what they could do, now in the
-- Default project.
INSERT INTO project_members (project_id, user_id, role, created_at)
SELECT 'proj_default', id, CASE role WHEN 'admin' THEN 'owner' ELSE role END, created_at FROM users ORDER BY seq;

-- Service accounts: named, non-human members of a project whose keys are
-- not tied to a person.
CREATE TABLE service_accounts (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    id         TEXT NOT NULL UNIQUE,
    project_id TEXT NOT NULL REFERENCES projects(id),
    name       TEXT NOT NULL,
    role       TEXT NOT NULL CHECK (role IN ('owner', 'member')),
    created_at INTEGER NOT NULL
);
CREATE INDEX service_accounts_project ON service_accounts(project_id, seq);

-- A key's project, who it belongs to (a person, a service account or
-- nobody, for keys made before projects), when it stops working and
-- whether it may only read.
ALTER TABLE api_keys ADD COLUMN project_id TEXT NOT NULL DEFAULT 'proj_default';
ALTER TABLE api_keys ADD COLUMN user_id TEXT;
ALTER TABLE api_keys ADD COLUMN service_account_id TEXT;
ALTER TABLE api_keys ADD COLUMN expires_at INTEGER;
ALTER TABLE api_keys ADD COLUMN read_only INTEGER NOT NULL DEFAULT 0;
CREATE INDEX api_keys_project ON api_keys(project_id, seq);

-- Usage per project, model and UTC day (days since the epoch): what the
-- usage page charts.
CREATE TABLE project_usage (
    project_id    TEXT NOT NULL,
    day           INTEGER NOT NULL,
    model         TEXT NOT NULL,
    requests      INTEGER NOT NULL DEFAULT 0,
    input_tokens  INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (project_id, day, model)
);

-- Every object belongs to the project of the key (or person) that made it;
-- what existed before projects belongs to the Default project. Children
-- carry their parent's project too, so that every query can be scoped by
-- one column.
ALTER TABLE assistants ADD COLUMN project_id TEXT NOT NULL DEFAULT 'proj_default';
ALTER TABLE assistant_versions ADD COLUMN project_id TEXT NOT NULL DEFAULT 'proj_default';
ALTER TABLE webhooks ADD COLUMN project_id TEXT NOT NULL DEFAULT 'proj_default';
ALTER TABLE threads ADD COLUMN project_id TEXT NOT NULL DEFAULT 'proj_default';
ALTER TABLE messages ADD COLUMN project_id TEXT NOT NULL DEFAULT 'proj_default';
ALTER TABLE runs ADD COLUMN project_id TEXT NOT NULL DEFAULT 'proj_default';
ALTER TABLE run_steps ADD COLUMN project_id TEXT NOT NULL DEFAULT 'proj_default';
ALTER TABLE files ADD COLUMN project_id TEXT NOT NULL DEFAULT 'proj_default';
ALTER TABLE uploads ADD COLUMN project_id TEXT NOT NULL DEFAULT 'proj_default';
ALTER TABLE vector_stores ADD COLUMN project_id TEXT NOT NULL DEFAULT 'proj_default';
ALTER TABLE vector_store_files ADD COLUMN project_id TEXT NOT NULL DEFAULT 'proj_default';
ALTER TABLE vector_store_file_batches ADD COLUMN project_id TEXT NOT NULL DEFAULT 'proj_default';
ALTER TABLE upstream_exchanges ADD COLUMN project_id TEXT NOT NULL DEFAULT 'proj_default';
ALTER TABLE conversations ADD COLUMN project_id TEXT NOT NULL DEFAULT 'proj_default';
ALTER TABLE responses ADD COLUMN project_id TEXT NOT NULL DEFAULT 'proj_default';
ALTER TABLE containers ADD COLUMN project_id TEXT NOT NULL DEFAULT 'proj_default';
ALTER TABLE container_files ADD COLUMN project_id TEXT NOT NULL DEFAULT 'proj_default';
ALTER TABLE tombstones ADD COLUMN project_id TEXT NOT NULL DEFAULT 'proj_default';
CREATE INDEX assistants_project ON assistants(project_id, seq);
CREATE INDEX threads_project ON threads(project_id, seq);
CREATE INDEX files_project ON files(project_id, seq);
CREATE INDEX uploads_project ON uploads(project_id, seq);
CREATE INDEX vector_stores_project ON vector_stores(project_id, seq);
CREATE INDEX conversations_project ON conversations(project_id, seq);
CREATE INDEX responses_project ON responses(project_id, seq);
CREATE INDEX containers_project ON containers(project_id, seq);
