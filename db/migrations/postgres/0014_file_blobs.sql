-- File contents in the database (--blob-store postgres, the default on
-- PostgreSQL): 1 MiB chunks, numbered from 0, removed with their file.
CREATE TABLE file_blobs (
    file_id TEXT NOT NULL REFERENCES files(id) ON DELETE CASCADE,
    n       INTEGER NOT NULL,
    data    BYTEA NOT NULL,
    PRIMARY KEY (file_id, n)
);
