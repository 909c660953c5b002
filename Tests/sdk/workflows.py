"""Issue #25, workflow runs, through the pinned SDK against the scripted model: an agent whose
`multiagent.workflows` names a researcher starts a run of two phases (the researcher and an
inline helper at once, then the researcher again, given their replies); the run's events, its
threads (each naming the run) and the coordinator's reading of its end, all validated strictly.
Then a plan the server refuses (`program_error`, no run), a run stopped while its thread works
(the thread is interrupted), and a fourth run while three are open (`max_workflow_runs_error`). Run by DroverAPITests.OutcomeTests.
"""
import os
import time

import anthropic
from anthropic.types.beta.sessions import (BetaManagedAgentsSessionEvent, BetaManagedAgentsSessionThread,
                                           BetaManagedAgentsStreamSessionEvents)

from checks import failures, finish, read_stream, strict, wait_idle

client = anthropic.Anthropic(api_key=os.environ["DROVER_KEY"], base_url=os.environ["DROVER_API_URL"], max_retries=0)
beta = client.beta


def run(agent_id, text, timeout=90):
    """A session of `agent_id` runs a turn on `text`; its id and events (each validated strictly)."""
    session = beta.sessions.create(agent=agent_id, environment_id=environment.id)
    beta.sessions.events.send(session.id, events=[{"type": "user.message", "content": [{"type": "text", "text": text}]}])
    wait_idle(beta, session.id, timeout=timeout)
    events = beta.sessions.events.with_raw_response.list(session.id, limit=100).http_response.json()["data"]
    for event in events:
        strict(f"events.list ({event['type']})", BetaManagedAgentsSessionEvent, event)
    return session, events


def of(events, kind):
    return [e for e in events if e["type"] == kind]


researcher = beta.agents.create(name="researcher", model="claude-sonnet-4-5")
lead = beta.agents.create(name="lead", model="claude-sonnet-4-5", multiagent={
    "type": "multiagent_20261001", "subagents": {"type": "disabled"},
    "workflows": {"type": "enabled", "predefined_agents": [researcher.id]}})
environment = beta.environments.create(name="workflows")

# A run of two phases.
session, events = run(lead.id, "run the survey workflow")
created = of(events, "workflow_run.created")
run_id = created[0]["workflow_run_id"] if len(created) == 1 else None
if not run_id or [p["name"] for p in created[0]["phases"]] != ["gather", "write"] or created[0]["name"] != "survey":
    failures.append(f"workflow_run.created: {created}")
mine = [e for e in events if e["type"].startswith("workflow_run.")]
if any(e["workflow_run_id"] != run_id for e in mine):
    failures.append(f"every workflow_run event names the run: {mine}")
kinds = [e["type"] for e in mine]
if kinds[:3] != ["workflow_run.created", "workflow_run.status_running", "workflow_run.phase_started"] \
        or kinds.count("workflow_run.phase_started") != 2 or kinds.count("workflow_run.phase_ended") != 2 \
        or kinds[-1] != "workflow_run.status_ended" or mine[-1]["result"] != {"type": "completed"}:
    failures.append(f"the run's events: {kinds}")
starts = {e["id"]: e["workflow_run_phase_id"] for e in of(events, "workflow_run.phase_started")}
ends = of(events, "workflow_run.phase_ended")
if sorted(starts) != sorted(e["phase_started_id"] for e in ends) or any(starts[e["phase_started_id"]] != e["workflow_run_phase_id"] for e in ends):
    failures.append(f"each phase_ended names its start: {starts} {ends}")
threads_created = of(events, "session.thread_created")
if len(threads_created) != 3 or any(e["workflow_run_id"] != run_id for e in threads_created):
    failures.append(f"the run's threads: {threads_created}")
messages = [e["content"][0]["text"] for e in of(events, "agent.message")]
if messages != ["The run is under way.", "The survey is complete."] or len(of(events, "session.status_idle")) != 1:
    failures.append(f"the coordinator waited for the run and read its end: {messages}")
else:
    print("ok a workflow run went phase by phase", flush=True)

