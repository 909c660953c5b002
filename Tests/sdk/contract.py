"""The contract test (issue #23, first part): every endpoint `drover api` serves for agents,
environments, sessions, events, resources, vaults, credentials, files, memory stores and dreams, called through the pinned SDK,
each response (and each listed event) validated with the SDK's own pydantic models in strict mode.
Run by DroverAPITests.SDKTests with DROVER_API_URL and DROVER_KEY_A. Collects every mismatch and
fails with the list; prints "all checks passed" when there is none.
"""
import json
import os
import time

import anthropic
import pydantic

from checks import failures, finish, read_stream, refused, strict
from anthropic.types.beta import (
    BetaDeletedFile,
    BetaDream,
    BetaEnvironment,
    BetaFileMetadata,
    BetaEnvironmentDeleteResponse,
    BetaManagedAgentsAgent,
    BetaManagedAgentsSession,
)
from anthropic.types.beta.sessions import (
    BetaManagedAgentsSendSessionEvents,
    BetaManagedAgentsSessionEvent,
    BetaManagedAgentsStreamSessionEvents,
    ResourceRetrieveResponse,
    ResourceUpdateResponse,
)
from anthropic.types.beta.beta_managed_agents_deleted_session import BetaManagedAgentsDeletedSession
from anthropic.types.beta.beta_managed_agents_vault import BetaManagedAgentsVault
from anthropic.types.beta.beta_managed_agents_deleted_vault import BetaManagedAgentsDeletedVault
from anthropic.types.beta.vaults import BetaManagedAgentsCredential, BetaManagedAgentsDeletedCredential
from anthropic.types.beta.beta_managed_agents_memory_store import BetaManagedAgentsMemoryStore
from anthropic.types.beta.beta_managed_agents_deleted_memory_store import BetaManagedAgentsDeletedMemoryStore
from anthropic.types.beta.memory_stores import (
    BetaManagedAgentsDeletedMemory,
    BetaManagedAgentsMemory,
    BetaManagedAgentsMemoryListItem,
    BetaManagedAgentsMemoryVersion,
)

client = anthropic.Anthropic(api_key=os.environ["DROVER_KEY_A"], base_url=os.environ["DROVER_API_URL"], max_retries=0)
beta = client.beta
def raw(call):
    """The JSON body of an SDK call made with `with_raw_response`."""
    return call.http_response.json()


def page(name, model, body):
    strict(name + " (page)", pydantic.create_model("Page", data=(list[model], ...), next_page=(str | None, ...)), body)


agent = raw(beta.agents.with_raw_response.create(name="contract", model="claude-sonnet-4-5", tools=[{"type": "agent_toolset_20260401"}]))
strict("agents.create", BetaManagedAgentsAgent, agent)
strict("agents.retrieve", BetaManagedAgentsAgent, raw(beta.agents.with_raw_response.retrieve(agent["id"])))
updated = raw(beta.agents.with_raw_response.update(agent["id"], version=agent["version"], description="updated"))
strict("agents.update", BetaManagedAgentsAgent, updated)
page("agents.list", BetaManagedAgentsAgent, raw(beta.agents.with_raw_response.list()))
# What Drover does not do is refused, not stored and ignored; the service account is every agent's.
strict("agents.update (execution_identity)", BetaManagedAgentsAgent, raw(beta.agents.with_raw_response.update(
    agent["id"], version=updated["version"], execution_identity={"type": "service_account"})))
for bad in [dict(execution_identity={"type": "aws_role", "role_arn": "arn:aws:iam::1:role/x"}),
            dict(multiagent={"type": "coordinator", "agents": ["agent_nobody"]}),
            dict(multiagent={"type": "multiagent_20261001", "advisor": {"type": "enabled"}})]:
    try:
        beta.agents.create(name="refused", model="claude-sonnet-4-5", **bad)
        failures.append(f"agents.create accepted {bad}")
    except anthropic.BadRequestError:
        pass

