"""Issue #25, session threads, through the pinned SDK against the scripted model: a coordinator
(an agent whose multiagent roster names a worker) starts two threads, each of which runs a tool in
the session's sandbox (reading what the coordinator wrote there; an output a thread writes is the
session's) and reports back; the thread events are listed and streamed under the session;
threads.list/retrieve/archive answer as the SDK's models say. Run by DroverAPITests.OutcomeTests
with DROVER_API_URL and DROVER_KEY.
"""
import os

import anthropic
import pydantic
from anthropic.types.beta.sessions import BetaManagedAgentsSessionEvent, BetaManagedAgentsSessionThread, BetaManagedAgentsStreamSessionThreadEvents

from checks import failures, finish, read_stream, strict, wait_idle

client = anthropic.Anthropic(api_key=os.environ["DROVER_KEY"], base_url=os.environ["DROVER_API_URL"], max_retries=0)
beta = client.beta
def run(agent_id, text):
    """A session of `agent_id` runs a turn on `text`; its id and events (each validated strictly)."""
    session = beta.sessions.create(agent=agent_id, environment_id=environment.id)
    beta.sessions.events.send(session.id, events=[{"type": "user.message", "content": [{"type": "text", "text": text}]}])
    wait_idle(beta, session.id, timeout=90)
    events = beta.sessions.events.with_raw_response.list(session.id, limit=100).http_response.json()["data"]
    for event in events:
        strict(f"events.list ({event['type']})", BetaManagedAgentsSessionEvent, event)
    return session, events


worker = beta.agents.create(name="worker", model="claude-sonnet-4-5")
coordinator = beta.agents.create(name="coordinator", model="claude-sonnet-4-5", multiagent={"type": "coordinator", "agents": [worker.id]})
environment = beta.environments.create(name="threads")
session, events = run(coordinator.id, "coordinate the work")
created = [e for e in events if e["type"] == "session.thread_created"]
sent = [e for e in events if e["type"] == "agent.thread_message_sent"]
received = [e for e in events if e["type"] == "agent.thread_message_received"]
replies = sorted(e["content"][0]["text"] for e in received if e["content"])
if len(created) != 2 or len(sent) != 2 or replies != ["A is done.", "B is done."]:
    failures.append(f"two threads started and heard from: {[e['type'] for e in events]} {replies}")
running = [e for e in events if e["type"] == "session.thread_status_running"]
idled = [e for e in events if e["type"] == "session.thread_status_idle"]
if sorted(e["session_thread_id"] for e in running) != sorted(e["session_thread_id"] for e in created) or len(idled) != 2 \
        or any(e["agent_name"] != "worker" for e in running + idled):
    failures.append(f"each thread's status on the session's log: {running} {idled}")
coordinator_sandbox = {e["sandbox"] for e in events if e["type"] == "agent.tool_result" and "sandbox" in e}
if len(coordinator_sandbox) != 1:
    failures.append(f"the coordinator's call ran in a sandbox: {coordinator_sandbox}")
idle = [e for e in events if e["type"] == "session.status_idle"]
if not idle or idle[-1]["stop_reason"]["type"] != "end_turn" or len(idle) != 1:
    failures.append(f"the coordinator's turn: {idle}")

threads = beta.sessions.threads.with_raw_response.list(session.id).http_response.json()
strict("threads.list", pydantic.create_model("Page", data=(list[BetaManagedAgentsSessionThread], ...), next_page=(str | None, ...)), threads)
ids = sorted(t["id"] for t in threads["data"])
if ids != sorted(e["session_thread_id"] for e in created) or any(t["status"] != "idle" or t["agent"]["id"] != worker.id for t in threads["data"]):
    failures.append(f"threads.list: {threads['data']}")
