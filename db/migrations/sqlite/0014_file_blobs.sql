-- File contents in the database, as PostgreSQL's --blob-store postgres
-- keeps them (SQLite keeps them under the data directory; the table keeps
-- the two schemas alike, and copy-data's counts comparable).
CREATE TABLE file_blobs (
    file_id TEXT NOT NULL REFERENCES files(id) ON DELETE CASCADE,
    n       INTEGER NOT NULL,
    data    BLOB NOT NULL,
    PRIMARY KEY (file_id, n)
) WITHOUT ROWID;
