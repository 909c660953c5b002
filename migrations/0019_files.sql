-- Files (issue #23, item 3): what the SDK's `client.beta.files` uploads, lists, describes,
-- downloads and deletes. Scoped to their organisation; the bytes are kept here (bytea, which
-- Postgres compresses and stores out of line), so files need nothing beyond Postgres and every
-- API replica serves every file. A file is at most the API's request body limit (8 MiB,
-- multipart framing included). One uploaded with `expires_in_seconds` stops being downloadable
-- at its expiry (`downloadable: false`, the content answers 404), and the organisation's next
-- upload drops its bytes; its metadata stays until it is deleted.
CREATE TABLE drover.files (
    id          text        PRIMARY KEY,
    org_id      text        NOT NULL REFERENCES drover.organizations (id),
    filename    text        NOT NULL,
    mime_type   text        NOT NULL,
    size_bytes  bigint      NOT NULL,
    content     bytea       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz,
    -- The session a file was made in (outputs), NULL for uploads.
    scope_id    text
);
CREATE INDEX files_org_newest ON drover.files (org_id, created_at DESC, id DESC);

CREATE FUNCTION drover.api_file_json(f drover.files) RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN jsonb_build_object(
        'type', 'file', 'id', f.id, 'filename', f.filename, 'mime_type', f.mime_type, 'size_bytes', f.size_bytes,
        'created_at', drover.api_time(f.created_at), 'expires_at', drover.api_time(f.expires_at),
        'downloadable', f.expires_at IS NULL OR f.expires_at > now(),
        'scope', CASE WHEN f.scope_id IS NULL THEN NULL ELSE jsonb_build_object('type', 'session', 'id', f.scope_id) END);
END;
$$;