# multiagent: stored, resolved and returned as the SDK defines it (its behaviour is issue #25).
coordinator = raw(beta.agents.with_raw_response.create(name="coordinator", model="claude-sonnet-4-5", multiagent={
    "type": "coordinator", "agents": [agent["id"], {"type": "self"}, {"type": "advisor", "model": "claude-opus-4-1"}]}))
strict("agents.create (multiagent coordinator)", BetaManagedAgentsAgent, coordinator)
if coordinator["multiagent"] != {"type": "coordinator", "agents": [
        {"type": "agent", "id": agent["id"], "version": 2}, {"type": "agent", "id": coordinator["id"], "version": 1},
        {"type": "advisor", "model": "claude-opus-4-1"}]}:
    failures.append(f"the coordinator's roster, resolved: {coordinator['multiagent']}")
threads = raw(beta.agents.with_raw_response.create(name="threads", model="claude-sonnet-4-5", multiagent={"type": "multiagent_20261001"}))
strict("agents.create (multiagent_20261001)", BetaManagedAgentsAgent, threads)
merged = raw(beta.agents.with_raw_response.update(threads["id"], version=1, multiagent={
    "type": "multiagent_20261001", "advisor": {"type": "enabled", "model": "claude-opus-4-1"},
    "workflows": {"type": "enabled", "inline_agents": {"type": "disabled"}, "predefined_agents": [{"type": "agent", "id": agent["id"], "version": 1}]}}))
strict("agents.update (multiagent merged)", BetaManagedAgentsAgent, merged)
if merged["multiagent"]["subagents"] != threads["multiagent"]["subagents"] or merged["multiagent"]["advisor"] != {"type": "enabled", "model": "claude-opus-4-1"} \
        or merged["multiagent"]["workflows"]["predefined_agents"] != [{"type": "agent", "id": agent["id"], "version": 1}]:
    failures.append(f"agents.update did not merge multiagent: {threads['multiagent']} then {merged['multiagent']}")
refused("a roster naming an agent with its own multiagent", 400, lambda: beta.agents.create(
    name="deep", model="claude-sonnet-4-5", multiagent={"type": "coordinator", "agents": [threads["id"]]}))
cleared = raw(beta.agents.with_raw_response.update(threads["id"], version=merged["version"], multiagent=None))
if cleared["multiagent"] is not None:
    failures.append(f"multiagent: null did not remove it: {cleared['multiagent']}")
page("agents.versions.list", BetaManagedAgentsAgent, raw(beta.agents.versions.with_raw_response.list(agent["id"])))

environment = raw(beta.environments.with_raw_response.create(name="contract", config={"type": "cloud"}))
strict("environments.create", BetaEnvironment, environment)
strict("environments.retrieve", BetaEnvironment, raw(beta.environments.with_raw_response.retrieve(environment["id"])))
strict("environments.update", BetaEnvironment, raw(beta.environments.with_raw_response.update(environment["id"], description="d")))
page("environments.list", BetaEnvironment, raw(beta.environments.with_raw_response.list()))

session = raw(beta.sessions.with_raw_response.create(agent=agent["id"], environment_id=environment["id"], title="contract"))
strict("sessions.create", BetaManagedAgentsSession, session)
strict("sessions.retrieve", BetaManagedAgentsSession, raw(beta.sessions.with_raw_response.retrieve(session["id"])))
strict("sessions.update", BetaManagedAgentsSession, raw(beta.sessions.with_raw_response.update(session["id"], title="renamed")))
for field, value in [("vault_ids", ["vlt_x"]), ("budget", {"max_list_cost": 1})]:
    try:
        beta.sessions.update(session["id"], **{field: value})
        failures.append(f"sessions.update: {field} was accepted, and this server cannot apply it")
    except anthropic.BadRequestError:
        print("ok sessions.update refuses", field, flush=True)
