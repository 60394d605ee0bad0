-- Web app sign-ins kept on the server, so they can be ended at once: at
-- sign-out, on a password or role change, or by "sign out everywhere".
-- The cookie holds a random token; only its SHA-256 is stored here, so a
-- copy of the database does not sign anyone in.
CREATE TABLE web_sessions (
    token_hash TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE INDEX web_sessions_user ON web_sessions (user_id);

-- Server-wide web app settings an admin changes (such as whether remote
-- images in messages load).
CREATE TABLE settings (
    name       TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;
