"""The official `anthropic` SDK against `drover api`: what a team moving from the hosted
Managed Agents would run, with only base_url changed. Run by DroverAPITests.SDKTests with
DROVER_API_URL, DROVER_KEY_A and DROVER_KEY_B (a key of another organisation). Prints one line per
check; any failure raises (non-zero exit)."""
import os
import threading
import time

import anthropic

BASE = os.environ["DROVER_API_URL"]
client = anthropic.Anthropic(api_key=os.environ["DROVER_KEY_A"], base_url=BASE, max_retries=0)
other = anthropic.Anthropic(api_key=os.environ["DROVER_KEY_B"], base_url=BASE, max_retries=0)


def check(name, condition, detail=""):
    if not condition:
        raise AssertionError(f"{name}: {detail}")
    print("ok", name, flush=True)


def stream_until_idle(session_id, send, timeout=60):
    """Opens the stream, then sends, then reads to session.status_idle; returns the events."""
    seen = []
    with client.beta.sessions.events.stream(session_id) as stream:
        send()
        deadline = time.time() + timeout
        for event in stream:
            seen.append(event)
            if event.type == "session.status_idle" or time.time() > deadline:
                break
    return seen


agent = client.beta.agents.create(
    name="coder", model="claude-sonnet-4-5", system="You write small programs.",
    tools=[{"type": "agent_toolset_20260401"}], metadata={"team": "a"})
check("agent created", agent.id.startswith("agent_") and agent.version == 1 and agent.model.id == "claude-sonnet-4-5", agent)
environment = client.beta.environments.create(name="default", config={"type": "cloud"})
check("environment created", environment.id.startswith("env_") and environment.type == "environment", environment)
session = client.beta.sessions.create(agent=agent.id, environment_id=environment.id, title="first")
check("session created", session.id.startswith("sesn_") and session.status == "idle" and session.agent.id == agent.id, session)

events = stream_until_idle(session.id, lambda: client.beta.sessions.events.send(
    session.id, events=[{"type": "user.message", "content": [{"type": "text", "text": "run it"}]}]))
types = [event.type for event in events]
check("streamed to idle", types[-1] == "session.status_idle" and "agent.tool_use" in types and "agent.message" in types, types)
check("stop reason end_turn", events[-1].stop_reason.type == "end_turn", events[-1])
check("every streamed event has an id", all(event.id.startswith("sevt_") for event in events), [e.id for e in events])

listed = list(client.beta.sessions.events.list(session.id, limit=2))
check("events paged (2 a page) are the streamed ones", [e.id for e in listed] == [e.id for e in events] and listed[0].type == "user.message",
      [e.type for e in listed])
ends = [e for e in listed if e.type == "span.model_request_end"]
starts = {e.id for e in listed if e.type == "span.model_request_start"}
check("model spans pair up with usage", len(ends) == 2 and all(
    e.model_request_start_id in starts and e.model_usage.input_tokens > 0 and e.model_usage.cache_read_input_tokens == 0 for e in ends), ends)
tools = list(client.beta.sessions.events.list(session.id, types=["agent.tool_result"]))
check("events filtered by type", len(tools) == 1 and tools[0].type == "agent.tool_result", tools)
idle_ids = [s.id for s in client.beta.sessions.list(extra_query={"status": "idle"})]
check("sessions filtered by status", session.id in idle_ids and list(client.beta.sessions.list(extra_query={"status": "terminated"})) == [])
retrieved = client.beta.sessions.retrieve(session.id)
check("session usage", retrieved.usage.input_tokens > 0 and retrieved.usage.output_tokens > 0 and retrieved.usage.active_seconds > 0
      and retrieved.stats.active_seconds == retrieved.usage.active_seconds and retrieved.status == "idle", retrieved.usage)

updated = client.beta.agents.update(agent.id, version=1, system="Version two.")
check("agent updated", updated.version == 2 and updated.system == "Version two.", updated)
try:
    client.beta.agents.update(agent.id, version=1, system="stale")
    raise AssertionError("a stale version was accepted")