page("sessions.list", BetaManagedAgentsSession, raw(beta.sessions.with_raw_response.list()))
# sessions.list's filters and order, served in SQL.
second_session = beta.sessions.create(agent=agent["id"], environment_id=environment["id"])
ascending = [s.id for s in beta.sessions.list(order="asc", limit=1)]
descending = [s.id for s in beta.sessions.list(order="desc")]
if ascending != list(reversed(descending)) or session["id"] not in ascending:
    failures.append(f"sessions.list order: asc {ascending}, desc {descending}")
page("sessions.list (filters)", BetaManagedAgentsSession, raw(beta.sessions.with_raw_response.list(
    statuses=["idle", "running"], agent_version=session["agent"]["version"], created_at_gte="2020-01-01T00:00:00Z")))
if [s.id for s in beta.sessions.list(created_at_gt=second_session.created_at)] != []:
    failures.append("sessions.list created_at_gt: a session created at the bound was listed")
if [s.id for s in beta.sessions.list(created_at_lte=second_session.created_at, order="asc")][-1:] != [second_session.id]:
    failures.append("sessions.list created_at_lte: the session created at the bound was not listed last")
if list(beta.sessions.list(statuses=["terminated"])) or list(beta.sessions.list(agent_version=999)) or list(beta.sessions.list(memory_store_id="memstore_x")):
    failures.append("sessions.list: a filter that matches nothing listed sessions")
for bad in [dict(statuses=["sleeping"]), dict(order="sideways"), dict(created_at_gte="yesterday")]:
    try:
        beta.sessions.list(**bad)
        failures.append(f"sessions.list accepted {bad}")
    except anthropic.BadRequestError:
        pass
page("agents.list (created_at)", BetaManagedAgentsAgent, raw(beta.agents.with_raw_response.list(created_at_gte="2020-01-01T00:00:00Z")))
if list(beta.agents.list(created_at_lte="2020-01-01T00:00:00Z")):
    failures.append("agents.list created_at_lte: agents made now were listed before 2020")

# The stream, read raw: every event the turn produces, each validated as the stream's model.
streamed = []
with beta.sessions.events.with_streaming_response.stream(session["id"]) as response:
    sent = raw(beta.sessions.events.with_raw_response.send(
        session["id"], events=[{"type": "user.message", "content": [{"type": "text", "text": "hello"}]},
                               {"type": "system.message", "content": [{"type": "text", "text": "Answer briefly."}]}]))
    strict("events.send", BetaManagedAgentsSendSessionEvents, sent)
    if [event.get("type") for event in sent.get("data") or []] != ["user.message", "system.message"]:
        failures.append(f"events.send: data is not the event sent: {sent}")
    read_stream(response, streamed)
for event in streamed:
    strict(f"events.stream ({event['type']})", BetaManagedAgentsStreamSessionEvents, event)
if not any(event["type"] == "agent.tool_result" for event in streamed):
    failures.append(f"events.stream: the turn streamed no tool result: {[e['type'] for e in streamed]}")
page("events.list", BetaManagedAgentsSessionEvent, raw(beta.sessions.events.with_raw_response.list(session["id"])))

# sessions.update(agent=…): the idle session's tools change from its next turn on; it still shows
# the agent version it was created with, and the agent itself is unchanged.
lookup = {"type": "custom", "name": "lookup_two", "description": "Looks things up.", "input_schema": {"type": "object", "properties": {}}}
changed = raw(beta.sessions.with_raw_response.update(session["id"], agent={"tools": [{"type": "agent_toolset_20260401"}, lookup]}))
strict("sessions.update (agent)", BetaManagedAgentsSession, changed)
if (changed["agent"]["id"], changed["agent"]["version"]) != (session["agent"]["id"], session["agent"]["version"]) \
        or "lookup_two" not in [t.get("name") for t in changed["agent"]["tools"]]:
    failures.append(f"sessions.update(agent=): {changed['agent']}")
updates = [e for e in raw(beta.sessions.events.with_raw_response.list(session["id"]))["data"] if e["type"] == "session.updated"]
for event in updates:
    strict("events.list (session.updated)", BetaManagedAgentsSessionEvent, event)
