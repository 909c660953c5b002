"""Issue #24, item 3, through the pinned SDK: a dream reads a memory store and sessions and writes
its result as the SDK's `output_behavior` says. `create_new` copies the store and the dream's
session writes the copy (its sandbox has the sessions' transcripts under
/mnt/session/transcripts/); `update_existing` writes the input store, and only one such dream
per store runs at a time (409). Cancel, archive and list with their documented refusals. Every
answer validates strictly against `BetaDream`. Run by DroverAPITests.SDKTests with
DROVER_API_URL and DROVER_KEY_A.
"""
import os
import time

import anthropic

from checks import failures, finish, refused, strict, wait_idle
from anthropic.types.beta import BetaDream

client = anthropic.Anthropic(api_key=os.environ["DROVER_KEY_A"], base_url=os.environ["DROVER_API_URL"], max_retries=0)
beta = client.beta


def raw(call, *args, **kwargs):
    """The JSON of a call's answer, validated strictly as a BetaDream."""
    response = getattr(beta.dreams.with_raw_response, call)(*args, **kwargs)
    value = response.http_response.json()
    strict(f"dreams.{call}", BetaDream, value)
    return value


def wait_final(dream_id, timeout=60):
    deadline = time.time() + timeout
    while True:
        dream = raw("retrieve", dream_id)
        if dream["status"] in ("completed", "failed", "canceled"):
            return dream
        if time.time() > deadline:
            raise AssertionError(f"{dream_id} is still {dream['status']} after {timeout} s")
        time.sleep(0.2)


notes = beta.memory_stores.create(name="notes", description="what we know")
beta.memory_stores.memories.create(notes.id, path="/seed.md", content="seeded\n")
agent = beta.agents.create(name="talker", model="claude-sonnet-4-5")
environment = beta.environments.create(name="talk")
talks = []
for colour in ("teal", "amber"):
    session = beta.sessions.create(agent=agent.id, environment_id=environment.id)
    beta.sessions.events.send(session.id, events=[
        {"type": "user.message", "content": [{"type": "text", "text": f"my favourite colour is {colour}"}]}])
    talks.append(session.id)
for session_id in talks:
    wait_idle(beta, session_id)

inputs = [{"type": "memory_store", "memory_store_id": notes.id}, {"type": "sessions", "session_ids": list(reversed(talks))}]
created = raw("create", inputs=inputs, model="claude-sonnet-4-5", instructions="Keep one file of colours.")
if created["status"] not in ("pending", "running") or created["output_behavior"] != {"type": "create_new"}:
    failures.append(f"create: {created}")
if created["status"] == "pending" and (created["outputs"] or created["session_id"] is not None):
    failures.append(f"a pending dream shows outputs or a session: {created}")
if created["inputs"][1]["session_ids"] != sorted(talks) or created["model"] != {"id": "claude-sonnet-4-5", "speed": "standard"}:
    failures.append(f"create: inputs or model as answered: {created}")

done = wait_final(created["id"])
if done["status"] != "completed" or done["ended_at"] is None or done["error"] is not None:
    failures.append(f"the dream did not complete: {done}")
output = done["outputs"][0]["memory_store_id"] if done["outputs"] else None
if output is None or output == notes.id or done["session_id"] is None:
    failures.append(f"create_new: outputs and session_id: {done}")
if done["usage"]["output_tokens"] <= 0:
    failures.append(f"usage: {done['usage']}")
if output:
    written = {m.path: m.content for m in beta.memory_stores.memories.list(output, view="full")}
    if written.get("/seed.md") != "seeded\n" or sorted((written.get("/lessons.md") or "").split()) != ["amber", "colour", "colour", "is", "is", "teal"]:
        failures.append(f"the output store: {written}")
    versions = [v for v in beta.memory_stores.memory_versions.list(output) if v.path == "/lessons.md"]
    if [(v.created_by.type, getattr(v.created_by, "session_id", None)) for v in versions] != [("session_actor", done["session_id"])]:
        failures.append(f"the lesson was not written by the dream's session: {versions}")
if [m.path for m in beta.memory_stores.memories.list(notes.id)] != ["/seed.md"]:
    failures.append("create_new changed the input store")
# The dream's session is an ordinary session: its events tell what it read and wrote.
tool_results = [e for e in beta.sessions.events.list(done["session_id"]) if e.type == "agent.tool_result"] if done["session_id"] else []
if not tool_results or "teal" not in str(tool_results[0].content):
    failures.append(f"the dream's session did not read the transcripts: {tool_results}")
