"""Issue #23, item 2, through the pinned SDK: an environment's `config.packages` (pip, apt and
npm, from the loopback registry stand-in Tests/sdk/package_index.py, which the pool names as its
mirrors) are installed once and are there in every session of the environment; the second
session installs nothing (the registry sees no second request) and its first call is timed
against the first session's; a package that does not exist ends the turn with a readable
session.error; two sessions that need a new layer at once share one install; `limited` networking without allow_package_managers is refused, as the SDK
documents. Run by DroverAPITests.PackagesTests with DROVER_API_URL, DROVER_KEY and INDEX_URL.
"""
import json
import os
import urllib.request

import anthropic
from anthropic.types.beta import BetaEnvironment
from anthropic.types.beta.sessions import BetaManagedAgentsSessionEvent

from checks import failures, finish, refused, strict, wait_idle

client = anthropic.Anthropic(api_key=os.environ["DROVER_KEY"], base_url=os.environ["DROVER_API_URL"], max_retries=0)
beta = client.beta
index = os.environ["INDEX_URL"]
packages = {"type": "packages", "pip": ["drover-demo"], "apt": ["drover-hello"], "npm": ["drover-left-pad"]}


def counts():
    with urllib.request.urlopen(index + "/_counts") as answer:
        return json.load(answer)


def run(environment_id):
    """One session's turn; its events (validated strictly) and the first call's seconds, from the
    tool use to its result as the log stamps them."""
    session = beta.sessions.create(agent=agent.id, environment_id=environment_id)
    beta.sessions.events.send(session.id, events=[{"type": "user.message", "content": [{"type": "text", "text": "use the packages"}]}])
    wait_idle(beta, session.id, timeout=300)
    events = beta.sessions.events.with_raw_response.list(session.id).http_response.json()["data"]
    for event in events:
        strict(f"events.list ({event['type']})", BetaManagedAgentsSessionEvent, event)
    typed = list(beta.sessions.events.list(session.id))
    uses = [e for e in typed if e.type == "agent.tool_use"]
    results = [e for e in typed if e.type == "agent.tool_result"]
    seconds = (results[0].processed_at - uses[0].processed_at).total_seconds() if uses and results else None
    return typed, seconds


agent = beta.agents.create(name="packages", model="claude-sonnet-4-5", tools=[{"type": "agent_toolset_20260401"}])

refused("limited networking without allow_package_managers", 400, lambda: beta.environments.create(
    name="closed", config={"type": "cloud", "networking": {"type": "limited", "allowed_hosts": []}, "packages": packages}))
refused("a package name that is an option", 400, lambda: beta.environments.create(
    name="odd", config={"type": "cloud", "packages": {"type": "packages", "pip": ["--index-url=http://elsewhere"]}}))

environment = beta.environments.with_raw_response.create(name="with packages", config={
    "type": "cloud", "networking": {"type": "limited", "allowed_hosts": [], "allow_package_managers": True}, "packages": packages,
}).http_response.json()
strict("environments.create (packages)", BetaEnvironment, environment)
if environment["config"]["packages"]["pip"] != ["drover-demo"] or environment["config"]["packages"]["apt"] != ["drover-hello"]:
    failures.append(f"the packages as stored: {environment['config']['packages']}")

before = counts()
first, first_seconds = run(environment["id"])
after_first = counts()
second, second_seconds = run(environment["id"])
after_second = counts()

expected = "hello from a wheel\nhello from a deb\n**x\n"
for name, events in (("first", first), ("second", second)):
    results = [e for e in events if e.type == "agent.tool_result"]
    text = results[0].content[0].text if results and results[0].content else None
    if text != expected or results[0].is_error:
        failures.append(f"the {name} session's call: {text!r} {[e.type for e in events]}")
    else:
        print(f"ok the {name} session imports the wheel, runs the deb and requires the npm package", flush=True)
fetched = {path: n - before.get(path, 0) for path, n in after_first.items() if n != before.get(path, 0)}
if not any(path.startswith("/files/") for path in fetched) or not any(path.endswith(".deb") for path in fetched) \
        or not any(path.endswith(".tgz") for path in fetched):
    failures.append(f"the first session's install did not fetch every package: {fetched}")
if after_second != after_first:
    failures.append(f"the second session installed again: {after_first} then {after_second}")
else:
    print("ok the second session installed nothing", flush=True)
print(f"measured: first call {first_seconds:.3f} s with the install, {second_seconds:.3f} s without", flush=True)

# Two sessions of a new package set at once: one install, which both wait for.
import threading
pip_only = beta.environments.create(name="pip only", config={"type": "cloud", "packages": {"type": "packages", "pip": ["drover-demo"]}})
before = counts()
outcomes = []
threads = [threading.Thread(target=lambda: outcomes.append(run(pip_only.id))) for _ in range(2)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
wheels = counts().get("/files/drover_demo-1.0-py3-none-any.whl", 0) - before.get("/files/drover_demo-1.0-py3-none-any.whl", 0)
if wheels != 1 or len(outcomes) != 2:
    failures.append(f"two sessions at once fetched the wheel {wheels} times")
else:
    print("ok two sessions at once share one install", flush=True)

missing = beta.environments.create(name="missing package", config={"type": "cloud", "packages": {"type": "packages", "pip": ["no-such-package-drover"]}})
events, _ = run(missing.id)
errors = [e for e in events if e.type == "session.error"]
if len(errors) != 1 or errors[0].error.type != "unknown_error" or "no-such-package-drover" not in errors[0].error.message \
        or "No matching distribution" not in errors[0].error.message:
    failures.append(f"a missing package: {[(e.type, getattr(e, 'error', None)) for e in events]}")
else:
    print("ok a missing package is a session.error in pip's words:", errors[0].error.message.splitlines()[-1], flush=True)
results = [e for e in events if e.type == "agent.tool_result"]
if len(results) != 1 or not results[0].is_error:
    failures.append(f"the call of the failed environment is answered as an error: {results}")

finish("environment packages")
