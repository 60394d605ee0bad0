-- Functions answered by webhooks (an assistantd extension of the API), and
-- the record of every delivery attempt for the run view and the
-- playground's timeline.

-- One webhook per function of an assistant. Deleting the assistant deletes
-- its webhooks; removing the function from the assistant deletes its
-- webhook (UpdateAssistant does it in the same transaction).
CREATE TABLE webhooks (
    assistant_id  TEXT NOT NULL REFERENCES assistants(id) ON DELETE CASCADE,
    function_name TEXT NOT NULL,
    url           TEXT NOT NULL,
    -- whsec_… in full: signing needs it (it is shown to people only once).
    secret        TEXT NOT NULL,
    timeout_ms    INTEGER NOT NULL CHECK (timeout_ms > 0),
    max_retries   INTEGER NOT NULL CHECK (max_retries >= 0),
    on_failure    TEXT NOT NULL CHECK (on_failure IN ('error_output', 'requires_action')),
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (assistant_id, function_name)
) WITHOUT ROWID;

-- One row per HTTP attempt. A run's deliveries go with the run (and its
-- thread).
CREATE TABLE webhook_deliveries (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id        TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    thread_id     TEXT NOT NULL,
    tool_call_id  TEXT NOT NULL,
    function_name TEXT NOT NULL,
    -- The webhook-id header: the same on every attempt of one call.
    webhook_id    TEXT NOT NULL,
    attempt       INTEGER NOT NULL,
    -- NULL when no response came (timeout, connection error, refused address).
    status_code   INTEGER,
    latency_ms    INTEGER NOT NULL,
    response      TEXT NOT NULL DEFAULT '',
    error         TEXT,
    created_at    INTEGER NOT NULL
);
CREATE INDEX webhook_deliveries_run ON webhook_deliveries(run_id, seq);
CREATE INDEX webhook_deliveries_thread ON webhook_deliveries(thread_id, seq);
