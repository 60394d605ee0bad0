-- The head of each run's durable event log: the highest seq written or
-- reserved. The replica executing a run reserves seqs ahead (a block
-- beyond its last write) so that it can show its deltas to its own
-- readers at once, with the seqs they will have in the log; anyone else
-- appending to the run's log (or a new owner after a takeover) numbers
-- after the head, so no seq a reader may have seen is ever given to
-- another event. Locking a run's row here orders its appends. Seqs
-- reserved and never written are skipped by readers.
CREATE TABLE run_event_heads (
    run_id   TEXT PRIMARY KEY,
    reserved BIGINT NOT NULL
);