except anthropic.ConflictError as error:
    check("stale version is 409", error.status_code == 409 and error.response.headers.get("x-should-retry") == "false")
check("agent versions", [a.version for a in client.beta.agents.versions.list(agent.id)] == [2, 1])

try:
    anthropic.Anthropic(api_key="sk-drover-wrong", base_url=BASE, max_retries=0).beta.sessions.retrieve(session.id)
    raise AssertionError("a wrong key was accepted")
except anthropic.AuthenticationError as error:
    check("wrong key is 401", error.status_code == 401 and error.response.headers.get("request-id", "").startswith("req_"))

secret_file = client.beta.files.upload(file=("secret.txt", b"for organisation A only", "text/plain"))
secret_store = client.beta.memory_stores.create(name="private")
secret_memory = client.beta.memory_stores.memories.create(secret_store.id, path="/secret.md", content="for organisation A only")
for name, call in [
    ("memory store", lambda: other.beta.memory_stores.retrieve(secret_store.id)),
    ("memory", lambda: other.beta.memory_stores.memories.retrieve(secret_memory.id, memory_store_id=secret_store.id)),
    ("memories", lambda: list(other.beta.memory_stores.memories.list(secret_store.id))),
    ("memory write", lambda: other.beta.memory_stores.memories.update(secret_memory.id, memory_store_id=secret_store.id, content="x")),
    ("memory versions", lambda: list(other.beta.memory_stores.memory_versions.list(secret_store.id))),
    ("file", lambda: other.beta.files.retrieve_metadata(secret_file.id)),
    ("file content", lambda: other.beta.files.download(secret_file.id).read()),
    ("file delete", lambda: other.beta.files.delete(secret_file.id)),
    ("retrieve", lambda: other.beta.sessions.retrieve(session.id)),
    ("send", lambda: other.beta.sessions.events.send(session.id, events=[{"type": "user.message", "content": [{"type": "text", "text": "x"}]}])),
    ("list", lambda: list(other.beta.sessions.events.list(session.id))),
    ("stream", lambda: other.beta.sessions.events.stream(session.id).close()),
    ("agent", lambda: other.beta.agents.retrieve(agent.id)),
]:
    try:
        call()
        raise AssertionError(f"another organisation could {name}")
    except anthropic.NotFoundError as error:
        check(f"another organisation's {name} is 404", error.status_code == 404 and error.body["error"]["type"] == "not_found_error")
check("another organisation lists nothing", list(other.beta.sessions.list()) == [])
check("another organisation lists no file, even by id", list(other.beta.files.list()) == [] and list(other.beta.files.list(ids=[secret_file.id])) == [])
check("the file is still there for its owner", client.beta.files.download(secret_file.id).read() == b"for organisation A only")

# Reconnecting with Last-Event-ID: every later event once, no gap, no duplicate.
second = client.beta.sessions.create(agent={"type": "agent", "id": agent.id, "version": 1}, environment_id=environment.id)
check("session pinned to a version", second.agent.version == 1, second.agent)
first_part = []
with client.beta.sessions.events.stream(second.id) as stream:
    client.beta.sessions.events.send(second.id, events=[{"type": "user.message", "content": [{"type": "text", "text": "again"}]}])
    for event in stream:
        first_part.append(event)
        if len(first_part) == 2:
            break  # disconnect mid-session
rest = []
with client.beta.sessions.events.stream(second.id, extra_headers={"Last-Event-ID": first_part[-1].id}) as stream:
    for event in stream:
        rest.append(event)
        if event.type == "session.status_idle":
            break
all_ids = [e.id for e in client.beta.sessions.events.list(second.id)]
check("reconnect resumes exactly", [e.id for e in first_part + rest] == all_ids, ([e.type for e in first_part], [e.type for e in rest]))

# An interrupt ends a long tool call's turn.
third = client.beta.sessions.create(agent=agent.id, environment_id=environment.id, title="slow")
def send_then_interrupt():
    client.beta.sessions.events.send(third.id, events=[{"type": "user.message", "content": [{"type": "text", "text": "slow please"}]}])
    def interrupt():
        time.sleep(1.5)
        client.beta.sessions.events.send(third.id, events=[{"type": "user.interrupt"}])
    threading.Thread(target=interrupt, daemon=True).start()
