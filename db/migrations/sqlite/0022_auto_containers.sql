-- The container a response's code_interpreter {"type": "auto"} made: the
-- run it was made for (at most one per run), so the run's later calls and
-- its answer's citations find it again, also after a restart.
ALTER TABLE containers ADD COLUMN run_id TEXT;
CREATE UNIQUE INDEX containers_run ON containers(run_id);
