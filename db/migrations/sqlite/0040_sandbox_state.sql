-- code_interpreter across replicas. sandbox_files: what a thread's code
-- left in /mnt/data, by path, each saved as a stored file (purpose
-- assistants_output, its contents in the blob store), so that a kernel
-- started for the thread on another replica (or after its directory was
-- lost) finds the same files. code_kernels: the replica whose kernel ran
-- the thread's code last, and until when that kernel stays alive without
-- a call (milliseconds since the epoch, database clock). A run of such a
-- thread queued while that replica lives is kept for it for a short window
-- (prefer_replica until prefer_until), so its variables are found too.
CREATE TABLE sandbox_files (
    thread_id TEXT NOT NULL REFERENCES threads(id) ON DELETE CASCADE,
    path      TEXT NOT NULL,
    file_id   TEXT NOT NULL,
    PRIMARY KEY (thread_id, path)
);
CREATE TABLE code_kernels (
    thread_id  TEXT PRIMARY KEY REFERENCES threads(id) ON DELETE CASCADE,
    replica    TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
ALTER TABLE runs ADD COLUMN prefer_replica TEXT;
ALTER TABLE runs ADD COLUMN prefer_until BIGINT;