started = time.time()
interrupted = stream_until_idle(third.id, send_then_interrupt, timeout=30)
check("an interrupt ends the turn early", interrupted[-1].type == "session.status_idle" and time.time() - started < 20,
      [e.type for e in interrupted])

# A custom tool: the client runs it. The turn idles with requires_action naming the tool use's
# event; the client's user.custom_tool_result resumes it.
tooled = client.beta.agents.create(
    name="with-lookup", model="claude-sonnet-4-5",
    tools=[{"type": "agent_toolset_20260401"},
           {"type": "custom", "name": "lookup", "description": "Looks a word up.",
            "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}}])
custom = client.beta.sessions.create(agent=tooled.id, environment_id=environment.id)
waiting = stream_until_idle(custom.id, lambda: client.beta.sessions.events.send(
    custom.id, events=[{"type": "user.message", "content": [{"type": "text", "text": "use the lookup"}]}]))
use = [e for e in waiting if e.type == "agent.custom_tool_use"]
check("a custom tool use waits for the client", len(use) == 1 and use[0].name == "lookup" and use[0].input == {"q": "drover"}
      and waiting[-1].stop_reason.type == "requires_action" and waiting[-1].stop_reason.event_ids == [use[0].id],
      [e.type for e in waiting])
answered = stream_until_idle(custom.id, lambda: client.beta.sessions.events.send(custom.id, events=[{
    "type": "user.custom_tool_result", "custom_tool_use_id": use[0].id, "content": [{"type": "text", "text": "a runtime"}]}]))
check("the custom tool result resumes the turn", answered[-1].stop_reason.type == "end_turn"
      and any(e.type == "agent.message" and e.content[0].text == "Found it." for e in answered), [e.type for e in answered])

# always_ask: a built-in tool call waits for user.tool_confirmation.
careful = client.beta.agents.create(
    name="careful", model="claude-sonnet-4-5",
    tools=[{"type": "agent_toolset_20260401", "default_config": {"permission_policy": {"type": "always_ask"}}}])
asked = client.beta.sessions.create(agent=careful.id, environment_id=environment.id)
pending = stream_until_idle(asked.id, lambda: client.beta.sessions.events.send(
    asked.id, events=[{"type": "user.message", "content": [{"type": "text", "text": "ask first"}]}]))
tool_use = [e for e in pending if e.type == "agent.tool_use"]
check("an always_ask call waits for confirmation", len(tool_use) == 1 and pending[-1].stop_reason.type == "requires_action"
      and pending[-1].stop_reason.event_ids == [tool_use[0].id] and not any(e.type == "agent.tool_result" for e in pending),
      [e.type for e in pending])
allowed = stream_until_idle(asked.id, lambda: client.beta.sessions.events.send(asked.id, events=[{
    "type": "user.tool_confirmation", "tool_use_id": tool_use[0].id, "result": "allow"}]))
results = [e for e in allowed if e.type == "agent.tool_result"]
check("an allowed call runs", len(results) == 1 and results[0].content[0].text == "confirmed\n" and allowed[-1].stop_reason.type == "end_turn",
      [(e.type, getattr(e, "content", None)) for e in allowed])

archived = client.beta.sessions.archive(session.id)
check("session archived", archived.archived_at is not None)
try:
    client.beta.sessions.events.send(session.id, events=[{"type": "user.message", "content": [{"type": "text", "text": "x"}]}])
    raise AssertionError("an archived session took an event")
except anthropic.BadRequestError:
    check("an archived session takes no events", True)
deleted = client.beta.sessions.delete(session.id)
check("session deleted", deleted.type == "session_deleted" and deleted.id == session.id)
try:
    client.beta.sessions.retrieve(session.id)
    raise AssertionError("a deleted session is still there")
except anthropic.NotFoundError:
    check("a deleted session is gone", True)
archived_agent = client.beta.agents.archive(agent.id)
check("agent archived", archived_agent.archived_at is not None)
print("all checks passed", flush=True)
