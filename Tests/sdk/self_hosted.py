"""Self-hosted environments against `drover api` with the pinned SDK's own worker.

Run by DroverAPITests.SelfHostedTests, one step per invocation:

  setup                  agent + two self_hosted environments; prints their ids as JSON
  worker ENV KEY ID DIR  the SDK's EnvironmentWorker (beta_agent_toolset_20260401) until killed
  serve N                N sessions on environment A, each to end_turn with the worker's results
  start TEXT             one session on environment A with the message TEXT; prints its id
  wait SESSION           waits for SESSION to end its turn; checks its results
  refusals               what keys and tokens may not do, on environment B (no workers)
  deadline               calls on environment C (no workers, tool_deadline_s 1) end as errors
  revoked                environment B's key, revoked by then, gets 401

Ids and keys come in DROVER_* variables. Every response and event is validated with the SDK's
pydantic models in strict mode. Prints "all checks passed" at the end of a checking step.
"""
import asyncio
import json
import logging
import os
import sys
import time
import urllib.error
import urllib.request

import anthropic
import pydantic
from anthropic.types.beta import BetaEnvironment, BetaManagedAgentsSession
from anthropic.types.beta.environments import (
    BetaSelfHostedWork,
    BetaSelfHostedWorkHeartbeatResponse,
    BetaSelfHostedWorkQueueStats,
)
from anthropic.types.beta.sessions import BetaManagedAgentsSessionEvent

BASE = os.environ["DROVER_API_URL"]


def check(name, condition, detail=""):
    if not condition:
        raise AssertionError(f"{name}: {detail}")
    print("ok", name, flush=True)


def strict(model, value):
    """Validates a JSON value with an SDK model (or union of models) in strict mode, as JSON (where
    strict mode reads RFC 3339 text as the datetimes the models declare)."""
    return pydantic.TypeAdapter(model).validate_json(json.dumps(value), strict=True)


def client(key=None):
    return anthropic.Anthropic(api_key=key or os.environ["DROVER_KEY"], base_url=BASE, max_retries=0)


def bearer(token):
    return anthropic.Anthropic(auth_token=token, api_key=None, base_url=BASE, max_retries=0)


