"""The contract test (issue #23, first part): every endpoint `drover api` serves for agents,
environments, sessions, events, resources, vaults, credentials and files, called through the pinned SDK,
each response (and each listed event) validated with the SDK's own pydantic models in strict mode.
Run by DroverAPITests.SDKTests with DROVER_API_URL and DROVER_KEY_A. Collects every mismatch and
fails with the list; prints "all checks passed" when there is none.
"""
import json
import os
import sys

import anthropic
import pydantic
from anthropic.types.beta import (
    BetaDeletedFile,
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
)
from anthropic.types.beta.beta_managed_agents_deleted_session import BetaManagedAgentsDeletedSession
from anthropic.types.beta.beta_managed_agents_vault import BetaManagedAgentsVault
from anthropic.types.beta.beta_managed_agents_deleted_vault import BetaManagedAgentsDeletedVault
from anthropic.types.beta.vaults import BetaManagedAgentsCredential, BetaManagedAgentsDeletedCredential

client = anthropic.Anthropic(api_key=os.environ["DROVER_KEY_A"], base_url=os.environ["DROVER_API_URL"], max_retries=0)
beta = client.beta
failures = []


def strict(name, model, value):
    """Validates `value` (JSON) against `model` in strict mode, as JSON; records a mismatch."""
    try:
        pydantic.TypeAdapter(model).validate_json(json.dumps(value), strict=True)
        print("ok", name, flush=True)
    except pydantic.ValidationError as e:
        failures.append(f"{name}: " + "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors()[:6]))
        print("MISMATCH", name, flush=True)


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
for field, value in [("vault_ids", ["vlt_x"]), ("budget", {"max_list_cost": 1}), ("agent", {"tools": []})]:
    try:
        beta.sessions.update(session["id"], **{field: value})
        failures.append(f"sessions.update: {field} was accepted, and this server cannot apply it")
    except anthropic.BadRequestError:
        print("ok sessions.update refuses", field, flush=True)
page("sessions.list", BetaManagedAgentsSession, raw(beta.sessions.with_raw_response.list()))

# The stream, read raw: every event the turn produces, each validated as the stream's model.
streamed = []
with beta.sessions.events.with_streaming_response.stream(session["id"]) as response:
    sent = raw(beta.sessions.events.with_raw_response.send(
        session["id"], events=[{"type": "user.message", "content": [{"type": "text", "text": "hello"}]}]))
    strict("events.send", BetaManagedAgentsSendSessionEvents, sent)
    if [event.get("type") for event in sent.get("data") or []] != ["user.message"]:
        failures.append(f"events.send: data is not the event sent: {sent}")
    for line in response.iter_lines():
        if line.startswith("data: "):
            event = json.loads(line[len("data: "):])
            streamed.append(event)
            if event.get("type") == "session.status_idle":
                break
for event in streamed:
    strict(f"events.stream ({event['type']})", BetaManagedAgentsStreamSessionEvents, event)
if not any(event["type"] == "agent.tool_result" for event in streamed):
    failures.append(f"events.stream: the turn streamed no tool result: {[e['type'] for e in streamed]}")
page("events.list", BetaManagedAgentsSessionEvent, raw(beta.sessions.events.with_raw_response.list(session["id"])))

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
    name="limited", config={"type": "cloud", "networking": {"type": "limited", "allowed_hosts": ["pypi.org"]},
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

# (A session a harness may be running cannot be deleted: a fresh one is.)
fresh = beta.sessions.create(agent=agent["id"], environment_id=environment["id"]).id
archived = raw(beta.sessions.with_raw_response.archive(session["id"]))
strict("sessions.archive", BetaManagedAgentsSession, archived)
strict("agents.archive", BetaManagedAgentsAgent, raw(beta.agents.with_raw_response.archive(agent["id"])))
strict("sessions.delete", BetaManagedAgentsDeletedSession, raw(beta.sessions.with_raw_response.delete(fresh)))
spare = raw(beta.environments.with_raw_response.create(name="spare"))
strict("environments.delete", BetaEnvironmentDeleteResponse, raw(beta.environments.with_raw_response.delete(spare["id"])))
strict("environments.archive", BetaEnvironment, raw(beta.environments.with_raw_response.archive(environment["id"])))

if failures:
    print("\n".join(["contract mismatches:"] + failures), flush=True)
    sys.exit(1)
print("all checks passed", flush=True)
