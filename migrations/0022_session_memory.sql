-- Memory stores attached to sessions (issue #24, item 2): `{type: "memory_store",
-- memory_store_id, access, instructions}` at session creation, mounted in the session's sandbox at
-- /mnt/memory/<slug of the store's name> (read-only when `access` says so), with the store's name
-- and description snapshotted at attach time. What the agent writes there becomes new versions
-- of the store's memories (actor: the session) at the end of every turn, through
-- drover.memory_sync, which writes nothing unless the caller holds the session's lease.
ALTER TABLE drover.session_resources DROP CONSTRAINT session_resources_type_check;
ALTER TABLE drover.session_resources DROP CONSTRAINT session_resources_shape_check;
ALTER TABLE drover.session_resources
    ADD COLUMN memory_store_id   text,
    ADD COLUMN access            text CHECK (access IN ('read_write', 'read_only')),
    ADD COLUMN instructions      text,
    ADD COLUMN store_name        text,
    ADD COLUMN store_description text,
    ADD CONSTRAINT session_resources_type_check CHECK (type IN ('github_repository', 'file', 'memory_store')),
    ADD CONSTRAINT session_resources_shape_check CHECK (
        CASE type WHEN 'file' THEN file_id IS NOT NULL AND url IS NULL
                  WHEN 'memory_store' THEN memory_store_id IS NOT NULL AND access IS NOT NULL AND url IS NULL
                  ELSE url IS NOT NULL AND file_id IS NULL END);
CREATE INDEX session_resources_store ON drover.session_resources (memory_store_id) WHERE memory_store_id IS NOT NULL;

CREATE OR REPLACE FUNCTION drover.api_session_resource_json(r drover.session_resources) RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF r.type = 'memory_store' THEN
        RETURN jsonb_build_object(
            'type', 'memory_store', 'id', r.id, 'memory_store_id', r.memory_store_id, 'access', r.access,
            'instructions', r.instructions, 'mount_path', r.mount_path, 'name', r.store_name, 'description', coalesce(r.store_description, ''),
            'created_at', drover.api_time(r.created_at), 'updated_at', drover.api_time(r.updated_at));
    END IF;
    IF r.type = 'file' THEN
        RETURN jsonb_build_object(
            'type', 'file', 'id', r.id, 'file_id', r.file_id, 'mount_path', r.mount_path,
            'created_at', drover.api_time(r.created_at), 'updated_at', drover.api_time(r.updated_at));
    END IF;
    RETURN jsonb_build_object(
        'type', r.type, 'id', r.id, 'url', r.url, 'mount_path', r.mount_path, 'checkout', r.checkout,
        'created_at', drover.api_time(r.created_at), 'updated_at', drover.api_time(r.updated_at));
END;
$$;

-- One change a session's agent made in a mounted store, by path: create (no memory there and
-- p_expected_sha256 NULL), update (p_content, the memory's hash must still be p_expected_sha256)
-- or delete (p_delete). Written only while p_owner holds the session's lease at p_epoch and the
-- store is attached read_write. `written` is false (nothing written) when the lease is not held;
-- `sha256` is the memory's content hash after the write (NULL for a deletion), which the harness
-- keeps as its next precondition. A memory changed meanwhile by someone else is `conflict`, as
-- for any other writer.
CREATE FUNCTION drover.memory_sync(p_session text, p_owner text, p_epoch bigint, p_store text, p_path text, p_content text,
                                   p_expected_sha256 text, p_delete boolean)
RETURNS TABLE (written boolean, sha256 text) LANGUAGE plpgsql AS $$
DECLARE
    s drover.sessions;
    v_written drover.memories;
    v_memory text;
BEGIN
    SELECT * INTO s FROM drover.sessions WHERE id = p_session AND status = 'running' AND lease_owner = p_owner AND lease_epoch = p_epoch
       FOR SHARE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT false, NULL::text;
        RETURN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM drover.session_resources r
                    WHERE r.session_id = p_session AND r.memory_store_id = p_store AND r.access = 'read_write') THEN
        PERFORM drover.raise_coded('invalid_argument', format('memory store %s is not attached read_write to session %s', p_store, p_session));
    END IF;
    SELECT m.id INTO v_memory FROM drover.memories m WHERE m.store_id = p_store AND m.path = p_path;
    IF v_memory IS NULL AND (p_delete OR p_expected_sha256 IS NOT NULL) THEN
        PERFORM drover.raise_coded('conflict', format('no memory at %s any more', p_path));
    END IF;
    IF v_memory IS NOT NULL AND p_expected_sha256 IS NULL AND NOT p_delete THEN
        PERFORM drover.raise_coded('conflict', format('a memory was created at %s meanwhile', p_path));
    END IF;
    v_written := drover.memory_write(s.org_id, p_store, v_memory, CASE WHEN v_memory IS NULL THEN p_path END, p_content,
                                     p_expected_sha256, p_delete, jsonb_build_object('type', 'session_actor', 'session_id', p_session), p_epoch);
    RETURN QUERY SELECT true, CASE WHEN p_delete THEN NULL ELSE v_written.content_sha256 END;
END;
$$;