def raw(token, method, path, headers=None):
    """A plain HTTP request with a bearer token: (status, JSON body)."""
    request = urllib.request.Request(BASE + path, method=method, headers={
        "authorization": f"Bearer {token}", "anthropic-beta": "managed-agents-2026-04-01", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def setup():
    c = client()
    agent = c.beta.agents.create(name="remote", model="claude-sonnet-4-5", tools=[{"type": "agent_toolset_20260401"}])
    a = c.beta.environments.with_raw_response.create(name="laptops", config={"type": "self_hosted"})
    environment_a = strict(BetaEnvironment, a.http_response.json())
    check("a self_hosted environment", environment_a.config.type == "self_hosted", environment_a)
    b = c.beta.environments.create(name="spare", config={"type": "self_hosted", "tool_deadline_s": 30})
    quick = c.beta.environments.create(name="unattended", config={"type": "self_hosted", "tool_deadline_s": 1})
    cloud = c.beta.environments.create(name="pool", config={"type": "cloud"})
    try:
        c.beta.environments.update(b.id, config={"type": "cloud"})
        raise AssertionError("an environment changed its type")
    except anthropic.BadRequestError as e:
        check("an environment keeps its type: 400", e.status_code == 400, e)
    try:
        c.beta.environments.create(name="odd", config={"type": "self_hosted", "packages": {"pip": ["x"]}})
        raise AssertionError("a self_hosted config took packages")
    except anthropic.BadRequestError as e:
        check("a self_hosted config takes nothing else: 400", e.status_code == 400, e)
    print(json.dumps({"agent": agent.id, "environment_a": environment_a.id, "environment_b": b.id, "environment_c": quick.id,
                      "environment_cloud": cloud.id}), flush=True)


async def worker(environment, key, worker_id, workdir):
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    c = anthropic.AsyncAnthropic(api_key="unused", base_url=BASE)
    print(json.dumps({"msg": "worker started", "worker_id": worker_id}), flush=True)
    await c.beta.environments.work.worker(
        environment_id=environment, environment_key=key, workdir=workdir, worker_id=worker_id, max_idle=0.5).run()


def events_of(c, session):
    listed = c.beta.sessions.events.with_raw_response.list(session, limit=1000).http_response.json()
    return [strict(BetaManagedAgentsSessionEvent, e) for e in listed["data"]]


def wait_idle(c, session, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        events = events_of(c, session)
        if events and events[-1].type == "session.status_idle":
            return events
        time.sleep(0.2)
    raise AssertionError(f"{session} did not go idle within {timeout} s: {[e.type for e in events_of(c, session)]}")


def check_session(c, session, expected_uses):
    events = wait_idle(c, session)
    types = [e.type for e in events]
    uses = [e for e in events if e.type == "agent.tool_use"]
    results = {e.tool_use_id: e for e in events if e.type == "user.tool_result"}
    check(f"{session} ended end_turn", events[-1].stop_reason.type == "end_turn", types)
    check(f"{session} had {expected_uses} calls, each answered once by a worker",
          len(uses) == expected_uses and len(results) == expected_uses and types.count("user.tool_result") == expected_uses
          and all(u.id in results for u in uses) and "agent.tool_result" not in types, types)
    check(f"{session} results are not errors", not any(r.is_error for r in results.values()),
          [r.content for r in results.values()])
    retrieved = strict(BetaManagedAgentsSession, c.beta.sessions.with_raw_response.retrieve(session).http_response.json())
    check(f"{session} idle", retrieved.status == "idle", retrieved.status)
    return uses, results


def serve(count):
    c = client()
    sessions = [c.beta.sessions.create(agent=os.environ["DROVER_AGENT"], environment_id=os.environ["DROVER_ENV_A"]).id
                for _ in range(count)]
    # Alongside them, in the same fleet, a session of a pool-backed environment.
    pooled = c.beta.sessions.create(agent=os.environ["DROVER_AGENT"], environment_id=os.environ["DROVER_ENV_CLOUD"]).id
    c.beta.sessions.events.send(pooled, events=[{"type": "user.message", "content": [{"type": "text", "text": "in the cloud"}]}])
    for session in sessions:
        c.beta.sessions.events.send(session, events=[{"type": "user.message", "content": [{"type": "text", "text": "do the work"}]}])
    events = wait_idle(c, pooled)
    ran = [e for e in events if e.type == "agent.tool_result"]
    check("a pool-backed session beside them runs its call in the sandbox",
          events[-1].stop_reason.type == "end_turn" and len(ran) == 1 and "from-the-pool" in ran[0].content[0].text
          and "user.tool_result" not in [e.type for e in events], [e.type for e in events])
    for session in sessions:
        uses, results = check_session(c, session, 3)
        by_name = {u.name: results[u.id] for u in uses}
        check(f"{session} bash ran on the worker", "hello-from-worker" in by_name["bash"].content[0].text, by_name["bash"])
        check(f"{session} read what write wrote", "drover was here" in by_name["read"].content[0].text, by_name["read"])
    work = c.beta.environments.work
    stats = strict(BetaSelfHostedWorkQueueStats, work.with_raw_response.stats(os.environ["DROVER_ENV_A"]).http_response.json())
    check("the queue is empty afterwards", stats.depth == 0 and stats.pending == 0, stats)
    check("workers were polling", (stats.workers_polling or 0) >= 2, stats)
    print("all checks passed", flush=True)


def memory():
    """A self-hosted session with a memory store: the SDK's worker downloads it to the store's
    mount path, the agent's call edits it there, and the worker's sync writes the change back as
    the session (with the work item's sessions token)."""
    c = client()
    store = c.beta.memory_stores.create(name="worker notes")
    c.beta.memory_stores.memories.create(store.id, path="/todo.md", content="first\n")
    session = c.beta.sessions.create(agent=os.environ["DROVER_AGENT"], environment_id=os.environ["DROVER_ENV_A"],
                                     resources=[{"type": "memory_store", "memory_store_id": store.id}]).id
    c.beta.sessions.events.send(session, events=[{"type": "user.message", "content": [{"type": "text", "text": "use the worker memory"}]}])
    events = wait_idle(c, session)
    results = [e for e in events if e.type == "user.tool_result"]
    check("the worker mounted the store at its mount path", results and "first" in json.dumps(results[-1].model_dump(mode="json")),
          [e.model_dump(mode="json") for e in results])
    deadline = time.time() + 60
    content = None
    while time.time() < deadline:
        content = [m.content for m in c.beta.memory_stores.memories.list(store.id, view="full")]
        if content == ["first\nlearned-on-a-worker\n"]:
            break
        time.sleep(0.5)
    check("the worker's sync wrote the agent's change back", content == ["first\nlearned-on-a-worker\n"], content)
    versions = list(c.beta.memory_stores.memory_versions.list(store.id, operation="modified"))
    check("as the session", len(versions) == 1 and versions[0].created_by.type == "session_actor" and versions[0].created_by.session_id == session,
          versions)
    print("all checks passed", flush=True)


def skills():
    """A self-hosted session whose agent has a skill: the SDK's worker downloads it (with the work
    item's sessions token) into {workdir}/skills/<name>/ before the call runs."""
    c = client()
    skill = c.beta.skills.create(files=[
        ("greeter/SKILL.md", b"---\nname: greeter\ndescription: Greets on a worker.\n---\n"),
        ("greeter/hello.sh", b"echo hello from the worker skill\n")])
    agent = c.beta.agents.create(name="skilled", model="claude-sonnet-4-5", tools=[{"type": "agent_toolset_20260401"}],
                                 skills=[{"type": "custom", "skill_id": skill.id}])
    session = c.beta.sessions.create(agent=agent.id, environment_id=os.environ["DROVER_ENV_A"]).id
    c.beta.sessions.events.send(session, events=[{"type": "user.message", "content": [{"type": "text", "text": "use the worker skill"}]}])
    events = wait_idle(c, session)
    results = json.dumps([e.model_dump(mode="json") for e in events if e.type == "user.tool_result"])
    check("the worker downloaded the skill into its workdir", "Greets on a worker." in results and "hello from the worker skill" in results, results)
    print("all checks passed", flush=True)


def start(text):
    c = client()
    session = c.beta.sessions.create(agent=os.environ["DROVER_AGENT"], environment_id=os.environ["DROVER_ENV_A"]).id
    c.beta.sessions.events.send(session, events=[{"type": "user.message", "content": [{"type": "text", "text": text}]}])
    print(json.dumps({"session": session}), flush=True)


def wait(session):
    check_session(client(), session, 3)
    print("all checks passed", flush=True)


def refusals():
    c = client()
    env_b = os.environ["DROVER_ENV_B"]
    key_b = os.environ["DROVER_ENV_KEY_B"]
    worker = bearer(key_b)
    other_org = client(os.environ["DROVER_KEY_OTHER"])

    # Two sessions of environment B: each gets a queued item. The first has memory stores attached.
    store_rw = c.beta.memory_stores.create(name="worker notes")
    store_ro = c.beta.memory_stores.create(name="worker rules")
    c.beta.memory_stores.memories.create(store_ro.id, path="/rule.md", content="be kind")
    store_other = c.beta.memory_stores.create(name="not attached")
    s1 = c.beta.sessions.create(agent=os.environ["DROVER_AGENT"], environment_id=env_b, resources=[
        {"type": "memory_store", "memory_store_id": store_rw.id},
        {"type": "memory_store", "memory_store_id": store_ro.id, "access": "read_only"},
    ]).id
    s2 = c.beta.sessions.create(agent=os.environ["DROVER_AGENT"], environment_id=env_b).id
    stats = strict(BetaSelfHostedWorkQueueStats, c.beta.environments.work.with_raw_response.stats(env_b).http_response.json())
    check("stats: two queued", stats.depth == 2 and stats.pending == 0 and stats.oldest_queued_at is not None, stats)

    status, body = raw(key_b, "GET", f"/v1/environments/{env_b}/work/poll?block_ms=0")
    check("block_ms 0 is refused", status == 400, (status, body))
    item = strict(BetaSelfHostedWork, raw(key_b, "GET", f"/v1/environments/{env_b}/work/poll", headers={"Anthropic-Worker-ID": "w-check"})[1])
    check("a poll hands out the oldest item with its secret", item.state == "queued" and item.data.id == s1 and item.secret, item)
    from anthropic.lib.environments._worker import _sessions_token_from_secret
    token = _sessions_token_from_secret(item.secret)
    check("the secret carries a sessions token", token and token.startswith("sk-drover-work-"), "no token")
    second = strict(BetaSelfHostedWork, raw(key_b, "GET", f"/v1/environments/{env_b}/work/poll")[1])
    check("a second poll skips the handed-out item", second.data.id == s2, second)
    status, body = raw(key_b, "GET", f"/v1/environments/{env_b}/work/poll?block_ms=200")
    check("nothing left: the SDK's no-work answer after the long poll", status == 200 and body is None, (status, body))
    stats = strict(BetaSelfHostedWorkQueueStats, raw(key_b, "GET", f"/v1/environments/{env_b}/work/stats")[1])
    check("stats: two pending, a worker polling", stats.depth == 0 and stats.pending == 2 and stats.workers_polling == 1, stats)

    sessions_client = bearer(token)
    work = sessions_client.beta.environments.work
    acked = strict(BetaSelfHostedWork, work.with_raw_response.ack(item.id, environment_id=env_b).http_response.json())
    check("ack with the token: starting, secret null", acked.state == "starting" and acked.secret is None and acked.acknowledged_at, acked)
    first = strict(BetaSelfHostedWorkHeartbeatResponse, work.with_raw_response.heartbeat(
        item.id, environment_id=env_b, expected_last_heartbeat="NO_HEARTBEAT", desired_ttl_seconds=100000).http_response.json())
    check("first heartbeat: active, extended, ttl clamped", first.state == "active" and first.lease_extended and first.ttl_seconds == 600, first)
    again = strict(BetaSelfHostedWorkHeartbeatResponse, work.with_raw_response.heartbeat(
        item.id, environment_id=env_b, expected_last_heartbeat=first.last_heartbeat).http_response.json())
    check("the next heartbeat echoes the last", again.lease_extended and again.last_heartbeat != first.last_heartbeat, again)
    try:
        work.heartbeat(item.id, environment_id=env_b, expected_last_heartbeat=first.last_heartbeat)
        raise AssertionError("a stale heartbeat was accepted")
    except anthropic.PreconditionFailedError as e:
        from anthropic.types.beta.environments import BetaHeartbeatPreconditionFailedErrorDetails
        details = strict(BetaHeartbeatPreconditionFailedErrorDetails, e.body["error"]["details"])
        check("a stale heartbeat: 412 heartbeat_precondition_failed with the lease",
              e.status_code == 412 and e.error_code == "heartbeat_precondition_failed" and details.current_state.state == "active"
              and details.current_state.last_heartbeat == again.last_heartbeat and not details.current_state.lease_extended, e.body)

    # What the token may do: its session, and tool results.
    session = strict(BetaManagedAgentsSession, sessions_client.beta.sessions.with_raw_response.retrieve(s1).http_response.json())
    check("the token reads its session", session.id == s1, session)
    events_of(sessions_client, s1)
    # The memories of its session's stores, as the SDK's worker syncs them: written as the session.
    memories = sessions_client.beta.memory_stores.memories
    made = memories.create(store_rw.id, path="/from-worker.md", content="synced")
    memories.update(made.id, memory_store_id=store_rw.id, content="synced twice",
                    precondition={"type": "content_sha256", "content_sha256": made.content_sha256})
    versions = list(c.beta.memory_stores.memory_versions.list(store_rw.id))
    check("the token writes its session's read_write store, as the session",
          [v.created_by.type for v in versions] == ["session_actor", "session_actor"] and versions[0].created_by.session_id == s1, versions)
    check("the token reads a read_only store", [m.path for m in memories.list(store_ro.id)] == ["/rule.md"], "")
    # ... and what it may not.
    for name, call in [
        ("writing a read_only store", lambda: memories.create(store_ro.id, path="/x.md", content="x")),
        ("a store its session has not attached", lambda: list(memories.list(store_other.id))),
        ("a store's versions", lambda: list(sessions_client.beta.memory_stores.memory_versions.list(store_rw.id))),
        ("another session of the environment", lambda: sessions_client.beta.sessions.retrieve(s2)),
        ("another session's events", lambda: sessions_client.beta.sessions.events.list(s2)),
        ("another item", lambda: work.heartbeat(second.id, environment_id=env_b)),
        ("the agents", lambda: sessions_client.beta.agents.list()),
        ("a user message", lambda: sessions_client.beta.sessions.events.send(
            s1, events=[{"type": "user.message", "content": [{"type": "text", "text": "hi"}]}])),
        ("polling", lambda: work.poll(env_b)),
        ("retrieving its item (an API key's)", lambda: work.retrieve(item.id, environment_id=env_b)),
    ]:
        try:
            call()
            raise AssertionError(f"the sessions token reached {name}")
        except (anthropic.NotFoundError, anthropic.PermissionDeniedError) as e:
            check(f"the sessions token may not reach {name} ({e.status_code})", e.status_code in (403, 404), e)
    for name, call in [
        ("the environment key: retrieve", lambda: worker.beta.environments.work.retrieve(item.id, environment_id=env_b)),
        ("the environment key: the agents", lambda: worker.beta.agents.list()),
        ("an API key: poll", lambda: c.beta.environments.work.poll(env_b)),
        ("an API key: list", lambda: c.beta.environments.work.list(env_b)),
        ("another organisation: stats", lambda: other_org.beta.environments.work.stats(env_b)),
        ("the environment key on environment A", lambda: worker.beta.environments.work.poll(os.environ["DROVER_ENV_A"])),
    ]:
        try:
            call()
            raise AssertionError(f"{name} was allowed")
        except (anthropic.NotFoundError, anthropic.PermissionDeniedError) as e:
            check(f"{name}: refused ({e.status_code})", e.status_code in (403, 404), e)
    try:
        bearer("sk-drover-work-" + "0" * 48).beta.sessions.retrieve(s1)
        raise AssertionError("a made-up token was accepted")
    except anthropic.AuthenticationError as e:
        check("a made-up sessions token: 401", e.status_code == 401, e)

    # An API key reads and labels items; list pages.
    retrieved = strict(BetaSelfHostedWork, c.beta.environments.work.with_raw_response.retrieve(item.id, environment_id=env_b).http_response.json())
    check("retrieve (API key): active, no secret", retrieved.state == "active" and retrieved.secret is None, retrieved)
    updated = strict(BetaSelfHostedWork, c.beta.environments.work.with_raw_response.update(
        item.id, environment_id=env_b, metadata={"rack": "7", "gone": None}).http_response.json())
    check("update patches metadata", updated.metadata == {"rack": "7"}, updated)
    page = worker.beta.environments.work.with_raw_response.list(env_b, limit=1).http_response.json()
    check("list pages (environment key)", len(page["data"]) == 1 and page["next_page"], page)
    strict(BetaSelfHostedWork, page["data"][0])

    # A stop asks the worker to end (stopping); its next heartbeat says so; a forced stop ends it.
    stopping = strict(BetaSelfHostedWork, c.beta.environments.work.with_raw_response.stop(item.id, environment_id=env_b).http_response.json())
    check("stop: stopping", stopping.state == "stopping" and stopping.stop_requested_at, stopping)
    told = strict(BetaSelfHostedWorkHeartbeatResponse, work.with_raw_response.heartbeat(
        item.id, environment_id=env_b, expected_last_heartbeat="anything").http_response.json())
    check("a heartbeat while stopping: not compared, not extended", told.state == "stopping" and not told.lease_extended, told)
    stopped = strict(BetaSelfHostedWork, work.with_raw_response.stop(item.id, environment_id=env_b, force=True).http_response.json())
    check("forced stop with the token: stopped", stopped.state == "stopped" and stopped.stopped_at, stopped)
    try:
        sessions_client.beta.sessions.retrieve(s1)
        raise AssertionError("a stopped item's token still works")
    except anthropic.AuthenticationError as e:
        check("the token died with its item: 401", e.status_code == 401, e)
    try:
        c.beta.environments.work.stop(item.id, environment_id=env_b)
        raise AssertionError("stopping a stopped item succeeded")
    except anthropic.ConflictError as e:
        check("stopping it again: 409", e.status_code == 409, e)

    # An interrupt stops the session's item (s2's: handed out, never acknowledged).
    c.beta.sessions.events.send(s2, events=[{"type": "user.interrupt"}])
    gone = strict(BetaSelfHostedWork, c.beta.environments.work.with_raw_response.retrieve(second.id, environment_id=env_b).http_response.json())
    check("an interrupt stops the session's item", gone.state == "stopped", gone)

    # A tool result for a call that is not pending is refused (400, which the SDK does not retry).
    try:
        c.beta.sessions.events.send(s2, events=[{"type": "user.tool_result", "tool_use_id": "sevt_" + "0" * 32,
                                                 "content": [{"type": "text", "text": "x"}]}])
        raise AssertionError("a result for no call was accepted")
    except anthropic.BadRequestError as e:
        check("a result for no call: 400", e.status_code == 400, e)
    print("all checks passed", flush=True)


def deadline():
    """No worker on environment C (tool_deadline_s 1): each call ends as an error the model reads."""
    c = client()
    session = c.beta.sessions.create(agent=os.environ["DROVER_AGENT"], environment_id=os.environ["DROVER_ENV_C"]).id
    c.beta.sessions.events.send(session, events=[{"type": "user.message", "content": [{"type": "text", "text": "do the work"}]}])
    events = wait_idle(c, session, timeout=60)
    results = [e for e in events if e.type == "agent.tool_result"]
    check("unanswered calls end as error results at the deadline",
          len(results) == 3 and all(r.is_error and "No worker" in r.content[0].text for r in results), results)
    check("and the turn ends", events[-1].stop_reason.type == "end_turn", events[-1])
    print("all checks passed", flush=True)


def revoked():
    try:
        bearer(os.environ["DROVER_ENV_KEY_B"]).beta.environments.work.poll(os.environ["DROVER_ENV_B"])
        raise AssertionError("a revoked key polled")
    except anthropic.AuthenticationError as e:
        check("a revoked environment key: 401", e.status_code == 401, e)
    print("all checks passed", flush=True)


if __name__ == "__main__":
    step, args = sys.argv[1], sys.argv[2:]
    if step == "setup":
        setup()
    elif step == "worker":
        asyncio.run(worker(*args))
    elif step == "serve":
        serve(int(args[0]))
    elif step == "memory":
        memory()
    elif step == "skills":
        skills()
    elif step == "start":
        start(args[0])
    elif step == "wait":
        wait(args[0])
    elif step == "refusals":
        refusals()
    elif step == "deadline":
        deadline()
    elif step == "revoked":
        revoked()
    else:
        raise SystemExit(f"unknown step {step}")
