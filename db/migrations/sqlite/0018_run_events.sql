-- The durable per-run event log that lets any replica stream any run:
-- the Assistants streaming events of each run in order (seq from 1, taken
-- under the run's thread lock, so every replica sees one order), written
-- in the transaction of the state change they report. Kept for
-- --event-retention, then pruned. No foreign key: a run's last events
-- (the error event of a run whose thread was deleted) outlive it until
-- pruned.
CREATE TABLE run_events (
    run_id     TEXT NOT NULL,
    seq        BIGINT NOT NULL,
    event      TEXT NOT NULL,
    data       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (run_id, seq)
);
CREATE INDEX run_events_created ON run_events(created_at);
