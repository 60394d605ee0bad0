-- Attempts at ingesting a vector store file, counted when a worker takes
-- it and cleared when the attempt ends (completed, failed, cancelled, or
-- stopped by a shutdown). A count that grows across restarts is a file
-- that keeps killing the server mid-ingestion; past a bound the file
-- fails instead of being resumed forever.
CREATE TABLE ingest_attempts (
    vector_store_id TEXT NOT NULL,
    file_id         TEXT NOT NULL,
    attempts        INTEGER NOT NULL,
    PRIMARY KEY (vector_store_id, file_id),
    FOREIGN KEY (vector_store_id, file_id) REFERENCES vector_store_files(vector_store_id, id) ON DELETE CASCADE
);