if [sorted(k for k in e if k in ("title", "metadata", "agent")) for e in updates] != [["title"], ["agent"]] \
        or updates[0]["title"] != "renamed" or "lookup_two" not in [t.get("name") for t in updates[1]["agent"]["tools"]]:
    failures.append(f"session.updated events: {updates}")
if any("lookup_two" in json.dumps(a.model_dump(mode="json")) for a in beta.agents.list()):
    failures.append("sessions.update(agent=) changed the agent or listed its copy")
if [s.id for s in beta.sessions.list(agent_id=session["agent"]["id"], agent_version=session["agent"]["version"])].count(session["id"]) != 1:
    failures.append("a session whose agent was updated is no longer listed by its agent version")
for bad in [{"model": "other"}, {"tools": "bash"}, {"mcp_servers": [{"type": "url", "name": "x", "url": "ftp://x"}]}]:
    try:
        beta.sessions.update(session["id"], agent=bad)
        failures.append(f"sessions.update accepted agent={bad}")
    except anthropic.BadRequestError:
        pass
beta.sessions.events.send(session["id"], events=[{"type": "user.message", "content": [{"type": "text", "text": "again"}]}])
deadline = time.time() + 60
while time.time() < deadline and len([e for e in beta.sessions.events.list(session["id"]) if e.type == "session.status_idle"]) < 2:
    time.sleep(0.2)
if len([e for e in beta.sessions.events.list(session["id"]) if e.type == "session.status_idle"]) < 2:
    failures.append(f"the turn after sessions.update(agent=) did not end: {[e.type for e in beta.sessions.events.list(session['id'])]}")

# system.message: the last event, right after what it accompanies, text only, one per request.
for bad in ([{"type": "system.message", "content": [{"type": "text", "text": "x"}]}],
            [{"type": "user.message", "content": [{"type": "text", "text": "x"}]},
             {"type": "system.message", "content": [{"type": "text", "text": "x"}]},
             {"type": "system.message", "content": [{"type": "text", "text": "y"}]}],
            [{"type": "user.message", "content": [{"type": "text", "text": "x"}]}, {"type": "system.message", "content": []}]):
    try:
        beta.sessions.events.send(session["id"], events=bad)
        failures.append(f"events.send accepted {[e['type'] for e in bad]}")
    except anthropic.BadRequestError:
        pass

# A session's resources (a repository; its token is sealed and never answered).
repo = raw(beta.sessions.with_raw_response.create(
    agent=agent["id"], environment_id=environment["id"],
    resources=[{"type": "github_repository", "url": "https://git.example.com/team/repo.git", "authorization_token": "ghp_secret",
                "mount_path": "/workspace/repo"}]))
strict("sessions.create (resources)", BetaManagedAgentsSession, repo)
listed = raw(beta.sessions.resources.with_raw_response.list(repo["id"]))
page("sessions.resources.list", ResourceRetrieveResponse, listed)
strict("sessions.resources.retrieve", ResourceRetrieveResponse,
       raw(beta.sessions.resources.with_raw_response.retrieve(listed["data"][0]["id"], session_id=repo["id"])))
rotated = raw(beta.sessions.resources.with_raw_response.update(listed["data"][0]["id"], session_id=repo["id"], authorization_token="ghp_rotated"))
strict("sessions.resources.update", ResourceUpdateResponse, rotated)
if "ghp_" in json.dumps(rotated):
    failures.append("sessions.resources.update answered the token")

# Tools of every kind, a limited network with packages, a vault with a credential.
mixed = raw(beta.agents.with_raw_response.create(
    name="mixed", model="claude-sonnet-4-5",
    mcp_servers=[{"type": "url", "name": "docs", "url": "https://mcp.example.com/mcp"}],
    tools=[{"type": "agent_toolset_20260401", "default_config": {"permission_policy": {"type": "always_ask"}},
            "configs": [{"name": "bash", "enabled": False}]},
           {"type": "mcp_toolset", "mcp_server_name": "docs"},
           {"type": "custom", "name": "lookup", "description": "look it up", "input_schema": {"type": "object", "properties": {}}}]))
