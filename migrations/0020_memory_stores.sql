-- Memory stores (issue #24, item 1): what the SDK's `client.beta.memory_stores`, `.memories` and
-- `.memory_versions` manage. A store holds memories (UTF-8 text at a path); every change to a
-- memory writes an immutable version with its operation and who made it, so the history can be
-- audited and a version redacted. Writes to one memory are serialised by its row lock, and an
-- update or delete may carry a precondition (the content's SHA-256 the caller last read): a
-- writer that read an older content gets `conflict` (409) and nothing is lost.
CREATE TABLE drover.memory_stores (
    id          text        PRIMARY KEY,
    org_id      text        NOT NULL REFERENCES drover.organizations (id),
    name        text        NOT NULL,
    description text        NOT NULL DEFAULT '',
    metadata    jsonb       NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    archived_at timestamptz
);
CREATE INDEX memory_stores_org_newest ON drover.memory_stores (org_id, created_at DESC, id DESC);

CREATE TABLE drover.memories (
    id                text        PRIMARY KEY,
    store_id          text        NOT NULL REFERENCES drover.memory_stores (id) ON DELETE CASCADE,
    path              text        NOT NULL,
    content           text        NOT NULL,
    content_sha256    text        NOT NULL,
    version_id        text        NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (store_id, path)
);

-- Versions outlive their memory (a deletion is itself a version); redaction clears what the
-- version held but keeps that it happened.
CREATE TABLE drover.memory_versions (
    id                 text        PRIMARY KEY,
    store_id           text        NOT NULL REFERENCES drover.memory_stores (id) ON DELETE CASCADE,
    memory_id          text        NOT NULL,
    operation          text        NOT NULL CHECK (operation IN ('created', 'modified', 'deleted')),
    path               text,
    content            text,
    content_sha256     text,
    content_size_bytes integer,
    created_at         timestamptz NOT NULL DEFAULT clock_timestamp(),
    created_by         jsonb       NOT NULL,
    -- For a session's write (drover.memory_sync, migration 0022): the lease epoch it was made
    -- under, which `drover verify` checks was still in force.
    lease_epoch        bigint,
    redacted_at        timestamptz,
    redacted_by        jsonb
);
CREATE INDEX memory_versions_store_newest ON drover.memory_versions (store_id, created_at DESC, id DESC);
CREATE INDEX memory_versions_memory ON drover.memory_versions (memory_id, created_at DESC);

CREATE FUNCTION drover.api_memory_store_json(s drover.memory_stores) RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN jsonb_build_object(
        'type', 'memory_store', 'id', s.id, 'name', s.name, 'description', s.description, 'metadata', s.metadata,
        'created_at', drover.api_time(s.created_at), 'updated_at', drover.api_time(s.updated_at),
        'archived_at', drover.api_time(s.archived_at));
END;
$$;

CREATE FUNCTION drover.api_memory_json(m drover.memories, p_full boolean) RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN jsonb_build_object(
        'type', 'memory', 'id', m.id, 'memory_store_id', m.store_id, 'path', m.path,
        'content', CASE WHEN p_full THEN to_jsonb(m.content) ELSE 'null'::jsonb END,
        'content_sha256', m.content_sha256, 'content_size_bytes', octet_length(m.content),
        'memory_version_id', m.version_id,
        'created_at', drover.api_time(m.created_at), 'updated_at', drover.api_time(m.updated_at));
END;
$$;

CREATE FUNCTION drover.api_memory_version_json(v drover.memory_versions, p_full boolean) RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN jsonb_build_object(
        'type', 'memory_version', 'id', v.id, 'memory_store_id', v.store_id, 'memory_id', v.memory_id,
        'operation', v.operation, 'path', v.path,
        'content', CASE WHEN p_full THEN to_jsonb(v.content) ELSE 'null'::jsonb END,
        'content_sha256', v.content_sha256, 'content_size_bytes', v.content_size_bytes,
        'created_at', drover.api_time(v.created_at), 'created_by', v.created_by,
        'redacted_at', drover.api_time(v.redacted_at), 'redacted_by', v.redacted_by);
END;
$$;

-- Writes one memory and records the version, in one statement. p_memory NULL: create at p_path
-- (conflict when the path is taken). Else update: p_content NULL keeps the content, p_path NULL
-- keeps the path; p_expected_sha256, when given, must be the current content's hash. p_delete:
-- delete (with the same precondition). The store must belong to p_org; only a live store takes
-- creates and updates (an archived one may still lose memories). Returns the memory as it is
-- now (for a deletion, as it was).
CREATE FUNCTION drover.memory_write(p_org text, p_store text, p_memory text, p_path text, p_content text,
                                    p_expected_sha256 text, p_delete boolean, p_actor jsonb, p_lease_epoch bigint DEFAULT NULL)
RETURNS drover.memories LANGUAGE plpgsql AS $$
DECLARE
    s drover.memory_stores;
    m drover.memories;
    v_version text := drover.new_id('memver');
    v_sha text;
BEGIN
    SELECT * INTO s FROM drover.memory_stores WHERE id = p_store AND org_id = p_org;
    IF NOT FOUND THEN
        PERFORM drover.raise_coded('not_found', format('no memory store %s', p_store));
    END IF;
    IF s.archived_at IS NOT NULL AND NOT p_delete THEN
        PERFORM drover.raise_coded('conflict', format('memory store %s is archived: its memories can be read and deleted, not written', p_store));
    END IF;
    IF p_memory IS NULL THEN
        v_sha := encode(sha256(convert_to(p_content, 'UTF8')), 'hex');
        INSERT INTO drover.memories AS n (id, store_id, path, content, content_sha256, version_id)
        VALUES (drover.new_id('mem'), p_store, p_path, p_content, v_sha, v_version)
        ON CONFLICT (store_id, path) DO NOTHING
        RETURNING * INTO m;
        IF NOT FOUND THEN
            PERFORM drover.raise_coded('conflict', format('a memory already exists at %s', p_path));
        END IF;
        INSERT INTO drover.memory_versions (id, store_id, memory_id, operation, path, content, content_sha256, content_size_bytes, created_by, lease_epoch)
        VALUES (v_version, p_store, m.id, 'created', m.path, m.content, v_sha, octet_length(m.content), p_actor, p_lease_epoch);
        RETURN m;
    END IF;
    SELECT * INTO m FROM drover.memories WHERE id = p_memory AND store_id = p_store FOR UPDATE;
    IF NOT FOUND THEN
        PERFORM drover.raise_coded('not_found', format('no memory %s in memory store %s', p_memory, p_store));
    END IF;
    IF p_expected_sha256 IS NOT NULL AND p_expected_sha256 <> m.content_sha256 THEN
        PERFORM drover.raise_coded('conflict', format('precondition failed: the content of %s is %s now', p_memory, m.content_sha256));
    END IF;
    IF p_delete THEN
        DELETE FROM drover.memories WHERE id = m.id;
        INSERT INTO drover.memory_versions (id, store_id, memory_id, operation, created_by, lease_epoch)
        VALUES (v_version, p_store, m.id, 'deleted', p_actor, p_lease_epoch);
        RETURN m;
    END IF;
    IF p_path IS NOT NULL AND p_path <> m.path
       AND EXISTS (SELECT 1 FROM drover.memories o WHERE o.store_id = p_store AND o.path = p_path) THEN
        PERFORM drover.raise_coded('conflict', format('a memory already exists at %s', p_path));
    END IF;
    v_sha := CASE WHEN p_content IS NULL THEN m.content_sha256 ELSE encode(sha256(convert_to(p_content, 'UTF8')), 'hex') END;
    UPDATE drover.memories
       SET path = coalesce(p_path, path), content = coalesce(p_content, content), content_sha256 = v_sha,
           version_id = v_version, updated_at = now()
     WHERE id = m.id
    RETURNING * INTO m;
    INSERT INTO drover.memory_versions (id, store_id, memory_id, operation, path, content, content_sha256, content_size_bytes, created_by, lease_epoch)
    VALUES (v_version, p_store, m.id, 'modified', m.path, m.content, v_sha, octet_length(m.content), p_actor, p_lease_epoch);
    RETURN m;
END;
$$;