# Drover's agent and environment for dreams are not the user's.
if [a.id for a in beta.agents.list()] != [agent.id] or [e.id for e in beta.environments.list()] != [environment.id]:
    failures.append("the dream's agent or environment shows in the user's lists")

# update_existing: one at a time per store; cancel stops it.
existing = {"type": "update_existing", "memory_store_id": notes.id}
slow = raw("create", inputs=inputs, model={"id": "claude-sonnet-4-5", "speed": "standard"}, output_behavior=existing)
refused("a second update_existing dream on the store", 409,
        lambda: beta.dreams.create(inputs=inputs, model="claude-sonnet-4-5", output_behavior=existing))
refused("archive a dream that has not ended", 400, lambda: beta.dreams.archive(slow["id"]))
# Canceled once its bash call has written a memory file in the sandbox and sleeps: the write-back
# that ends the interrupted turn must not reach the store.
deadline = time.time() + 30
while time.time() < deadline:
    running = raw("retrieve", slow["id"])
    if running["session_id"] and any(e.type == "agent.tool_use" for e in beta.sessions.events.list(running["session_id"])):
        break
    time.sleep(0.1)
time.sleep(1)
canceled = raw("cancel", slow["id"])
if canceled["status"] != "canceled" or canceled["ended_at"] is None:
    failures.append(f"cancel: {canceled}")
if raw("cancel", slow["id"])["status"] != "canceled":
    failures.append("canceling a canceled dream changed it")
refused("cancel a completed dream", 400, lambda: beta.dreams.cancel(done["id"]))
if canceled["session_id"] is None:
    failures.append(f"a dream canceled while running has no session: {canceled}")
else:
    wait_idle(beta, canceled["session_id"])
if raw("retrieve", slow["id"])["status"] != "canceled":
    failures.append("a canceled dream's status changed when its session stopped")
if [m.path for m in beta.memory_stores.memories.list(notes.id)] != ["/seed.md"]:
    failures.append("the canceled dream wrote the store")

# Refusals, as the SDK documents them.
refused("two memory_store inputs", 400, lambda: beta.dreams.create(inputs=inputs + inputs[:1], model="m"))
refused("no sessions input", 400, lambda: beta.dreams.create(inputs=inputs[:1], model="m"))
refused("a session id twice", 400, lambda: beta.dreams.create(
    inputs=[inputs[0], {"type": "sessions", "session_ids": [talks[0], talks[0]]}], model="m"))
refused("speed fast", 400, lambda: beta.dreams.create(inputs=inputs, model={"id": "m", "speed": "fast"}))
refused("empty instructions", 400, lambda: beta.dreams.create(inputs=inputs, model="m", instructions=""))
refused("update_existing of another store", 400, lambda: beta.dreams.create(
    inputs=inputs, model="m", output_behavior={"type": "update_existing", "memory_store_id": "memstore_other"}))
refused("an unknown session", 404, lambda: beta.dreams.create(
    inputs=[inputs[0], {"type": "sessions", "session_ids": ["sesn_missing"]}], model="m"))
refused("an unknown store", 404, lambda: beta.dreams.create(
    inputs=[{"type": "memory_store", "memory_store_id": "memstore_missing"}, inputs[1]], model="m"))
refused("without the dreams beta", 400, lambda: beta.dreams.list(extra_headers={"anthropic-beta": "managed-agents-2026-04-01"}))
refused("an unknown dream", 404, lambda: beta.dreams.retrieve("drm_missing"))

# Lists: newest first, by status, archived ones only when asked.
listed = beta.dreams.with_raw_response.list().http_response.json()
for item in listed["data"]:
    strict("dreams.list", BetaDream, item)
if [d["id"] for d in listed["data"]] != [slow["id"], created["id"]] or listed["next_page"] is not None:
    failures.append(f"dreams.list: {[d['id'] for d in listed['data']]}")
if [d.id for d in beta.dreams.list(statuses=["completed"])] != [created["id"]]:
    failures.append("dreams.list(statuses=[completed])")
if [d.id for d in beta.dreams.list(limit=1)] != [slow["id"], created["id"]]:
    failures.append("dreams.list pages (limit=1, auto-paging)")
archived = raw("archive", created["id"])
if archived["archived_at"] is None or raw("archive", created["id"])["archived_at"] != archived["archived_at"]:
    failures.append(f"archive: {archived}")
if [d.id for d in beta.dreams.list()] != [slow["id"]] or len(list(beta.dreams.list(include_archived=True))) != 2:
    failures.append("an archived dream is listed by default, or not with include_archived")

finish("dreams")