strict("agents.create (every tool kind)", BetaManagedAgentsAgent, mixed)
limited = raw(beta.environments.with_raw_response.create(
    name="limited", config={"type": "cloud", "networking": {"type": "limited", "allowed_hosts": ["pypi.org"], "allow_package_managers": True},
                            "packages": {"pip": ["requests"]}}))
strict("environments.create (limited, packages)", BetaEnvironment, limited)
vault = raw(beta.vaults.with_raw_response.create(display_name="contract"))
strict("vaults.create", BetaManagedAgentsVault, vault)
strict("vaults.retrieve", BetaManagedAgentsVault, raw(beta.vaults.with_raw_response.retrieve(vault["id"])))
strict("vaults.update", BetaManagedAgentsVault, raw(beta.vaults.with_raw_response.update(vault["id"], display_name="renamed")))
page("vaults.list", BetaManagedAgentsVault, raw(beta.vaults.with_raw_response.list()))
credential = raw(beta.vaults.credentials.with_raw_response.create(
    vault["id"], auth={"type": "static_bearer", "token": "secret-token", "mcp_server_url": "https://mcp.example.com/mcp"}))
strict("vaults.credentials.create", BetaManagedAgentsCredential, credential)
strict("vaults.credentials.retrieve", BetaManagedAgentsCredential,
       raw(beta.vaults.credentials.with_raw_response.retrieve(credential["id"], vault_id=vault["id"])))
page("vaults.credentials.list", BetaManagedAgentsCredential, raw(beta.vaults.credentials.with_raw_response.list(vault["id"])))
renamed = raw(beta.vaults.credentials.with_raw_response.update(
    credential["id"], vault_id=vault["id"], display_name="rotated", metadata={"team": "a"},
    auth={"type": "static_bearer", "token": "new-secret-token"}))
strict("vaults.credentials.update", BetaManagedAgentsCredential, renamed)
if renamed.get("display_name") != "rotated" or renamed.get("metadata") != {"team": "a"} or "new-secret-token" in json.dumps(renamed):
    failures.append(f"vaults.credentials.update: not applied, or the token answered: {renamed}")
strict("vaults.credentials.archive", BetaManagedAgentsCredential,
       raw(beta.vaults.credentials.with_raw_response.archive(credential["id"], vault_id=vault["id"])))
strict("vaults.credentials.delete", BetaManagedAgentsDeletedCredential,
       raw(beta.vaults.credentials.with_raw_response.delete(credential["id"], vault_id=vault["id"])))
strict("vaults.archive", BetaManagedAgentsVault, raw(beta.vaults.with_raw_response.archive(vault["id"])))
strict("vaults.delete", BetaManagedAgentsDeletedVault, raw(beta.vaults.with_raw_response.delete(vault["id"])))

# Files: upload (multipart), list (pages, ids), metadata, download byte for byte, delete.
content = bytes(range(256)) * 300 + "é中🐂\n".encode()
uploaded = raw(beta.files.with_raw_response.upload(file=("dir/report one.bin", content, "application/x-drover")))
strict("files.upload", BetaFileMetadata, uploaded)
if (uploaded.get("filename"), uploaded.get("size_bytes"), uploaded.get("mime_type"), uploaded.get("downloadable")) != (
        "report one.bin", len(content), "application/x-drover", True):
    failures.append(f"files.upload: not what was sent: {uploaded}")
expiring = raw(beta.files.with_raw_response.upload(file=("later.txt", b"soon", "text/plain"), expires_in_seconds=3600))
strict("files.upload (expiring)", BetaFileMetadata, expiring)
if not expiring.get("expires_at"):
    failures.append(f"files.upload: expires_in_seconds gave no expires_at: {expiring}")
