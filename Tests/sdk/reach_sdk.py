"""The official `anthropic` SDK against `drover api` for what reaches beyond the sandbox: vaults
and credentials, an agent with an MCP server (its tool called with the vault's credential, and
the authentication error with a wrong one), and a session with a github_repository resource
pushed to from bash. Run by DroverAPITests.ReachTests with DROVER_API_URL, DROVER_KEY, MCP_URL,
MCP_TOKEN, GIT_URL, GIT_TOKEN and TOKEN_URL (an OAuth token endpoint that hands out MCP_TOKEN)."""
import json
import os
import time
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

import anthropic
import pydantic
from anthropic.types.beta.vaults import BetaManagedAgentsCredential, BetaManagedAgentsCredentialValidation

client = anthropic.Anthropic(api_key=os.environ["DROVER_KEY"], base_url=os.environ["DROVER_API_URL"], max_retries=0)
beta = client.beta
MCP_URL, MCP_TOKEN = os.environ["MCP_URL"], os.environ["MCP_TOKEN"]
GIT_URL, GIT_TOKEN = os.environ["GIT_URL"], os.environ["GIT_TOKEN"]


def check(name, condition, detail=""):
    if not condition:
        raise AssertionError(f"{name}: {detail}")
    print("ok", name, flush=True)


def run_turn(session_id, text, timeout=60):
    beta.sessions.events.send(session_id, events=[{"type": "user.message", "content": [{"type": "text", "text": text}]}])
    deadline = time.time() + timeout
    while time.time() < deadline:
        events = list(beta.sessions.events.list(session_id))
        if any(e.type == "session.status_idle" for e in events):
            return events
        time.sleep(0.2)
    raise AssertionError(f"{session_id} did not go idle")


vault = beta.vaults.create(display_name="team tools", metadata={"team": "a"})
check("vault created", vault.id.startswith("vlt_") and vault.type == "vault", vault)
credential = beta.vaults.credentials.create(
    vault.id, display_name="tools server", auth={"type": "static_bearer", "token": MCP_TOKEN, "mcp_server_url": MCP_URL})
check("credential created without its token", credential.id.startswith("vcrd_") and credential.auth.type == "static_bearer"
      and credential.auth.mcp_server_url == MCP_URL and MCP_TOKEN not in credential.model_dump_json(), credential)
fetched = beta.vaults.credentials.retrieve(credential.id, vault_id=vault.id)
check("credential read back without its token", MCP_TOKEN not in fetched.model_dump_json(), fetched)
listed = list(beta.vaults.credentials.list(vault.id))
check("credentials listed without tokens", [c.id for c in listed] == [credential.id] and MCP_TOKEN not in str(listed), listed)
check("vaults listed", vault.id in [v.id for v in beta.vaults.list()])

wrong = beta.vaults.create(display_name="stale")
beta.vaults.credentials.create(wrong.id, auth={"type": "static_bearer", "token": "not-the-token", "mcp_server_url": MCP_URL})

# Tenant-chosen servers follow the environment's networking: this one names the MCP server and the
# git remote; `closed` names nothing.
allowed_hosts = [urlsplit(MCP_URL).netloc, urlsplit(GIT_URL).netloc]
environment = beta.environments.create(
    name="reach", config={"type": "cloud", "networking": {"type": "limited", "allowed_hosts": allowed_hosts}})
closed = beta.environments.create(name="closed", config={"type": "cloud", "networking": {"type": "none"}})
agent = beta.agents.create(
    name="reacher", model="claude-sonnet-4-5",
    mcp_servers=[{"type": "url", "name": "tools", "url": MCP_URL}],
    tools=[{"type": "agent_toolset_20260401"}, {"type": "mcp_toolset", "mcp_server_name": "tools"}])
check("agent with an MCP server", agent.mcp_servers[0].name == "tools", agent.mcp_servers)

session = beta.sessions.create(agent=agent.id, environment_id=environment.id, vault_ids=[vault.id])
check("session names its vault", session.vault_ids == [vault.id], session.vault_ids)
events = run_turn(session.id, "use the mcp tool")
uses = [e for e in events if e.type == "agent.mcp_tool_use"]
results = [e for e in events if e.type == "agent.mcp_tool_result"]
check("MCP tool called", len(uses) == 1 and uses[0].name == "add" and uses[0].mcp_server_name == "tools"
      and uses[0].input == {"a": 2, "b": 3}, [(e.type, getattr(e, "error", None)) for e in events])
check("MCP result logged", len(results) == 1 and results[0].mcp_tool_use_id == uses[0].id and not results[0].is_error
      and results[0].content[0].text == "5", results)
check("turn ended", [e for e in events if e.type == "agent.message"][-1].content[0].text == "The sum is 5.")

