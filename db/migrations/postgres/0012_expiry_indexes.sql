-- The expiry sweeper looks every minute for files past their expires_at
-- and uploads left pending past theirs; these partial indexes keep that a
-- lookup of the few candidates instead of a scan of every file and upload.
CREATE INDEX files_expiry ON files(expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX uploads_pending_expiry ON uploads(expires_at) WHERE status = 'pending';