strict("files.retrieve_metadata", BetaFileMetadata, raw(beta.files.with_raw_response.retrieve_metadata(uploaded["id"])))
first = raw(beta.files.with_raw_response.list(limit=1))
page("files.list", BetaFileMetadata, first)
second = raw(beta.files.with_raw_response.list(limit=1, page=first["next_page"])) if first.get("next_page") else {"data": []}
if [f["id"] for f in first["data"] + second["data"]] != [expiring["id"], uploaded["id"]]:
    failures.append(f"files.list: the two pages are not the two files, newest first: {first} {second}")
by_ids = raw(beta.files.with_raw_response.list(ids=[uploaded["id"], "file_00000000000000000000000000000000"]))
page("files.list (ids)", BetaFileMetadata, by_ids)
if [f["id"] for f in by_ids["data"]] != [uploaded["id"]]:
    failures.append(f"files.list ids: {by_ids}")
downloaded = beta.files.download(uploaded["id"]).read()
if downloaded != content:
    failures.append(f"files.download: {len(downloaded)} bytes back, not the {len(content)} uploaded")
else:
    print("ok files.download", flush=True)
strict("files.delete", BetaDeletedFile, raw(beta.files.with_raw_response.delete(uploaded["id"])))
try:
    beta.files.retrieve_metadata(uploaded["id"])
    failures.append("files.retrieve_metadata: a deleted file is still there")
except anthropic.NotFoundError:
    print("ok files.retrieve_metadata refuses a deleted file", flush=True)
for bad, why in [(lambda: beta.files.upload(file=("x.txt", b"x", "text/plain"), expires_in_seconds=60), "expires_in_seconds below an hour"),
                 (lambda: client.post("/v1/files?beta=true", cast_to=object, body={"file": "not multipart"}), "a JSON body")]:
    try:
        bad()
        failures.append(f"files.upload: {why} was accepted")
    except anthropic.BadRequestError:
        print("ok files.upload refuses", why, flush=True)

# Memory stores, memories and versions.
import hashlib
import threading

stores = beta.memory_stores
store = raw(stores.with_raw_response.create(name="Team notes", description="what we learned", metadata={"team": "a", "tmp": "x"}))
strict("memory_stores.create", BetaManagedAgentsMemoryStore, store)
strict("memory_stores.retrieve", BetaManagedAgentsMemoryStore, raw(stores.with_raw_response.retrieve(store["id"])))
changed = raw(stores.with_raw_response.update(store["id"], name="Team notes 2", metadata={"tmp": None}))
strict("memory_stores.update", BetaManagedAgentsMemoryStore, changed)
if changed.get("metadata") != {"team": "a"} or changed.get("name") != "Team notes 2":
    failures.append(f"memory_stores.update: not applied: {changed}")
page("memory_stores.list", BetaManagedAgentsMemoryStore, raw(stores.with_raw_response.list()))
memories = stores.memories
note = raw(memories.with_raw_response.create(store["id"], path="/projects/a/notes.md", content="first"))
strict("memories.create", BetaManagedAgentsMemory, note)
if note.get("content") is not None or note.get("content_sha256") != hashlib.sha256(b"first").hexdigest():
    failures.append(f"memories.create: basic view with content, or a wrong hash: {note}")
for path, content in [("/projects/a/b/deep.md", "deep"), ("/projects/top.md", "top"), ("/other.md", "")]:
    memories.create(store["id"], path=path, content=content)
full = raw(memories.with_raw_response.retrieve(note["id"], memory_store_id=store["id"]))
strict("memories.retrieve", BetaManagedAgentsMemory, full)
if full.get("content") != "first":
    failures.append(f"memories.retrieve: full view without content: {full}")
listed = raw(memories.with_raw_response.list(store["id"], path_prefix="/projects/", depth=1))
page("memories.list (depth 1)", BetaManagedAgentsMemoryListItem, listed)
if [(item["type"], item["path"]) for item in listed["data"]] != [("memory_prefix", "/projects/a/"), ("memory", "/projects/top.md")]:
    failures.append(f"memories.list depth 1: {listed['data']}")
