-- Skills (issue #23, item 4): what the SDK's `client.beta.skills` and `.skills.versions` manage.
-- A skill is a folder of files with a SKILL.md at its root (YAML frontmatter: name and
-- description); every upload is an immutable version of it, and the skill's name (a kebab-case
-- slug, the folder's name) never changes. An agent names skills (`{type: custom, skill_id,
-- version}`, version `latest` by default), resolved to a version when the agent version is
-- written; its sessions' sandboxes get each skill's files read-only at /mnt/skills/<name>/ and
-- the system prompt lists each skill with its description.
CREATE TABLE drover.skills (
    id                text        PRIMARY KEY,
    org_id            text        NOT NULL REFERENCES drover.organizations (id),
    name              text        NOT NULL,
    display_name      text        NOT NULL,
    latest_version_id text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    -- Skills are deleted, not archived; the column lets them be listed as every resource is.
    archived_at       timestamptz
);
CREATE INDEX skills_org_newest ON drover.skills (org_id, created_at DESC, id DESC);

-- A version's id is its creation time in microseconds since the epoch, as the hosted API's are
-- (one skill's versions never share one: a second upload in the same microsecond takes the next).
CREATE TABLE drover.skill_versions (
    skill_id    text        NOT NULL REFERENCES drover.skills (id) ON DELETE CASCADE,
    id          text        NOT NULL,
    name        text        NOT NULL,
    description text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (skill_id, id)
);

-- A version's files, by path under the skill's folder (`/SKILL.md`, `/scripts/run.sh`); the id
-- is the file's name in a sandbox's session files (`file_…`).
CREATE TABLE drover.skill_files (
    id         text    PRIMARY KEY,
    skill_id   text    NOT NULL,
    version_id text    NOT NULL,
    path       text    NOT NULL,
    content    bytea   NOT NULL,
    FOREIGN KEY (skill_id, version_id) REFERENCES drover.skill_versions (skill_id, id) ON DELETE CASCADE,
    UNIQUE (skill_id, version_id, path)
);

CREATE FUNCTION drover.api_skill_json(s drover.skills) RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (SELECT jsonb_build_object(
        'type', 'skill', 'id', s.id, 'display_name', s.display_name, 'latest_version_id', s.latest_version_id,
        'source', jsonb_build_object('type', 'custom'),
        'created_at', drover.api_time(s.created_at), 'updated_at', drover.api_time(s.updated_at)));
END;
$$;

CREATE FUNCTION drover.api_skill_version_json(v drover.skill_versions) RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (SELECT jsonb_build_object(
        'type', 'skill_version', 'id', v.id, 'skill_id', v.skill_id, 'name', v.name, 'description', v.description,
        'created_at', drover.api_time(v.created_at)));
END;
$$;

-- Adds a version to a skill (p_skill NULL: a new skill of p_org named p_name) with its files
-- (p_paths and p_contents, in step). The name must be the skill's. Returns the skill's id and the
-- version's.
CREATE FUNCTION drover.skill_upload(p_org text, p_skill text, p_display_name text, p_name text, p_description text,
                                    p_paths text[], p_contents bytea[], OUT skill_id text, OUT version_id text)
LANGUAGE plpgsql AS $$
DECLARE
    s drover.skills;
BEGIN
    IF p_skill IS NULL THEN
        INSERT INTO drover.skills (id, org_id, name, display_name)
        VALUES (drover.new_id('skill'), p_org, p_name, coalesce(p_display_name, p_name)) RETURNING * INTO s;
    ELSE
        SELECT * INTO s FROM drover.skills WHERE id = p_skill AND org_id = p_org FOR UPDATE;
        IF NOT FOUND THEN
            PERFORM drover.raise_coded('not_found', format('no skill %s', p_skill));
        END IF;
        IF s.name <> p_name THEN
            PERFORM drover.raise_coded('invalid_argument', format('skill %s is named %s: a version''s SKILL.md must name it so (it names %s)', p_skill, s.name, p_name));
        END IF;
    END IF;
    version_id := (floor(extract(epoch FROM clock_timestamp()) * 1000000))::bigint::text;
    IF s.latest_version_id IS NOT NULL AND version_id::bigint <= s.latest_version_id::bigint THEN
        version_id := (s.latest_version_id::bigint + 1)::text;
    END IF;
    INSERT INTO drover.skill_versions (skill_id, id, name, description) VALUES (s.id, version_id, p_name, p_description);
    INSERT INTO drover.skill_files (id, skill_id, version_id, path, content)
    SELECT drover.new_id('file'), s.id, version_id, f.path, f.content FROM unnest(p_paths, p_contents) AS f(path, content);
    UPDATE drover.skills SET latest_version_id = version_id, updated_at = now() WHERE id = s.id;
    skill_id := s.id;
END;
$$;

-- Skills and MCP servers change through agents.update too (issue #23, item 5): as 0010's, and
-- `skills` (resolved by the caller) and `mcp_servers` (checked by the caller) replace the
-- version's lists.
CREATE OR REPLACE FUNCTION drover.api_update_agent(p_org text, p_id text, p_version integer, p_patch jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    a drover.agents;
    v_next drover.agents;
BEGIN
    SELECT * INTO a FROM drover.agents WHERE id = p_id AND org_id = p_org ORDER BY version DESC LIMIT 1 FOR UPDATE;
    IF NOT FOUND THEN
        PERFORM drover.raise_coded('not_found', format('no agent %s', p_id));
    END IF;
    IF p_version IS DISTINCT FROM a.version THEN
        PERFORM drover.raise_coded('conflict', format('agent %s is at version %s, not %s: retrieve it and apply the change again',
                                                      p_id, a.version, coalesce(p_version::text, 'none')));
    END IF;
    v_next := a;
    v_next.version := a.version + 1;
    v_next.created_at := now();
    IF p_patch ? 'name' THEN v_next.name := p_patch ->> 'name'; END IF;
    IF p_patch ? 'description' THEN v_next.description := p_patch ->> 'description'; END IF;
    IF p_patch ? 'system' THEN v_next.system_prompt := coalesce(p_patch ->> 'system', ''); END IF;
    IF p_patch ? 'tools' THEN v_next.tools := p_patch -> 'tools'; END IF;
    IF p_patch ? 'model' THEN
        v_next.model := CASE jsonb_typeof(p_patch -> 'model') WHEN 'string' THEN p_patch ->> 'model' ELSE p_patch -> 'model' ->> 'id' END;
        v_next.config := v_next.config || jsonb_build_object('model_config',
            CASE jsonb_typeof(p_patch -> 'model') WHEN 'string' THEN jsonb_build_object('id', p_patch ->> 'model', 'speed', 'standard')
                 ELSE p_patch -> 'model' END);
    END IF;
    IF p_patch ? 'skills' THEN
        v_next.config := v_next.config || jsonb_build_object('skills', coalesce(nullif(p_patch -> 'skills', 'null'::jsonb), '[]'::jsonb));
    END IF;
    IF p_patch ? 'mcp_servers' THEN
        v_next.config := v_next.config || jsonb_build_object('mcp_servers', coalesce(nullif(p_patch -> 'mcp_servers', 'null'::jsonb), '[]'::jsonb));
    END IF;
    IF p_patch ? 'metadata' THEN
        v_next.metadata := jsonb_strip_nulls(a.metadata || p_patch -> 'metadata');
    END IF;
    IF v_next.name IS NULL OR v_next.name = '' OR v_next.model IS NULL OR v_next.model = '' THEN
        PERFORM drover.raise_coded('invalid_argument', 'an agent needs a name and a model');
    END IF;
    IF (v_next.name, v_next.description, v_next.system_prompt, v_next.tools, v_next.model, v_next.config, v_next.metadata)
       IS NOT DISTINCT FROM (a.name, a.description, a.system_prompt, a.tools, a.model, a.config, a.metadata) THEN
        RETURN drover.api_agent_json(a);
    END IF;
    INSERT INTO drover.agents SELECT v_next.*;
    RETURN drover.api_agent_json(v_next);
END;
$$;
