-- The upstream inspector: every HTTP exchange a run had with its model
-- provider (retries included), request and response as sent and received,
-- with keys redacted. Kept for a retention period (--inspect-retention).

CREATE TABLE upstream_exchanges (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id           TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    started_at       INTEGER NOT NULL, -- unix milliseconds
    duration_ms      INTEGER,          -- NULL while the exchange is in flight
    method           TEXT NOT NULL,
    url              TEXT NOT NULL,
    request_headers  TEXT NOT NULL DEFAULT '{}',
    request_body     TEXT NOT NULL DEFAULT '',
    status           INTEGER NOT NULL DEFAULT 0, -- HTTP status; 0 when no response came
    response_headers TEXT NOT NULL DEFAULT '{}',
    response_body    TEXT NOT NULL DEFAULT '',
    streamed         INTEGER NOT NULL DEFAULT 0,
    chunks           INTEGER NOT NULL DEFAULT 0,
    error            TEXT NOT NULL DEFAULT ''
);
CREATE INDEX upstream_exchanges_run ON upstream_exchanges(run_id, id);
CREATE INDEX upstream_exchanges_started ON upstream_exchanges(started_at);
