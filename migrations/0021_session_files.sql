-- Files as session resources (issue #23, item 3): `{type: "file", file_id, mount_path}` at
-- creation or through `sessions.resources.add`, mounted read-only in the session's sandbox at
-- `mount_path` (default `/mnt/session/uploads/<file_id>`). The row keeps the file's id; a file
-- deleted or expired later is left out of the sandbox (the harness logs it).
ALTER TABLE drover.session_resources DROP CONSTRAINT session_resources_type_check;
ALTER TABLE drover.session_resources
    ALTER COLUMN url DROP NOT NULL,
    ADD COLUMN file_id text,
    ADD CONSTRAINT session_resources_type_check CHECK (type IN ('github_repository', 'file')),
    ADD CONSTRAINT session_resources_shape_check CHECK (
        CASE type WHEN 'file' THEN file_id IS NOT NULL AND url IS NULL ELSE url IS NOT NULL AND file_id IS NULL END);

-- (Rendered by drover.api_session_resource_json as migration 0022 re-creates it, with memory stores.)

-- A session's output files: one per name (a later turn's file of that name replaces it).
CREATE UNIQUE INDEX files_scope_name ON drover.files (scope_id, filename) WHERE scope_id IS NOT NULL;
