-- A project upstream set by an owner who is not an instance admin is
-- reached only at addresses the webhook guard allows (no loopback,
-- private, link-local or metadata networks unless allow-listed): the
-- server must not make requests into its own network on their behalf.
ALTER TABLE project_settings ADD COLUMN upstream_guarded INTEGER NOT NULL DEFAULT 0;