careful = beta.agents.create(
    name="careful-reacher", model="claude-sonnet-4-5",
    mcp_servers=[{"type": "url", "name": "tools", "url": MCP_URL}],
    tools=[{"type": "mcp_toolset", "mcp_server_name": "tools", "default_config": {"permission_policy": {"type": "always_ask"}}}])
asked = beta.sessions.create(agent=careful.id, environment_id=environment.id, vault_ids=[vault.id])
events = run_turn(asked.id, "use the mcp tool")
uses = [e for e in events if e.type == "agent.mcp_tool_use"]
idle = [e for e in events if e.type == "session.status_idle"][-1]
check("an always_ask MCP call waits for confirmation", len(uses) == 1 and uses[0].evaluated_permission == "ask"
      and idle.stop_reason.type == "requires_action" and idle.stop_reason.event_ids == [uses[0].id]
      and not any(e.type == "agent.mcp_tool_result" for e in events), [e.type for e in events])
beta.sessions.events.send(asked.id, events=[{"type": "user.tool_confirmation", "tool_use_id": uses[0].id, "result": "allow"}])
deadline = time.time() + 60
while time.time() < deadline:
    events = list(beta.sessions.events.list(asked.id))
    if len([e for e in events if e.type == "session.status_idle"]) == 2:
        break
    time.sleep(0.2)
results = [e for e in events if e.type == "agent.mcp_tool_result"]
check("the allowed MCP call ran", len(results) == 1 and results[0].content[0].text == "5"
      and [e for e in events if e.type == "session.status_idle"][-1].stop_reason.type == "end_turn", [e.type for e in events])

refused = beta.sessions.create(agent=agent.id, environment_id=environment.id, vault_ids=[wrong.id])
events = run_turn(refused.id, "try the stale credential")
errors = [e for e in events if e.type == "session.error"]
check("wrong credential is an authentication error", len(errors) == 1 and errors[0].error.type == "mcp_authentication_failed_error"
      and errors[0].error.mcp_server_name == "tools", errors)
check("the turn went on without the server", not any(e.type == "agent.mcp_tool_use" for e in events))

# An mcp_oauth credential whose access token is about to expire: the harness refreshes it at the
# token endpoint (client_secret_basic) before it connects the server, and stores the new one.
oauth_vault = beta.vaults.create(display_name="oauth tools")
soon = datetime.now(timezone.utc) + timedelta(seconds=30)
oauth = beta.vaults.credentials.with_raw_response.create(oauth_vault.id, display_name="oauth", auth={
    "type": "mcp_oauth", "mcp_server_url": MCP_URL, "access_token": "expiring-access-token", "expires_at": soon.isoformat(),
    "refresh": {"refresh_token": "refresh-1", "client_id": "drover test", "token_endpoint": os.environ["TOKEN_URL"],
                "token_endpoint_auth": {"type": "client_secret_basic", "client_secret": "s3cret"}, "scope": "tools"}}).http_response.json()
pydantic.TypeAdapter(BetaManagedAgentsCredential).validate_json(json.dumps(oauth), strict=True)
check("an mcp_oauth credential answers no secret", all(secret not in json.dumps(oauth) for secret in ("expiring-access-token", "refresh-1", "s3cret"))
      and oauth["auth"]["refresh"]["token_endpoint_auth"] == {"type": "client_secret_basic"}, oauth)
try:
    beta.vaults.credentials.create(oauth_vault.id, auth={"type": "mcp_oauth", "mcp_server_url": MCP_URL, "access_token": "x",
                                                         "expires_at": "2020-01-01T00:00:00Z"})
    raise AssertionError("an mcp_oauth credential that expired took")
except anthropic.BadRequestError:
    print("ok an expired mcp_oauth token is refused", flush=True)
refreshed = beta.sessions.create(agent=agent.id, environment_id=environment.id, vault_ids=[oauth_vault.id])
events = run_turn(refreshed.id, "use the mcp tool")
results = [e for e in events if e.type == "agent.mcp_tool_result"]
check("the refreshed token reached the MCP server", len(results) == 1 and results[0].content[0].text == "5",
      [(e.type, getattr(e, "error", None)) for e in events])
after = beta.vaults.credentials.retrieve(oauth["id"], vault_id=oauth_vault.id)
check("the new expiry is stored", after.auth.expires_at > soon + timedelta(minutes=30), after.auth)
updated = beta.vaults.credentials.update(oauth["id"], vault_id=oauth_vault.id, auth={"type": "mcp_oauth", "refresh": {"scope": ""}})
check("update clears the scope", updated.auth.refresh.scope is None, updated.auth)

