"""Issue #26 through the pinned SDK, against three `drover api` replicas whose schedule clock runs
60 times as fast (DROVER_CLOCK), so a real second is a scheduled minute:

- a deployment scheduled every minute fires exactly once per scheduled time while the replica
  holding the scheduler lease is SIGKILLed (its successor catches up); runs are listed and
  retrieved through the SDK; a manual run; pause, update, archive and the documented refusals;
- a webhook endpoint gets every event signed: `client.beta.webhooks.unwrap` verifies each
  delivery and a tampered one fails; a receiver that is down for a while then returns gets every
  event, in order per session, none twice by id;
- a session budget priced from the operator's table ends the turn with `budget_reached`, and
  `usage.list_cost` shows the spend; a model without a price cannot be budgeted.

Every answer validates strictly against the SDK's models. Run by DroverAPITests.DeploymentTests
with DROVER_API_URLS (three), DROVER_KEY_A and DATABASE_URL.
"""
import http.server
import json
import os
import signal
import subprocess
import threading
import time

import anthropic

from checks import failures, finish, refused, strict, wait_idle
from anthropic.types.beta import BetaManagedAgentsDeployment, BetaManagedAgentsDeploymentRun, BetaManagedAgentsSession
from anthropic.types.beta.sessions import BetaManagedAgentsSessionEvent
from anthropic.types.beta.beta_webhook_event import BetaWebhookEvent

urls = os.environ["DROVER_API_URLS"].split(",")
key = os.environ["DROVER_KEY_A"]
clients = [anthropic.Anthropic(api_key=key, base_url=url, max_retries=3) for url in urls]


def sql(query):
    return subprocess.run(["psql", os.environ["DATABASE_URL"], "-Atc", query], check=True, capture_output=True, text=True).stdout.strip()


def raw(client, resource, call, *args, **kwargs):
    response = getattr(getattr(client.beta, resource).with_raw_response, call)(*args, **kwargs)
    return response.http_response.json()


# ---- A receiver on loopback that records every delivery; it can be taken down and brought back.
received = []  # (headers, body, status answered)
lock = threading.Lock()