everything = [item.path for item in memories.list(store["id"], limit=1)]
if everything != ["/other.md", "/projects/a/b/deep.md", "/projects/a/notes.md", "/projects/top.md"]:
    failures.append(f"memories.list (pages of 1): {everything}")
for bad_path in ["no-slash", "/a//b", "/a/../b", "/" + "/".join(["s"] * 21), "/e\u0301.md", "/tab\there"]:
    try:
        memories.create(store["id"], path=bad_path, content="x")
        failures.append(f"memories.create accepted the path {bad_path!r}")
    except anthropic.BadRequestError:
        pass
try:
    memories.create(store["id"], path="/big.md", content="x" * 102401)
    failures.append("memories.create accepted 102,401 bytes")
except anthropic.BadRequestError:
    print("ok memories.create refuses more than 100 kB", flush=True)
updated_note = raw(memories.with_raw_response.update(
    note["id"], memory_store_id=store["id"], content="second", path="/projects/a/renamed.md",
    precondition={"type": "content_sha256", "content_sha256": note["content_sha256"]}))
strict("memories.update", BetaManagedAgentsMemory, updated_note)
try:
    memories.update(note["id"], memory_store_id=store["id"], content="stale",
                    precondition={"type": "content_sha256", "content_sha256": note["content_sha256"]})
    failures.append("memories.update: a stale precondition was accepted")
except anthropic.ConflictError:
    print("ok memories.update refuses a stale precondition with 409", flush=True)
versions = raw(stores.memory_versions.with_raw_response.list(store["id"], memory_id=note["id"], view="full"))
page("memory_versions.list", BetaManagedAgentsMemoryVersion, versions)
if [(v["operation"], v["content"], v["created_by"]["type"]) for v in versions["data"]] != [
        ("modified", "second", "api_actor"), ("created", "first", "api_actor")]:
    failures.append(f"memory_versions.list: {versions['data']}")
first_version = versions["data"][1]
strict("memory_versions.retrieve", BetaManagedAgentsMemoryVersion,
       raw(stores.memory_versions.with_raw_response.retrieve(first_version["id"], memory_store_id=store["id"])))
redacted = raw(stores.memory_versions.with_raw_response.redact(first_version["id"], memory_store_id=store["id"]))
strict("memory_versions.redact", BetaManagedAgentsMemoryVersion, redacted)
if redacted.get("content") is not None or redacted.get("path") is not None or not redacted.get("redacted_at"):
    failures.append(f"memory_versions.redact: {redacted}")
try:
    stores.memory_versions.redact(updated_note["memory_version_id"], memory_store_id=store["id"])
    failures.append("memory_versions.redact: the current version was redacted")
except anthropic.ConflictError:
    print("ok memory_versions.redact refuses the current version", flush=True)
try:
    memories.delete(note["id"], memory_store_id=store["id"], expected_content_sha256=note["content_sha256"])
    failures.append("memories.delete: a stale expected_content_sha256 was accepted")
except anthropic.ConflictError:
    pass
strict("memories.delete", BetaManagedAgentsDeletedMemory, raw(memories.with_raw_response.delete(
    note["id"], memory_store_id=store["id"], expected_content_sha256=updated_note["content_sha256"])))
ops = [v.operation for v in stores.memory_versions.list(store["id"], memory_id=note["id"])]
if ops != ["deleted", "modified", "created"]:
    failures.append(f"memory_versions after delete: {ops}")

# Twenty writers append to one memory, each reading, then updating with its read's hash as the
# precondition and trying again on 409: no update is lost.
shared = memories.create(store["id"], path="/shared.md", content="")
def writer(n):
    while True:
        current = memories.retrieve(shared.id, memory_store_id=store["id"])
        try:
            memories.update(shared.id, memory_store_id=store["id"], content=current.content + f"line {n}\n",
                            precondition={"type": "content_sha256", "content_sha256": current.content_sha256})
            return
        except anthropic.ConflictError:
            continue
