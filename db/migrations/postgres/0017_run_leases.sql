-- Runs claimed by lease, so several replicas can share one queue: the
-- replica executing a run (claimed_by, a per-process id) and when its
-- lease ends (lease_expires_at, milliseconds since the epoch by the
-- database's clock). attempts, counted by every claim, is the fencing
-- token: an executor whose claim is no longer the run's latest writes
-- nothing more.
ALTER TABLE runs ADD COLUMN claimed_by TEXT;
ALTER TABLE runs ADD COLUMN lease_expires_at BIGINT;
