-- The container a response's code_interpreter {"type": "auto"} made (the
-- PostgreSQL schema of migrations/sqlite/0022_auto_containers.sql).
ALTER TABLE containers ADD COLUMN run_id TEXT;
CREATE UNIQUE INDEX containers_run ON containers(run_id);
