-- The web app: people who sign in, server secrets, and full-text search
-- over message text.

CREATE TABLE users (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    id            TEXT NOT NULL UNIQUE,
    email         TEXT NOT NULL UNIQUE COLLATE NOCASE,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'editor', 'viewer')),
    password_hash TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    last_login_at INTEGER
);

-- Secrets generated once and kept, such as the session cookie keys (so
-- sessions survive restarts).
CREATE TABLE secrets (
    name       TEXT PRIMARY KEY,
    value      BLOB NOT NULL,
    created_at INTEGER NOT NULL
) WITHOUT ROWID;

-- One row per message (rowid = messages.seq) holding the text of its text
-- parts. Triggers keep it in step with messages, whoever writes them.
CREATE VIRTUAL TABLE messages_fts USING fts5(
    body,
    thread_id UNINDEXED,
    tokenize = 'unicode61 remove_diacritics 2'
);

CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts (rowid, body, thread_id) VALUES (NEW.seq,
        COALESCE((SELECT group_concat(json_extract(value, '$.text.value'), char(10))
                  FROM json_each(NEW.content) WHERE json_extract(value, '$.type') = 'text'), ''),
        NEW.thread_id);
END;

CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
    DELETE FROM messages_fts WHERE rowid = OLD.seq;
END;

CREATE TRIGGER messages_fts_update AFTER UPDATE OF content ON messages BEGIN
    DELETE FROM messages_fts WHERE rowid = OLD.seq;
    INSERT INTO messages_fts (rowid, body, thread_id) VALUES (NEW.seq,
        COALESCE((SELECT group_concat(json_extract(value, '$.text.value'), char(10))
                  FROM json_each(NEW.content) WHERE json_extract(value, '$.type') = 'text'), ''),
        NEW.thread_id);
END;

INSERT INTO messages_fts (rowid, body, thread_id)
SELECT seq,
       COALESCE((SELECT group_concat(json_extract(value, '$.text.value'), char(10))
                 FROM json_each(messages.content) WHERE json_extract(value, '$.type') = 'text'), ''),
       thread_id
FROM messages;
