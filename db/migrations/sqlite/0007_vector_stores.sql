-- Vector stores for file_search, their files, file batches, the chunks
-- retrieval searches, and the Uploads API's multi-part uploads.
--
-- A vector store's file_counts, status and usage_bytes are never stored:
-- they are computed from vector_store_files whenever a store is read, so
-- they cannot drift from the files (a file deleted from /v1/files leaves
-- every store through the cascades below).

CREATE TABLE vector_stores (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    id             TEXT NOT NULL UNIQUE,
    created_at     INTEGER NOT NULL,
    name           TEXT NOT NULL DEFAULT '',
    description    TEXT,
    metadata       TEXT NOT NULL DEFAULT '{}',
    expires_after  TEXT,            -- {"anchor":"last_active_at","days":n} or NULL
    expires_at     INTEGER,         -- last_active_at + days, NULL without a policy
    last_active_at INTEGER,
    expired        INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX vector_stores_expiry ON vector_stores(expires_at) WHERE expires_at IS NOT NULL AND expired = 0;

CREATE TABLE vector_store_file_batches (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL UNIQUE,
    vector_store_id TEXT NOT NULL REFERENCES vector_stores(id) ON DELETE CASCADE,
    created_at      INTEGER NOT NULL,
    cancelled       INTEGER NOT NULL DEFAULT 0
);

-- One row per file in a store; id is the file's id (as the API shows it).
CREATE TABLE vector_store_files (
    seq               INTEGER PRIMARY KEY AUTOINCREMENT,
    id                TEXT NOT NULL REFERENCES files(id) ON DELETE CASCADE,
    vector_store_id   TEXT NOT NULL REFERENCES vector_stores(id) ON DELETE CASCADE,
    batch_id          TEXT,
    created_at        INTEGER NOT NULL,
    status            TEXT NOT NULL CHECK (status IN ('in_progress', 'completed', 'cancelled', 'failed')),
    last_error        TEXT,
    chunking_strategy TEXT NOT NULL,
    attributes        TEXT,
    usage_bytes       INTEGER NOT NULL DEFAULT 0,
    UNIQUE (vector_store_id, id)
);
CREATE INDEX vector_store_files_file ON vector_store_files(id);
CREATE INDEX vector_store_files_store ON vector_store_files(vector_store_id, seq);
CREATE INDEX vector_store_files_batch ON vector_store_files(batch_id) WHERE batch_id IS NOT NULL;
-- Ingestion's work queue: the files still in progress, oldest first.
CREATE INDEX vector_store_files_pending ON vector_store_files(seq) WHERE status = 'in_progress';

-- A file's chunks in one store, written in the same transaction that marks
-- the file completed (so a restart never finds half a file). embedding is
-- little-endian float32s when an embeddings model is configured.
CREATE TABLE vector_store_chunks (
    id              INTEGER PRIMARY KEY,
    vector_store_id TEXT NOT NULL,
    file_id         TEXT NOT NULL,
    idx             INTEGER NOT NULL,
    text            TEXT NOT NULL,
    embedding       BLOB,
    FOREIGN KEY (vector_store_id, file_id) REFERENCES vector_store_files(vector_store_id, id) ON DELETE CASCADE
);
CREATE INDEX vector_store_chunks_file ON vector_store_chunks(vector_store_id, file_id, idx);

-- BM25 over the chunks (external content: the text is stored once).
CREATE VIRTUAL TABLE vector_store_chunks_fts USING fts5(
    text,
    content = 'vector_store_chunks',
    content_rowid = 'id',
    tokenize = 'porter unicode61 remove_diacritics 2'
);
CREATE TRIGGER vector_store_chunks_ai AFTER INSERT ON vector_store_chunks BEGIN
    INSERT INTO vector_store_chunks_fts (rowid, text) VALUES (NEW.id, NEW.text);
END;
CREATE TRIGGER vector_store_chunks_ad AFTER DELETE ON vector_store_chunks BEGIN
    INSERT INTO vector_store_chunks_fts (vector_store_chunks_fts, rowid, text) VALUES ('delete', OLD.id, OLD.text);
END;

-- The Uploads API: an upload collects parts (stored under the data
-- directory) until it is completed into a file, cancelled or expired.
CREATE TABLE uploads (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    id         TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    filename   TEXT NOT NULL,
    bytes      INTEGER NOT NULL,
    purpose    TEXT NOT NULL,
    mime_type  TEXT NOT NULL,
    status     TEXT NOT NULL CHECK (status IN ('pending', 'completed', 'cancelled', 'expired')),
    expires_at INTEGER NOT NULL,
    file_expires_after INTEGER NOT NULL DEFAULT 0,
    file_id    TEXT
);

CREATE TABLE upload_parts (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    id         TEXT NOT NULL UNIQUE,
    upload_id  TEXT NOT NULL REFERENCES uploads(id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    bytes      INTEGER NOT NULL
);
CREATE INDEX upload_parts_upload ON upload_parts(upload_id);