for thread_id in ids:
    one = beta.sessions.threads.with_raw_response.retrieve(thread_id, session_id=session.id).http_response.json()
    strict("threads.retrieve", BetaManagedAgentsSessionThread, one)
    thread_events = beta.sessions.threads.events.with_raw_response.list(thread_id, session_id=session.id).http_response.json()["data"]
    for event in thread_events:
        strict(f"threads.events.list ({event['type']})", BetaManagedAgentsSessionEvent, event)
    if any(e.get("session_thread_id") != thread_id for e in thread_events):
        failures.append(f"thread {thread_id}'s events do not name it")
    if not one["usage"].get("input_tokens") or one["stats"]["duration_seconds"] <= 0:
        failures.append(f"thread {thread_id}'s usage and stats: {one['usage']} {one['stats']}")
    results = [e for e in thread_events if e["type"] == "agent.tool_result"]
    if len(results) != 1 or "-done" not in str(results[0]["content"]):
        failures.append(f"thread {thread_id} ran its tool once: {[e['type'] for e in thread_events]}")
    elif "coordinator-note" not in str(results[0]["content"]) or {results[0].get("sandbox")} != coordinator_sandbox:
        failures.append(f"thread {thread_id} shares the session's sandbox: {results[0]} {coordinator_sandbox}")
    # The thread's stream from its first event on (Last-Event-ID), read raw and validated.
    streamed = []
    with beta.sessions.threads.events.with_streaming_response.stream(
            thread_id, session_id=session.id, extra_headers={"Last-Event-ID": thread_events[0]["id"]}) as response:
        read_stream(response, streamed)
    for event in streamed:
        strict(f"threads.events.stream ({event['type']})", BetaManagedAgentsStreamSessionThreadEvents, event)
    if [e["id"] for e in streamed] != [e["id"] for e in thread_events[1:]]:
        failures.append(f"the thread's stream after its first event: {[e['type'] for e in streamed]}")
outputs = sorted(f.filename for f in beta.files.list(scope_id=session.id))
if outputs != ["a.txt"]:
    failures.append(f"a thread's output is the session's: {outputs}")
else:
    print("ok the threads worked in the session's sandbox", flush=True)
archived = beta.sessions.threads.with_raw_response.archive(ids[0], session_id=session.id).http_response.json()
strict("threads.archive", BetaManagedAgentsSessionThread, archived)
if not archived["archived_at"]:
    failures.append(f"threads.archive: {archived}")
try:
    beta.sessions.retrieve(ids[0])
    failures.append("a thread answered as a session")
except anthropic.NotFoundError:
    pass
if any(s.id.startswith("sthr_") for s in beta.sessions.list()):
    failures.append("sessions.list lists threads")

# message_thread: the coordinator sends its thread a second message; the thread answers again.
twice, events = run(coordinator.id, "coordinate twice")
received = [e["content"][0]["text"] for e in events if e["type"] == "agent.thread_message_received"]
sent = [e for e in events if e["type"] == "agent.thread_message_sent"]
created = [e for e in events if e["type"] == "session.thread_created"]
if received != ["First answer.", "Second answer."] or len(sent) != 2 or len(created) != 1 \
        or len({e["to_session_thread_id"] for e in sent}) != 1:
    failures.append(f"message_thread: {received} {[e['type'] for e in events]}")
else:
    print("ok a thread messaged again answers again", flush=True)

# An inline agent: defined by the coordinator when it starts the thread, not saved.
planner = beta.agents.create(name="planner", model="claude-sonnet-4-5", multiagent={"type": "multiagent_20261001"})
planned, events = run(planner.id, "plan with a helper")
received = [e["content"][0]["text"] for e in events if e["type"] == "agent.thread_message_received"]
listed = beta.sessions.threads.with_raw_response.list(planned.id).http_response.json()["data"]
for thread in listed:
    strict("threads.list (inline agent)", BetaManagedAgentsSessionThread, thread)
if received != ["Helped."] or [(t["agent"]["type"], t["agent"]["name"]) for t in listed] != [("inline", "helper")] \
        or "id" in listed[0]["agent"] or any(a.name == "helper" for a in beta.agents.list()):
    failures.append(f"an inline agent's thread: {received} {listed}")
else:
    print("ok an inline agent ran a thread, unsaved", flush=True)

# The advisor: consulted mid-turn through consult_advisor; its answer is the call's result.
advised_agent = beta.agents.create(name="advised", model="claude-sonnet-4-5", multiagent={
    "type": "multiagent_20261001", "advisor": {"type": "enabled", "model": "claude-opus-4-1"}, "subagents": {"type": "disabled"}})
advised, events = run(advised_agent.id, "ask the advisor")
answers = [e for e in events if e["type"] == "agent.tool_result"]
messages = [e["content"][0]["text"] for e in events if e["type"] == "agent.message"]
if len(answers) != 1 or answers[0]["content"][0]["text"] != "Yes: use Postgres." or answers[0]["drover_advisor"]["model"] != "claude-opus-4-1" \
        or messages != ["Following the advice."]:
    failures.append(f"the advisor: {answers} {messages}")
else:
    print("ok the advisor was consulted mid-turn", flush=True)

finish("session threads")