threads = [threading.Thread(target=writer, args=(n,)) for n in range(20)]
[t.start() for t in threads]
[t.join() for t in threads]
final = memories.retrieve(shared.id, memory_store_id=store["id"]).content
if sorted(final.splitlines()) != sorted(f"line {n}" for n in range(20)):
    failures.append(f"twenty writers: updates were lost: {final!r}")
elif len(list(stores.memory_versions.list(store["id"], memory_id=shared.id, limit=100))) != 21:
    failures.append("twenty writers: not one version per write")
else:
    print("ok twenty concurrent writers lose no update", flush=True)

# Dreams: created, retrieved, listed, run to completion (the dream's session is a session like
# any), archived; a completed one cannot be canceled.
dream = raw(beta.dreams.with_raw_response.create(
    inputs=[{"type": "memory_store", "memory_store_id": store["id"]}, {"type": "sessions", "session_ids": [session["id"]]}],
    model="claude-sonnet-4-5"))
strict("dreams.create", BetaDream, dream)
deadline = time.time() + 60
while dream["status"] in ("pending", "running") and time.time() < deadline:
    time.sleep(0.2)
    dream = raw(beta.dreams.with_raw_response.retrieve(dream["id"]))
strict("dreams.retrieve", BetaDream, dream)
if dream["status"] != "completed":
    failures.append(f"dreams: the dream did not complete: {dream}")
page("dreams.list", BetaDream, raw(beta.dreams.with_raw_response.list(statuses=["completed"])))
try:
    beta.dreams.cancel(dream["id"])
    failures.append("dreams.cancel: a completed dream was canceled")
except anthropic.BadRequestError:
    print("ok dreams.cancel refuses a completed dream", flush=True)
strict("dreams.archive", BetaDream, raw(beta.dreams.with_raw_response.archive(dream["id"])))

strict("memory_stores.archive", BetaManagedAgentsMemoryStore, raw(stores.with_raw_response.archive(store["id"])))
try:
    memories.create(store["id"], path="/after.md", content="x")
    failures.append("memories.create: an archived store took a memory")
except anthropic.ConflictError:
    print("ok an archived store takes no memories", flush=True)
strict("memory_stores.delete", BetaManagedAgentsDeletedMemoryStore, raw(stores.with_raw_response.delete(store["id"])))

# (A session a harness may be running cannot be deleted: a fresh one is.)
fresh = beta.sessions.create(agent=agent["id"], environment_id=environment["id"]).id
archived = raw(beta.sessions.with_raw_response.archive(session["id"]))
strict("sessions.archive", BetaManagedAgentsSession, archived)
strict("agents.archive", BetaManagedAgentsAgent, raw(beta.agents.with_raw_response.archive(agent["id"])))
# A stream open on a session that is deleted gets session.deleted, then ends.
ended = []
subscribed = threading.Event()
def watch():
    with beta.sessions.events.with_streaming_response.stream(fresh) as response:
        subscribed.set()  # the headers arrived: the server subscribed this stream before sending them
        for line in response.iter_lines():
            if line.startswith("data: "):
                ended.append(json.loads(line[len("data: "):]))
watcher = threading.Thread(target=watch)
watcher.start()
if not subscribed.wait(timeout=30):
    failures.append("the stream of the session to delete never opened")
strict("sessions.delete", BetaManagedAgentsDeletedSession, raw(beta.sessions.with_raw_response.delete(fresh)))
watcher.join(timeout=10)
if watcher.is_alive() or [e.get("type") for e in ended] != ["session.deleted"]:
    failures.append(f"a stream of a deleted session did not end with session.deleted: {ended}, open: {watcher.is_alive()}")
else:
    strict("events.stream (session.deleted)", BetaManagedAgentsStreamSessionEvents, ended[0])
spare = raw(beta.environments.with_raw_response.create(name="spare"))
strict("environments.delete", BetaEnvironmentDeleteResponse, raw(beta.environments.with_raw_response.delete(spare["id"])))
strict("environments.archive", BetaEnvironment, raw(beta.environments.with_raw_response.archive(environment["id"])))

finish("contract mismatches")
