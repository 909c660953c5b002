-- Vaults, credentials and session resources (issue #13).
--
-- Secrets (a credential's token, a repository's authorization_token) are sealed with pgcrypto's
-- pgp_sym_encrypt under a key the database never stores: the process that writes or reads them
-- (drover api, a harness) passes it from DROVER_VAULT_KEY or DROVER_VAULT_KEY_FILE as a statement
-- parameter. Each sealed value records its key's id (a hash), so that a wrong key is refused with
-- a clear code (DR020) instead of garbage, and `drover vault rotate-key` can re-seal in one
-- transaction. The API never returns a secret; the harness reads them only to use them.

CREATE EXTENSION IF NOT EXISTS pgcrypto;

CREATE TABLE drover.vaults (
    id           text        PRIMARY KEY,
    org_id       text        NOT NULL REFERENCES drover.organizations (id),
    display_name text        NOT NULL,
    metadata     jsonb       NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    archived_at  timestamptz
);
CREATE INDEX vaults_org_idx ON drover.vaults (org_id, created_at DESC, id);

CREATE TABLE drover.vault_credentials (
    id             text        PRIMARY KEY,
    vault_id       text        NOT NULL REFERENCES drover.vaults (id) ON DELETE CASCADE,
    org_id         text        NOT NULL REFERENCES drover.organizations (id),
    display_name   text,
    metadata       jsonb       NOT NULL DEFAULT '{}',
    auth_type      text        NOT NULL CHECK (auth_type IN ('static_bearer')),
    mcp_server_url text        NOT NULL,
    secret         bytea       NOT NULL,
    key_id         text        NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    archived_at    timestamptz
);
CREATE INDEX vault_credentials_vault_idx ON drover.vault_credentials (vault_id, created_at DESC, id);

-- The vaults whose credentials a session's MCP servers use, in order (the first match wins).
ALTER TABLE drover.sessions ADD COLUMN vault_ids text[] NOT NULL DEFAULT '{}';

-- A session's repositories: cloned into its sandbox at provision, through the pool's relay.
CREATE TABLE drover.session_resources (
    id         text        PRIMARY KEY,
    session_id text        NOT NULL REFERENCES drover.sessions (id) ON DELETE CASCADE,
    type       text        NOT NULL CHECK (type = 'github_repository'),
    url        text        NOT NULL,
    mount_path text        NOT NULL,
    checkout   jsonb,
    secret     bytea,
    key_id     text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CHECK ((secret IS NULL) = (key_id IS NULL))
);
CREATE INDEX session_resources_session_idx ON drover.session_resources (session_id);

-- `vault_key_mismatch` (DR020): a secret was sealed under another key.
CREATE FUNCTION drover.vault_key_id(p_key text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT left(encode(digest('drover-vault-key-id:' || p_key, 'sha256'), 'hex'), 16)
$$;

CREATE FUNCTION drover.vault_seal(p_secret text, p_key text) RETURNS bytea LANGUAGE sql VOLATILE AS $$
    SELECT pgp_sym_encrypt(p_secret, p_key, 'cipher-algo=aes256')
$$;

CREATE FUNCTION drover.vault_open(p_secret bytea, p_key_id text, p_key text) RETURNS text LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF p_key_id IS DISTINCT FROM drover.vault_key_id(p_key) THEN
        RAISE EXCEPTION 'vault_key_mismatch: a secret was sealed with another vault key than this process has (see drover vault rotate-key)'
            USING ERRCODE = 'DR020';
    END IF;
    RETURN pgp_sym_decrypt(p_secret, p_key);
END
$$;

-- Re-seals every secret sealed under p_old with p_new, in the caller's transaction; returns how many.
CREATE FUNCTION drover.vault_rotate_key(p_old text, p_new text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_old_id text := drover.vault_key_id(p_old);
    v_new_id text := drover.vault_key_id(p_new);
    v_credentials bigint;
    v_resources bigint;
BEGIN
    UPDATE drover.vault_credentials
       SET secret = drover.vault_seal(drover.vault_open(secret, key_id, p_old), p_new), key_id = v_new_id, updated_at = now()
     WHERE key_id = v_old_id;
    GET DIAGNOSTICS v_credentials = ROW_COUNT;
    UPDATE drover.session_resources
       SET secret = drover.vault_seal(drover.vault_open(secret, key_id, p_old), p_new), key_id = v_new_id, updated_at = now()
     WHERE key_id = v_old_id;
    GET DIAGNOSTICS v_resources = ROW_COUNT;
    RETURN v_credentials + v_resources;
END
$$;

CREATE FUNCTION drover.api_vault_json(v drover.vaults) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'type', 'vault', 'id', v.id, 'display_name', v.display_name, 'metadata', v.metadata,
        'created_at', drover.api_time(v.created_at), 'updated_at', drover.api_time(v.updated_at),
        'archived_at', drover.api_time(v.archived_at))
$$;

-- Never the token: Managed Agents returns a credential's non-secret fields only.
CREATE FUNCTION drover.api_credential_json(c drover.vault_credentials) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'type', 'vault_credential', 'id', c.id, 'vault_id', c.vault_id, 'display_name', c.display_name,
        'metadata', c.metadata, 'auth', jsonb_build_object('type', c.auth_type, 'mcp_server_url', c.mcp_server_url),
        'created_at', drover.api_time(c.created_at), 'updated_at', drover.api_time(c.updated_at),
        'archived_at', drover.api_time(c.archived_at))
$$;

CREATE FUNCTION drover.api_session_resource_json(r drover.session_resources) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'type', r.type, 'id', r.id, 'url', r.url, 'mount_path', r.mount_path, 'checkout', r.checkout,
        'created_at', drover.api_time(r.created_at), 'updated_at', drover.api_time(r.updated_at))
