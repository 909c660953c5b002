"""Issue #23, item 3, through the pinned SDK: a file uploaded with files.upload is mounted
read-only in the session's sandbox at its mount_path; what the agent leaves in
/mnt/session/outputs is listed as the session's files after the turn and downloads byte for
byte; sessions.resources.add and .delete take effect at the next wake. Run by
DroverAPITests.SDKTests with DROVER_API_URL and DROVER_KEY_A.
"""
import json
import os

import anthropic

from checks import failures, finish, strict, wait_idle
from anthropic.types.beta.sessions import BetaManagedAgentsFileResource, BetaManagedAgentsDeleteSessionResource

client = anthropic.Anthropic(api_key=os.environ["DROVER_KEY_A"], base_url=os.environ["DROVER_API_URL"], max_retries=0)
beta = client.beta
def turn(session_id, text):
    beta.sessions.events.send(session_id, events=[{"type": "user.message", "content": [{"type": "text", "text": text}]}])
    wait_idle(beta, session_id)
    return [e for e in beta.sessions.events.list(session_id) if e.type == "agent.tool_result"][-1]


content = bytes(range(256)) * 40 + b"\x00end"
upload = beta.files.upload(file=("input.bin", content, "application/octet-stream"))
agent = beta.agents.create(name="files", model="claude-sonnet-4-5", tools=[{"type": "agent_toolset_20260401"}])
environment = beta.environments.create(name="files")
session = beta.sessions.create(agent=agent.id, environment_id=environment.id,
                               resources=[{"type": "file", "file_id": upload.id, "mount_path": "/mnt/data/input.bin"}])
resources = beta.sessions.resources.with_raw_response.list(session.id).http_response.json()["data"]
if [(r["type"], r["file_id"], r["mount_path"]) for r in resources] != [("file", upload.id, "/mnt/data/input.bin")]:
    failures.append(f"resources.list: {resources}")
for resource in resources:
    strict("resources.list (file)", BetaManagedAgentsFileResource, resource)

result = turn(session.id, "copy the input")
text = json.dumps(result.model_dump(mode="json"))
if "-r--r--r--" not in text or "input.bin" not in text:
    failures.append(f"the upload is not mounted read-only at its mount_path: {text}")
outputs = {f.filename: f for f in beta.files.list(scope_id=session.id)}
if sorted(outputs) != ["copy.bin", "note.txt"]:
    failures.append(f"files.list(scope_id=session): {sorted(outputs)}")
else:
    copied = beta.files.download(outputs["copy.bin"].id).read()
    if copied != content:
        failures.append(f"the output came back as {len(copied)} bytes, not the {len(content)} copied")
    else:
        print("ok the output downloads byte for byte", flush=True)
    scope = outputs["copy.bin"].scope
    if scope is None or scope.type != "session" or scope.id != session.id or outputs["note.txt"].mime_type != "text/plain":
        failures.append(f"an output's scope or type: {outputs['copy.bin']} {outputs['note.txt']}")

# Added and removed between turns: the next wake mounts the one and drops the other.
second = beta.files.upload(file=("second.txt", b"second file\n", "text/plain"))
added = beta.sessions.resources.with_raw_response.add(
    session.id, type="file", file_id=second.id, mount_path="/mnt/data/second.txt").http_response.json()
strict("resources.add", BetaManagedAgentsFileResource, added)
removed = beta.sessions.resources.with_raw_response.delete(resources[0]["id"], session_id=session.id).http_response.json()
strict("resources.delete", BetaManagedAgentsDeleteSessionResource, removed)
result = turn(session.id, "read the second")
text = json.dumps(result.model_dump(mode="json"))
if "second file" not in text or "input-gone" not in text:
    failures.append(f"the next wake did not mount the added file and drop the removed one: {text}")

try:
    beta.sessions.resources.update(added["id"], session_id=session.id, authorization_token="x")
    failures.append("resources.update: a file resource took a token")
except anthropic.BadRequestError:
    print("ok resources.update refuses a file resource", flush=True)
for bad, why in [
    (lambda: beta.sessions.resources.add(session.id, type="file", file_id="file_00000000000000000000000000000000"), "a missing file"),
    (lambda: beta.sessions.resources.add(session.id, type="file", file_id=second.id, mount_path="/etc/passwd"), "a mount path outside /mnt"),
    (lambda: beta.sessions.resources.add(session.id, type="file", file_id=second.id, mount_path="/mnt/session/outputs/x"), "the outputs folder"),
]:
    try:
        bad()
        failures.append(f"resources.add accepted {why}")
    except (anthropic.BadRequestError, anthropic.NotFoundError, anthropic.ConflictError):
        print("ok resources.add refuses", why, flush=True)

finish("session files")
