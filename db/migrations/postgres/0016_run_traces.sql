-- The trace a run belongs to (a W3C traceparent), kept so that every
-- execution of the run (after tool outputs, or resumed after a restart or
-- on another replica) joins the same trace. A table of its own rather
-- than a runs column: written once per run, inside the claim's
-- transaction, and only while tracing is on.
CREATE TABLE run_traces (
    run_id      TEXT PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,
    traceparent TEXT NOT NULL
);