$$;

-- A session now shows its resources and vaults (otherwise as 0010 rendered it).
CREATE OR REPLACE FUNCTION drover.api_session_json(s drover.sessions) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'type', 'session', 'id', s.id, 'title', s.title, 'metadata', s.metadata, 'environment_id', s.environment_id,
        'status', CASE s.status WHEN 'queued' THEN 'running' ELSE s.status END,
        'agent', (SELECT (drover.api_agent_json(a) - 'created_at' - 'updated_at' - 'archived_at' - 'metadata')
                    FROM drover.agents a WHERE a.id = s.agent_id AND a.version = s.agent_version),
        'resources', (SELECT coalesce(jsonb_agg(drover.api_session_resource_json(r) ORDER BY r.created_at, r.id), '[]')
                        FROM drover.session_resources r WHERE r.session_id = s.id),
        'vault_ids', to_jsonb(s.vault_ids), 'outcome_evaluations', '[]'::jsonb,
        'stats', jsonb_build_object('duration_seconds', extract(epoch FROM now() - s.created_at),
                                    'active_seconds', drover.api_active_seconds(s.id)),
        'usage', (SELECT jsonb_build_object(
                      'active_seconds', drover.api_active_seconds(s.id),
                      'input_tokens', coalesce(sum((coalesce(e.payload -> 'model_usage', e.payload -> 'usage') ->> 'input_tokens')::bigint), 0),
                      'output_tokens', coalesce(sum((coalesce(e.payload -> 'model_usage', e.payload -> 'usage') ->> 'output_tokens')::bigint), 0),
                      'cache_read_input_tokens', coalesce(sum((coalesce(e.payload -> 'model_usage', e.payload -> 'usage') ->> 'cache_read_input_tokens')::bigint), 0))
                    FROM drover.events e WHERE e.session_id = s.id AND e.type = 'span.model_request_end'),
        'created_at', drover.api_time(s.created_at), 'updated_at', drover.api_time(s.updated_at),
        'archived_at', drover.api_time(s.archived_at))
$$;
