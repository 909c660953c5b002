"""Issue #25, outcomes, through the pinned SDK against the scripted model (which plays the agent
and the grader): an outcome that needs two revisions and then passes, one that exhausts
max_iterations (then one acknowledgement turn), one interrupted while the grader works, and one
with a file rubric. Every event and the sessions' outcome_evaluations validate strictly. Run by
DroverAPITests.OutcomeTests with DROVER_API_URL and DROVER_KEY.
"""
import os
import time

import anthropic
from anthropic.types.beta import BetaManagedAgentsSession
from anthropic.types.beta.sessions import BetaManagedAgentsSessionEvent

from checks import failures, finish, refused, strict, wait_idle

client = anthropic.Anthropic(api_key=os.environ["DROVER_KEY"], base_url=os.environ["DROVER_API_URL"], max_retries=0)
beta = client.beta
agent = beta.agents.create(name="writer", model="claude-sonnet-4-5")
environment = beta.environments.create(name="outcomes")


def outcome(description, rubric, **extra):
    session = beta.sessions.create(agent=agent.id, environment_id=environment.id)
    beta.sessions.events.send(session.id, events=[{"type": "user.define_outcome", "description": description, "rubric": rubric, **extra}])
    return session


def events_of(session_id):
    raw = beta.sessions.events.with_raw_response.list(session_id, limit=100).http_response.json()["data"]
    for event in raw:
        strict(f"events.list ({event['type']})", BetaManagedAgentsSessionEvent, event)
    return raw


def verdicts(events):
    return [(e["iteration"], e["result"]) for e in events if e["type"] == "span.outcome_evaluation_end"]


def session_view(session_id):
    answer = beta.sessions.with_raw_response.retrieve(session_id).http_response.json()
    strict("sessions.retrieve (outcome_evaluations)", BetaManagedAgentsSession, answer)
    return answer["outcome_evaluations"]


# Each evaluation's end is a session.outcome_evaluation_ended webhook (the endpoint is a closed
# loopback port: what is counted is what was queued for it).
hook = client.post("/v1/webhooks", cast_to=object, body={"url": "http://127.0.0.1:9/hook", "enabled_events": ["session.outcome_evaluation_ended"]})

refused("an outcome without a rubric", 400, lambda: beta.sessions.events.send(
    beta.sessions.create(agent=agent.id, environment_id=environment.id).id,
    events=[{"type": "user.define_outcome", "description": "x"}]))
refused("max_iterations above 20", 400, lambda: beta.sessions.events.send(
    beta.sessions.create(agent=agent.id, environment_id=environment.id).id,
    events=[{"type": "user.define_outcome", "description": "x", "rubric": {"type": "text", "content": "y"}, "max_iterations": 21}]))

# Two revisions, then satisfied.
passes = outcome("Write the report (revise twice)", {"type": "text", "content": "RUBRIC-PASS-ON-THIRD"})
wait_idle(beta, passes.id, timeout=60)
events = events_of(passes.id)
defined = [e for e in events if e["type"] == "user.define_outcome"][0]
if not defined["outcome_id"].startswith("outc_") or defined["max_iterations"] != 3:
    failures.append(f"the echoed define_outcome: {defined}")
if verdicts(events) != [(0, "needs_revision"), (1, "needs_revision"), (2, "satisfied")]:
    failures.append(f"two revisions then satisfied: {verdicts(events)}")
ends = [e for e in events if e["type"] == "span.outcome_evaluation_end"]
starts = {e["id"]: e for e in events if e["type"] == "span.outcome_evaluation_start"}
if any(end["outcome_evaluation_start_id"] not in starts or end["outcome_id"] != defined["outcome_id"] or end["usage"]["input_tokens"] <= 0
       for end in ends):
    failures.append(f"each end names its start, the outcome and the grader's usage: {ends}")
messages = [e["content"][0]["text"] for e in events if e["type"] == "agent.message"]
if messages != ["Draft one.", "Draft two.", "Draft three: DONE."]:
    failures.append(f"the agent's attempts: {messages}")
idle = [e for e in events if e["type"] == "session.status_idle"]
if len(idle) != 1 or idle[0]["stop_reason"]["type"] != "end_turn":
    failures.append(f"one turn, ended: {idle}")
view = session_view(passes.id)
if [(o["outcome_id"], o["result"], o["iteration"]) for o in view] != [(defined["outcome_id"], "satisfied", 2)] or not view[0]["completed_at"]:
    failures.append(f"outcome_evaluations: {view}")
else:
    print("ok two revisions, then satisfied", flush=True)

# Never satisfied: max_iterations 2, then one acknowledgement turn.
exhausted = outcome("Write the poem (never good enough)", {"type": "text", "content": "RUBRIC-NEVER"}, max_iterations=2)
wait_idle(beta, exhausted.id, timeout=60)
events = events_of(exhausted.id)
messages = [e["content"][0]["text"] for e in events if e["type"] == "agent.message"]
if verdicts(events) != [(0, "needs_revision"), (1, "max_iterations_reached")] or messages[-1] != "Understood: no more revisions.":
    failures.append(f"max_iterations: {verdicts(events)} {messages}")
elif session_view(exhausted.id)[0]["result"] != "max_iterations_reached":
    failures.append(f"outcome_evaluations after max_iterations: {session_view(exhausted.id)}")
else:
    print("ok max_iterations reached, then acknowledged", flush=True)

# Interrupted while the grader works (the grader is slow).
interrupted = outcome("Write the summary (slow grader)", {"type": "text", "content": "RUBRIC-SLOW"})
deadline = time.time() + 30
while time.time() < deadline and not any(e.type == "span.outcome_evaluation_start" for e in beta.sessions.events.list(interrupted.id)):
    time.sleep(0.1)
if session_view(interrupted.id)[0]["result"] != "evaluating":
    failures.append(f"while the grader works: {session_view(interrupted.id)}")
beta.sessions.events.send(interrupted.id, events=[{"type": "user.interrupt"}])
wait_idle(beta, interrupted.id, timeout=30)
events = events_of(interrupted.id)
if verdicts(events) != [(0, "interrupted")] or session_view(interrupted.id)[0]["result"] != "interrupted":
    failures.append(f"interrupted while grading: {verdicts(events)}")
else:
    print("ok an interrupt while grading ends it interrupted", flush=True)

# A file rubric is read as text.
rubric = beta.files.upload(file=("rubric.md", b"RUBRIC-PASS-ON-THIRD", "text/markdown"))
from_file = outcome("Write the report (revise twice)", {"type": "file", "file_id": rubric.id}, max_iterations=5)
wait_idle(beta, from_file.id, timeout=60)
events = events_of(from_file.id)
defined = [e for e in events if e["type"] == "user.define_outcome"][0]
if defined["rubric"] != {"type": "text", "content": "RUBRIC-PASS-ON-THIRD"} or verdicts(events)[-1] != (2, "satisfied"):
    failures.append(f"a file rubric: {defined['rubric']} {verdicts(events)}")

log = client.get(f"/v1/webhooks/{hook['id']}/deliveries?limit=100", cast_to=object)["data"]
ended = [d for d in log if d["event_type"] == "session.outcome_evaluation_ended"]
if len(ended) != 9:
    failures.append(f"session.outcome_evaluation_ended deliveries: {len(ended)} for 9 evaluations: {log[:2]}")

finish("outcomes")
