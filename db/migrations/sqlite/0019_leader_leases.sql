-- Leader leases: the replica whose lease row names it does the once-only
-- housekeeping (expiry of files, uploads and vector stores, event and
-- inspector retention) until the lease, renewed while it lives, lapses
-- (expires_at: milliseconds since the epoch by the database's clock).
CREATE TABLE leader_leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
