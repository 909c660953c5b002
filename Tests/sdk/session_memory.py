"""Issue #24, item 2, through the pinned SDK: memory stores attached to a session
(`{type: memory_store, memory_store_id, access, instructions}`) are mounted at
/mnt/memory/<slug of the name>; the agent reads them, and what it writes in a read_write one
becomes new versions whose actor is the session, while a read_only one cannot be written. Run by
DroverAPITests.SDKTests with DROVER_API_URL and DROVER_KEY_A.
"""
import json
import os
import sys
import time

import anthropic

from checks import failures, finish, strict, wait_idle
from anthropic.types.beta.sessions import BetaManagedAgentsMemoryStoreResource

client = anthropic.Anthropic(api_key=os.environ["DROVER_KEY_A"], base_url=os.environ["DROVER_API_URL"], max_retries=0)
beta = client.beta

if sys.argv[1:2] == ["later"]:
    state = json.loads(sys.argv[2])
    notes = beta.memory_stores.retrieve(state["store"])
    agent = beta.agents.retrieve(state["agent"])
    environment = beta.environments.retrieve(state["environment"])
    # Session B, later: reads what session A wrote.
    later = beta.sessions.create(agent=agent.id, environment_id=environment.id, resources=[{"type": "memory_store", "memory_store_id": notes.id}])
    beta.sessions.events.send(later.id, events=[{"type": "user.message", "content": [{"type": "text", "text": "recall the memory"}]}])
    wait_idle(beta, later.id)
    recalled = json.dumps([e for e in beta.sessions.events.list(later.id) if e.type == "agent.tool_result"][-1].model_dump(mode="json"))
    if "learned" not in recalled or "likes-tea" not in recalled:
        failures.append(f"a later session did not read what the first wrote: {recalled}")
    finish("session memory, later")
    sys.exit(0)

notes = beta.memory_stores.create(name="Team Notes!", description="what the team learned")
beta.memory_stores.memories.create(notes.id, path="/todo.md", content="first\n")
beta.memory_stores.memories.create(notes.id, path="/old.md", content="stale")
rules = beta.memory_stores.create(name="house rules")
beta.memory_stores.memories.create(rules.id, path="/rules.md", content="be kind\n")
agent = beta.agents.create(name="memory", model="claude-sonnet-4-5", tools=[{"type": "agent_toolset_20260401"}])
environment = beta.environments.create(name="memory")
session = beta.sessions.create(agent=agent.id, environment_id=environment.id, resources=[
    {"type": "memory_store", "memory_store_id": notes.id, "instructions": "Keep the todo list current."},
    {"type": "memory_store", "memory_store_id": rules.id, "access": "read_only"},
])
resources = beta.sessions.resources.with_raw_response.list(session.id).http_response.json()["data"]
for resource in resources:
    strict("resources.list (memory_store)", BetaManagedAgentsMemoryStoreResource, resource)
if [(r["mount_path"], r["access"], r["name"]) for r in resources] != [
        ("/mnt/memory/team-notes", "read_write", "Team Notes!"), ("/mnt/memory/house-rules", "read_only", "house rules")]:
    failures.append(f"resources.list: {resources}")
if [s.id for s in beta.sessions.list(memory_store_id=rules.id)] != [session.id]:
    failures.append("sessions.list(memory_store_id=) does not find the session")

beta.sessions.events.send(session.id, events=[{"type": "user.message", "content": [{"type": "text", "text": "use the memory"}]}])
wait_idle(beta, session.id)
result = [e for e in beta.sessions.events.list(session.id) if e.type == "agent.tool_result"][-1]
text = json.dumps(result.model_dump(mode="json"))
if "first" not in text or "be kind" not in text or "Read-only file system" not in text:
    failures.append(f"the stores were not mounted as they should be: {text}")

memories = {m.path: m for m in beta.memory_stores.memories.list(notes.id, view="full")}
if sorted(memories) != ["/people/ana.md", "/todo.md"]:
    failures.append(f"the store after the turn: {sorted(memories)}")
elif memories["/todo.md"].content != "first\nlearned\n" or memories["/people/ana.md"].content != "likes-tea\n":
    failures.append(f"the memories' contents: {memories}")
versions = list(beta.memory_stores.memory_versions.list(notes.id, session_id=session.id))
if sorted(v.operation for v in versions) != ["created", "deleted", "modified"]:
    failures.append(f"versions by the session: {[(v.operation, v.path) for v in versions]}")
if any(v.created_by.type != "session_actor" or v.created_by.session_id != session.id for v in versions):
    failures.append("a version written back is not the session's")
if [m.content for m in beta.memory_stores.memories.list(rules.id, view="full")] != ["be kind\n"]:
    failures.append("the read-only store changed")

# An interrupted turn keeps what it wrote: the write-back that ends it runs after the interrupt.
busy = beta.sessions.create(agent=agent.id, environment_id=environment.id, resources=[{"type": "memory_store", "memory_store_id": notes.id}])
beta.sessions.events.send(busy.id, events=[{"type": "user.message", "content": [{"type": "text", "text": "remember then wait"}]}])
deadline = time.time() + 30
while not any(e.type == "agent.tool_use" for e in beta.sessions.events.list(busy.id)) and time.time() < deadline:
    time.sleep(0.1)
time.sleep(1)
beta.sessions.events.send(busy.id, events=[{"type": "user.interrupt"}])
wait_idle(beta, busy.id)
kept = [m for m in beta.memory_stores.memories.list(notes.id, view="full") if m.path == "/wip.md"]
if [m.content for m in kept] != ["half-done\n"]:
    failures.append(f"an interrupted turn's memory change was lost: {kept}")

print("STATE " + json.dumps({"store": notes.id, "agent": agent.id, "environment": environment.id}), flush=True)
finish("session memory")