# mcp_oauth_validate: a live probe of the credential against its MCP server, refreshing once on a
# 401; every answer validated strictly, and no secret quoted back.
def validate(credential_id, vault_id):
    answer = beta.vaults.credentials.with_raw_response.mcp_oauth_validate(credential_id, vault_id=vault_id).http_response.json()
    pydantic.TypeAdapter(BetaManagedAgentsCredentialValidation).validate_json(json.dumps(answer), strict=True)
    return answer


probes = beta.vaults.create(display_name="probes")
def oauth_credential(token, url=MCP_URL, refresh=None):
    auth = {"type": "mcp_oauth", "mcp_server_url": url, "access_token": token}
    if refresh:
        auth["refresh"] = refresh
    return beta.vaults.credentials.create(probes.id, auth=auth).id


good = validate(oauth_credential(MCP_TOKEN), probes.id)
check("a good token validates", good["status"] == "valid" and good["mcp_probe"] is None and good["refresh"] is None
      and not good["has_refresh_token"], good)
wrong = validate(oauth_credential("wrong-access-token"), probes.id)
check("a refused token without a refresh is invalid", wrong["status"] == "invalid" and wrong["refresh"] == {"status": "no_refresh_token", "http_response": None}
      and wrong["mcp_probe"]["method"] == "initialize" and wrong["mcp_probe"]["http_response"]["status_code"] == 401
      and "wrong-access-token" not in json.dumps(wrong), wrong)
stale = oauth_credential("stale-access-token", refresh={
    "refresh_token": "refresh-9", "client_id": "drover test", "token_endpoint": os.environ["TOKEN_URL"],
    "token_endpoint_auth": {"type": "client_secret_basic", "client_secret": "s3cret"}})
refreshed = validate(stale, probes.id)
check("a refused token is refreshed, and the new one validates", refreshed["status"] == "valid" and refreshed["refresh"]["status"] == "succeeded"
      and refreshed["has_refresh_token"] and MCP_TOKEN not in json.dumps(refreshed), refreshed)
check("the refreshed token is stored", validate(stale, probes.id)["refresh"] is None)
nowhere = validate(oauth_credential("x", url="http://127.0.0.2:1/mcp"), probes.id)
check("a server out of reach is unknown", nowhere["status"] == "unknown" and nowhere["mcp_probe"]["http_response"] is None, nowhere)
try:
    beta.vaults.credentials.mcp_oauth_validate(credential.id, vault_id=vault.id)
    raise AssertionError("a static_bearer credential was validated")
except anthropic.BadRequestError:
    print("ok only mcp_oauth credentials are validated", flush=True)

# `allow_mcp_servers` opens the agent's MCP servers beyond allowed_hosts (which name neither here).
mcp_only = beta.environments.create(name="mcp only", config={"type": "cloud", "networking": {
    "type": "limited", "allowed_hosts": [], "allow_mcp_servers": True}})
opened_session = beta.sessions.create(agent=agent.id, environment_id=mcp_only.id, vault_ids=[vault.id])
events = run_turn(opened_session.id, "use the mcp tool")
results = [e for e in events if e.type == "agent.mcp_tool_result"]
check("allow_mcp_servers reaches the agent's MCP server", len(results) == 1 and results[0].content[0].text == "5",
      [(e.type, getattr(e, "error", None)) for e in events])

fenced = beta.sessions.create(agent=agent.id, environment_id=closed.id, vault_ids=[vault.id])
events = run_turn(fenced.id, "try the stale credential")
errors = [e for e in events if e.type == "session.error"]
check("an MCP server the environment does not allow is not reached",
      len(errors) == 1 and errors[0].error.type == "mcp_connection_failed_error" and "network policy" in errors[0].error.message
      and MCP_TOKEN not in errors[0].error.message, errors)

repo_session = beta.sessions.create(
    agent=agent.id, environment_id=environment.id,
    resources=[{"type": "github_repository", "url": GIT_URL, "authorization_token": GIT_TOKEN,
                "checkout": {"type": "branch", "name": "main"}}])
resource = repo_session.resources[0]
check("repository resource without its token", resource.type == "github_repository" and resource.url == GIT_URL
      and resource.mount_path == "/workspace/project" and GIT_TOKEN not in repo_session.model_dump_json(), resource)
listed = list(beta.sessions.resources.list(repo_session.id))
again = beta.sessions.resources.retrieve(resource.id, session_id=repo_session.id)
check("resources listed and retrieved without the token", [r.id for r in listed] == [resource.id] and again.url == GIT_URL
      and GIT_TOKEN not in str(listed) + again.model_dump_json(), listed)
events = run_turn(repo_session.id, "change the repository")
outputs = [e for e in events if e.type == "agent.tool_result"]
check("pushed from bash", any("pushed" in str(e.content) for e in outputs), outputs)
print("all checks passed", flush=True)
