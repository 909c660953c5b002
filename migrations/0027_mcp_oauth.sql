-- MCP OAuth credentials (issue #23, item 5): `{type: mcp_oauth, mcp_server_url, access_token,
-- expires_at, refresh: {refresh_token, client_id, token_endpoint, token_endpoint_auth, scope,
-- resource}}`. What is secret (the access token, the refresh token, the client secret) is sealed
-- together as one JSON object in `secret`, so key rotation re-seals it as it does a bearer token;
-- what is not (the expiry, the refresh configuration without its secrets) is kept in the clear
-- and answered. The harness refreshes an access token that has expired (or is about to) before it
-- connects the MCP server, and stores the new one sealed, compare-and-set on `token_version` so
-- two harnesses refreshing at once keep one result.
ALTER TABLE drover.vault_credentials DROP CONSTRAINT vault_credentials_auth_type_check;
ALTER TABLE drover.vault_credentials
    ADD CONSTRAINT vault_credentials_auth_type_check CHECK (auth_type IN ('static_bearer', 'mcp_oauth')),
    ADD COLUMN expires_at    timestamptz,
    ADD COLUMN refresh       jsonb,
    ADD COLUMN token_version integer NOT NULL DEFAULT 0;

CREATE OR REPLACE FUNCTION drover.api_credential_json(c drover.vault_credentials) RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (SELECT jsonb_build_object(
        'type', 'vault_credential', 'id', c.id, 'vault_id', c.vault_id, 'display_name', c.display_name,
        'metadata', c.metadata,
        'auth', CASE c.auth_type
                WHEN 'mcp_oauth' THEN jsonb_build_object('type', 'mcp_oauth', 'mcp_server_url', c.mcp_server_url,
                                                         'expires_at', drover.api_time(c.expires_at), 'refresh', c.refresh)
                ELSE jsonb_build_object('type', c.auth_type, 'mcp_server_url', c.mcp_server_url) END,
        'created_at', drover.api_time(c.created_at), 'updated_at', drover.api_time(c.updated_at),
        'archived_at', drover.api_time(c.archived_at)));
END;
$$;