threads = beta.sessions.threads.with_raw_response.list(session.id).http_response.json()["data"]
for thread in threads:
    strict("threads.list (workflow)", BetaManagedAgentsSessionThread, thread)
if sorted((t["agent"]["name"], t["workflow_run_id"], t["status"]) for t in threads) != \
        [("helper", run_id, "idle"), ("researcher", run_id, "idle"), ("researcher", run_id, "idle")]:
    failures.append(f"threads.list: {[(t['agent']['name'], t['workflow_run_id'], t['status']) for t in threads]}")
writer = next((e["session_thread_id"] for e in threads_created if e["agent_name"] == "researcher"
               and e["id"] == threads_created[-1]["id"]), None)
if writer:
    thread_events = beta.sessions.threads.events.with_raw_response.list(writer, session_id=session.id).http_response.json()["data"]
    task = thread_events[0]["content"][0]["text"] if thread_events and thread_events[0]["type"] == "user.message" else ""
    results = [str(e["content"]) for e in of(thread_events, "agent.tool_result")]
    if "A gathered." not in task or "B gathered." not in task:
        failures.append(f"the second phase's task carries the first's replies: {task!r}")
    elif len(results) != 1 or "gathered-A" not in results[0]:
        failures.append(f"the writer read what a thread of the first phase wrote in the session's sandbox: {results}")
    else:
        print("ok the second phase was given the first's replies and sandbox", flush=True)

# The session's stream from its first event, read raw and validated as the SDK's stream events.
streamed = []
with beta.sessions.events.with_streaming_response.stream(session.id, extra_headers={"Last-Event-ID": events[0]["id"]}) as response:
    read_stream(response, streamed)
for event in streamed:
    strict(f"events.stream ({event['type']})", BetaManagedAgentsStreamSessionEvents, event)
if [e["id"] for e in streamed] != [e["id"] for e in events[1:]]:
    failures.append(f"the stream after the first event: {[e['type'] for e in streamed]}")

# A plan the server refuses: workflow_run.error (program_error, no run) and an error result.
bad, events = run(lead.id, "run a bad workflow")
errors = of(events, "workflow_run.error")
results = of(events, "agent.tool_result")
if len(errors) != 1 or errors[0]["workflow_run_id"] is not None or errors[0]["error"]["type"] != "program_error" \
        or of(events, "workflow_run.created") or not results or not results[0]["is_error"]:
    failures.append(f"a refused plan: {errors} {results}")
else:
    print("ok a refused plan is a program_error", flush=True)

# A run stopped while its thread works: the thread is interrupted, the run ends `stopped`.
began = time.time()
stopped, events = run(lead.id, "run a long workflow", timeout=25)
ended = of(events, "workflow_run.status_ended")
listed = beta.sessions.threads.with_raw_response.list(stopped.id).http_response.json()["data"]
interrupts = []
for thread in listed:
    interrupts += of(beta.sessions.threads.events.with_raw_response.list(thread["id"], session_id=stopped.id).http_response.json()["data"],
                     "user.interrupt")
if len(ended) != 1 or ended[0]["result"] != {"type": "stopped"} or len(listed) != 1 or listed[0]["status"] != "idle" \
        or len(interrupts) != 1 or time.time() - began > 25:
    failures.append(f"a stopped run: {ended} {[(t['id'], t['status']) for t in listed]} {interrupts}")
else:
    print("ok a stopped run interrupted its thread", flush=True)

# Three runs open: a fourth is refused (max_workflow_runs_error, no run); the three are stopped.
many, events = run(lead.id, "run too many workflows", timeout=25)
errors = of(events, "workflow_run.error")
ended = of(events, "workflow_run.status_ended")
if len(of(events, "workflow_run.created")) != 3 or [e["error"]["type"] for e in errors] != ["max_workflow_runs_error"] \
        or errors[0]["workflow_run_id"] is not None or sorted(e["result"]["type"] for e in ended) != ["stopped"] * 3:
    failures.append(f"a fourth open run: {errors} {ended}")
else:
    print("ok a fourth open run is refused", flush=True)

finish("workflow runs")