class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["content-length"])).decode()
        with lock:
            received.append(({k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


class Server:
    def __init__(self):
        self.port = None
        self.httpd = None

    def up(self):
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", self.port or 0), Receiver)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def down(self):
        self.httpd.shutdown()
        self.httpd.server_close()


receiver = Server()
receiver.up()
c0 = clients[0]
hook = c0.post("/v1/webhooks", cast_to=object, body={
    "url": f"http://127.0.0.1:{receiver.port}/hooks", "name": "ops",
    "enabled_events": ["deployment.created", "deployment.paused", "deployment.archived", "deployment_run.started",
                       "deployment_run.succeeded", "session.status_run_started", "session.status_idled", "session.budget_reached"]})
secret = hook["signing_secret"]
if not secret.startswith("whsec_") or hook["state"] != "enabled":
    failures.append(f"webhook create: {hook}")
refused("webhook with an unknown event type", 400, lambda: c0.post("/v1/webhooks", cast_to=object, body={
    "url": "http://127.0.0.1:1/", "enabled_events": ["session.exploded"]}))
if "signing_secret" in c0.get(f"/v1/webhooks/{hook['id']}", cast_to=object):
    failures.append("the signing secret is shown again")

agent = c0.beta.agents.create(name="cron", model="claude-sonnet-4-5", tools=[{"type": "agent_toolset_20260401"}])
env = c0.beta.environments.create(name="cron")

# ---- Refusals: the schedule is checked when it is given.
for expression, zone in [("61 * * * *", "UTC"), ("* * * *", "UTC"), ("@daily", "UTC"), ("0 0 30 2 *", "UTC"), ("* * * * *", "Mars/Base")]:
    refused(f"schedule {expression} {zone}", 400, lambda: c0.beta.deployments.create(
        name="bad", agent=agent.id, environment_id=env.id, schedule={"type": "cron", "expression": expression, "timezone": zone},
        initial_events=[{"type": "user.message", "content": [{"type": "text", "text": "x"}]}]))
refused("no initial events", 400, lambda: c0.beta.deployments.create(name="bad", agent=agent.id, environment_id=env.id, initial_events=[]))
refused("another org's agent id", 404, lambda: c0.beta.deployments.create(
    name="bad", agent="agent_nope", environment_id=env.id, initial_events=[{"type": "user.message", "content": [{"type": "text", "text": "x"}]}]))

# ---- Every minute, three replicas, the lease holder SIGKILLed half way.
created = raw(c0, "deployments", "create", name="every minute", agent=agent.id, environment_id=env.id,
              description="says hello", metadata={"team": "ops"},
              schedule={"type": "cron", "expression": "* * * * *", "timezone": "Europe/London"},
              initial_events=[{"type": "user.message", "content": [{"type": "text", "text": "hello from the schedule"}]}])
strict("deployments.create", BetaManagedAgentsDeployment, created)
deployment = created["id"]
if len(created["schedule"]["upcoming_runs_at"]) != 5 or created["status"] != "active" or created["agent"]["version"] != agent.version:
    failures.append(f"deployments.create: {created}")


def runs(client, **kwargs):
    page = client.beta.deployment_runs.with_raw_response.list(deployment_id=deployment, limit=1000, **kwargs).http_response.json()
    for run in page["data"]:
        strict("deployment_runs.list item", BetaManagedAgentsDeploymentRun, run)
    return page["data"]


deadline = time.time() + 30
while len(sql(f"SELECT id FROM drover.deployment_runs WHERE deployment_id = '{deployment}'").split()) < 5:
    if time.time() > deadline:
        raise AssertionError("no five scheduled runs within 30 s")
    time.sleep(0.2)
holder = sql("SELECT holder FROM drover.scheduler_leases WHERE name = 'deployments'")
victim = int(holder.split("_")[-2])
# Events written from here on are delivered by processes that do not die: each attempt arrives
# once. (One in flight at the kill may arrive again, with its id: delivery is at least once.)
os.kill(victim, signal.SIGKILL)
# Read after the kill has landed: the victim could have been delivering any event written before
# it died, even one written between a read before the kill and the kill itself.
time.sleep(0.2)
seq_at_kill = int(sql("SELECT coalesce(max(seq), 0) FROM drover.webhook_events"))
print("killed the scheduler lease holder", victim, flush=True)
survivors = [c for c, pid in zip(clients, os.environ["DROVER_API_PIDS"].split(",")) if int(pid) != victim]
time.sleep(8)
raw(survivors[0], "deployments", "pause", deployment)
new_holder = sql("SELECT holder FROM drover.scheduler_leases WHERE name = 'deployments'")
if new_holder == holder:
    failures.append("the lease did not move after its holder was killed")
listed = runs(survivors[0], trigger_type="schedule")
times = sorted(run["trigger_context"]["scheduled_at"] for run in listed)
minutes = [int(anthropic._utils.parse_datetime(t).timestamp()) // 60 for t in times]  # type: ignore[attr-defined]
if len(set(minutes)) != len(minutes):
    failures.append(f"a scheduled time fired twice: {times}")
if minutes != list(range(minutes[0], minutes[0] + len(minutes))):
    failures.append(f"a scheduled time was lost: {times}")
if len(minutes) < 10:
    failures.append(f"only {len(minutes)} scheduled runs in 8 s past the kill")
if any(run["session_id"] is None or run["error"] is not None for run in listed):
    failures.append("a scheduled run has no session")
print("scheduled runs", len(minutes), "from", times[0], "to", times[-1], flush=True)
one = raw(survivors[1], "deployment_runs", "retrieve", listed[0]["id"])
strict("deployment_runs.retrieve", BetaManagedAgentsDeploymentRun, one)
session = raw(survivors[1], "sessions", "retrieve", one["session_id"])
strict("sessions.retrieve (a run's)", BetaManagedAgentsSession, session)
if session["deployment_id"] != deployment:
    failures.append(f"the run's session does not name its deployment: {session['deployment_id']}")
sessions = survivors[0].beta.sessions.list(deployment_id=deployment, limit=100)
if len(sessions.data) < len(minutes):
    failures.append(f"sessions.list(deployment_id) found {len(sessions.data)} of {len(minutes)}")

# Paused: times pass without runs; a manual run still works.
paused = raw(survivors[0], "deployments", "retrieve", deployment)
strict("deployments.retrieve (paused)", BetaManagedAgentsDeployment, paused)
if paused["status"] != "paused" or paused["paused_reason"] != {"type": "manual"}:
    failures.append(f"pause: {paused['status']} {paused['paused_reason']}")
count = len(runs(survivors[0]))
time.sleep(3)
if len(runs(survivors[0])) != count:
    failures.append("a paused deployment fired")

# ---- The receiver goes down; two manual runs happen; it comes back and gets everything, in order.
receiver.down()
manual = [raw(survivors[0], "deployments", "run", deployment) for _ in range(2)]
for run in manual:
    strict("deployments.run", BetaManagedAgentsDeploymentRun, run)
    if run["trigger_context"] != {"type": "manual"} or run["session_id"] is None:
        failures.append(f"deployments.run: {run}")
for run in manual:
    wait_idle(survivors[0].beta, run["session_id"])
# Down until a delivery has failed against it (so the return is a retry, not a first try).
deadline = time.time() + 30
while not sql(f"SELECT 1 FROM drover.webhook_deliveries WHERE endpoint_id = '{hook['id']}' AND status = 'pending' AND attempts > 0 LIMIT 1"):
    if time.time() > deadline:
        raise AssertionError("no delivery was attempted while the receiver was down")
    time.sleep(0.1)
receiver.up()
updated = raw(survivors[1], "deployments", "update", deployment, name="hourly", metadata={"team": None, "owner": "ana"},
              schedule={"type": "cron", "expression": "0 * * * *", "timezone": "America/New_York"})
strict("deployments.update", BetaManagedAgentsDeployment, updated)
if updated["name"] != "hourly" or updated["metadata"] != {"owner": "ana"} or updated["schedule"]["timezone"] != "America/New_York":
    failures.append(f"deployments.update: {updated}")
# An endpoint at a private address the operator did not open: its deliveries are refused, as egress is.
private = survivors[1].post("/v1/webhooks", cast_to=object, body={"url": "http://10.255.255.1:9/", "enabled_events": ["deployment.archived"]})
archived = raw(survivors[1], "deployments", "archive", deployment)
strict("deployments.archive", BetaManagedAgentsDeployment, archived)
if archived["archived_at"] is None or archived["schedule"]["upcoming_runs_at"] != []:
    failures.append(f"archive: {archived['archived_at']} {archived['schedule']}")
refused("run an archived deployment", 400, lambda: survivors[0].beta.deployments.run(deployment))
listing = survivors[0].beta.deployments.with_raw_response.list(include_archived=True).http_response.json()
for item in listing["data"]:
    strict("deployments.list item", BetaManagedAgentsDeployment, item)
if deployment in [d["id"] for d in survivors[0].beta.deployments.list().data]:
    failures.append("an archived deployment is listed without include_archived")

# ---- A session budget: 1 cent at $100 per million input tokens stops after the first call.
# (The model's price, $100 per million input tokens, was set by `drover prices set`.)
unpriced = survivors[0].beta.agents.create(name="unpriced", model="claude-unpriced-1")
refused("a budget for a model without a price", 400, lambda: survivors[0].beta.sessions.create(
    agent=unpriced.id, environment_id=env.id, budget={"type": "limit", "max_list_cost": {"amount": "100", "currency": "USD"}}))
refused("a budget in another currency", 400, lambda: survivors[0].beta.sessions.create(
    agent=agent.id, environment_id=env.id, budget={"type": "limit", "max_list_cost": {"amount": "100", "currency": "EUR"}}))
capped = survivors[0].beta.sessions.create(
    agent=agent.id, environment_id=env.id, budget={"type": "limit", "max_list_cost": {"amount": "1", "currency": "USD"}})
survivors[0].beta.sessions.events.send(capped.id, events=[{"type": "user.message", "content": [{"type": "text", "text": "spend"}]}])
wait_idle(survivors[0].beta, capped.id)
events = survivors[0].beta.sessions.events.list(capped.id, limit=100).data
idle = [e for e in events if e.type == "session.status_idle"][-1]
if idle.stop_reason.type != "budget_reached":
    failures.append(f"the capped session stopped with {idle.stop_reason.type}")
after = raw(survivors[0], "sessions", "retrieve", capped.id)
strict("sessions.retrieve (budget)", BetaManagedAgentsSession, after)
cost = (after.get("usage") or {}).get("list_cost")
if not cost or int(cost["amount"]) < 1 or after["budget"]["max_list_cost"]["amount"] != "1":
    failures.append(f"usage.list_cost / budget: {after.get('usage')} {after.get('budget')}")

# ---- sessions.update(budget=…), as the SDK documents it: raised above the spend (the turn then
# goes on), never lowered to it, removed with null, never re-added, never added to a session
# created without one; each change a session.updated event carrying the new budget. Each turn of
# a budgeted session ends with a session.usage snapshot of its tokens, spend and budget.
beta = survivors[0].beta
spent = int(cost["amount"]) if cost else 0


def limit(cents):
    return {"type": "limit", "max_list_cost": {"amount": str(cents), "currency": "USD"}}


def refused_because(name, reason, call):
    try:
        call()
        failures.append(f"{name}: accepted")
    except anthropic.BadRequestError as e:
        if reason not in str(e.message):
            failures.append(f"{name}: {e.message}")


refused_because("a budget lowered to the spend", "budget_not_raised", lambda: beta.sessions.update(capped.id, budget=limit(spent)))
raised = raw(survivors[0], "sessions", "update", capped.id, budget=limit(spent + 500))
strict("sessions.update (budget raised)", BetaManagedAgentsSession, raised)
if raised["budget"] != limit(spent + 500):
    failures.append(f"the raised budget: {raised['budget']}")
beta.sessions.events.send(capped.id, events=[{"type": "user.message", "content": [{"type": "text", "text": "go on"}]}])
wait_idle(beta, capped.id)
idle = [e for e in beta.sessions.events.list(capped.id, limit=100).data if e.type == "session.status_idle"][-1]
if idle.stop_reason.type != "end_turn":
    failures.append(f"after the raise the turn stopped with {idle.stop_reason.type}")
removed = raw(survivors[0], "sessions", "update", capped.id, budget=None)
strict("sessions.update (budget removed)", BetaManagedAgentsSession, removed)
refused_because("a removed budget re-added", "budget_create_only", lambda: beta.sessions.update(capped.id, budget=limit(10_000)))
unbudgeted = beta.sessions.create(agent=agent.id, environment_id=env.id)
refused_because("a budget added after creation", "budget_create_only", lambda: beta.sessions.update(unbudgeted.id, budget=limit(100)))
updates = [e for e in beta.sessions.events.with_raw_response.list(capped.id, limit=100).http_response.json()["data"]
           if e["type"] == "session.updated"]
for event in updates:
    strict("events.list (session.updated budget)", BetaManagedAgentsSessionEvent, event)
usages = [e for e in beta.sessions.events.with_raw_response.list(capped.id, limit=100).http_response.json()["data"]
          if e["type"] == "session.usage"]
for event in usages:
    strict("events.list (session.usage)", BetaManagedAgentsSessionEvent, event)
if [e["budget"] for e in usages] != [limit(1), limit(spent + 500)] or int(usages[0]["usage"]["list_cost"]["amount"]) != spent \
        or usages[1]["usage"]["input_tokens"] <= usages[0]["usage"]["input_tokens"]:
    failures.append(f"each budgeted turn ends with a session.usage snapshot: {usages}")
if [e.get("budget", "absent") for e in updates] != [limit(spent + 500), None] or removed["budget"] is not None:
    failures.append(f"the budget's session.updated events: {updates}")
else:
    print("ok sessions.update raises and removes a budget, each a session.updated event", flush=True)

# ---- Every event of the endpoint arrives, verified, in order per object, none twice.
expected = sql(f"SELECT string_agg(e.id || ' ' || e.object_id || ' ' || e.type || ' ' || e.seq, ',' ORDER BY e.seq) FROM drover.webhook_events e "
               f"JOIN drover.webhook_deliveries d ON d.event_seq = e.seq WHERE d.endpoint_id = '{hook['id']}'").split(",")
deadline = time.time() + 30
while True:
    with lock:
        got = [json.loads(body)["id"] for _, body in received]
    if set(line.split()[0] for line in expected) <= set(got) or time.time() > deadline:
        break
    time.sleep(0.2)
missing = [line for line in expected if line.split()[0] not in got]
if missing:
    failures.append(f"{len(missing)} of {len(expected)} events never arrived: {missing[:3]}")
with lock:
    deliveries = list(received)
ids = [json.loads(body)["id"] for _, body in deliveries]
seqs = {line.split()[0]: int(line.split()[3]) for line in expected}
twice = {i for i in ids if ids.count(i) > 1}
# Delivery is at least once: an attempt the receiver answered after the deliverer's timeout is
# recorded as failed and sent again, with its id. What must never happen after the kill is one
# attempt arriving twice (two deliverers at once): such an event's row counts one attempt.
attempts = {line.split()[0]: int(line.split()[1]) for line in sql(
    f"SELECT string_agg(e.id || ' ' || d.attempts, ',') FROM drover.webhook_deliveries d JOIN drover.webhook_events e ON e.seq = d.event_seq "
    f"WHERE d.endpoint_id = '{hook['id']}'").split(",")}
doubled = sorted(i for i in twice if seqs.get(i, 0) > seq_at_kill and attempts.get(i, 0) < ids.count(i))
if doubled:
    failures.append(f"an event written after the kill arrived more often than it was sent: {doubled[:3]} {[attempts.get(i) for i in doubled[:3]]}")
if any(len({body for _, body in deliveries if json.loads(body)["id"] == i}) != 1 for i in twice):
    failures.append("an event sent again was not the same event")
order = {line.split()[0]: n for n, line in enumerate(expected)}
by_object = {}
for _, body in deliveries:
    event = json.loads(body)
    by_object.setdefault(event["data"]["id"], []).append(order.get(event["id"], -1))
for obj, seen in by_object.items():
    if seen != sorted(seen):
        failures.append(f"events of {obj} arrived out of order")
types = {json.loads(body)["data"]["type"] for _, body in deliveries}
for wanted in ["deployment.created", "deployment.paused", "deployment.archived", "deployment_run.started", "deployment_run.succeeded",
               "session.status_run_started", "session.status_idled", "session.budget_reached"]:
    if wanted not in types:
        failures.append(f"no {wanted} delivered (got {sorted(types)})")
for headers, body in deliveries:
    try:
        event = c0.beta.webhooks.unwrap(body, headers=headers, key=secret)
        strict("webhook event", BetaWebhookEvent, json.loads(body))
        if event.data.organization_id is None:
            failures.append("a webhook event without its organisation")
    except Exception as error:  # noqa: BLE001
        failures.append(f"unwrap refused a delivery: {error}")
        break
tampered = deliveries[0][1].replace('"event"', '"evenT"')
try:
    c0.beta.webhooks.unwrap(tampered, headers=deliveries[0][0], key=secret)
    failures.append("a tampered delivery was verified")
except Exception:  # noqa: BLE001
    pass
log = survivors[0].get(f"/v1/webhooks/{hook['id']}/deliveries?limit=1000", cast_to=object)
retried = [d for d in log["data"] if d["attempts"] > 1]
if not retried or any(d["status"] != "delivered" for d in log["data"]):
    failures.append(f"delivery log: {len(retried)} retried; statuses {sorted({d['status'] for d in log['data']})}")
deadline = time.time() + 10
while True:
    attempts = survivors[0].get(f"/v1/webhooks/{private['id']}/deliveries", cast_to=object)["data"]
    if (attempts and attempts[-1]["attempts"] > 0) or time.time() > deadline:
        break
    time.sleep(0.2)
if not attempts or attempts[-1]["status"] != "pending" or "refused" not in (attempts[-1]["last_error"] or ""):
    failures.append(f"a private address was not refused: {attempts}")
print("webhook deliveries", len(deliveries), "of", len(expected), "events;", len(retried), "retried", flush=True)
finish("deployments and webhooks through the SDK")
