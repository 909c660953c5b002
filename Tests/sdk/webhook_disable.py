"""Issue #26, webhooks: an endpoint that keeps failing is given up and disabled with its reason,
as docs/api.md documents (here after 2 s: `--webhook-give-up 2`); events while it is disabled are
not queued for it; enabled again, it gets the next events, verified by the SDK's
`webhooks.unwrap`. Run by DroverAPITests.DeploymentTests with DROVER_API_URL and DROVER_KEY_A.
"""
import http.server
import os
import socket
import threading
import time

import anthropic

from checks import failures, finish, strict
from anthropic.types.beta.beta_webhook_event import BetaWebhookEvent

client = anthropic.Anthropic(api_key=os.environ["DROVER_KEY_A"], base_url=os.environ["DROVER_API_URL"], max_retries=0)
probe = socket.socket()
probe.bind(("127.0.0.1", 0))
port = probe.getsockname()[1]
probe.close()  # nothing listens there until the receiver starts

hook = client.post("/v1/webhooks", cast_to=object, body={"url": f"http://127.0.0.1:{port}/", "enabled_events": ["memory_store.created"]})
client.beta.memory_stores.create(name="first")
deadline = time.time() + 20
while (endpoint := client.get(f"/v1/webhooks/{hook['id']}", cast_to=object))["state"] != "disabled":
    if time.time() > deadline:
        raise AssertionError(f"the failing endpoint was not disabled: {endpoint}")
    time.sleep(0.2)
if "failed" not in endpoint["disabled_reason"]:
    failures.append(f"disabled_reason: {endpoint['disabled_reason']!r}")
log = client.get(f"/v1/webhooks/{hook['id']}/deliveries", cast_to=object)["data"]
if len(log) != 1 or log[0]["status"] != "failed" or log[0]["attempts"] < 2 or not log[0]["last_error"]:
    failures.append(f"the given-up delivery: {log}")

client.beta.memory_stores.create(name="while disabled")
received = []


class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        received.append(({k.lower(): v for k, v in self.headers.items()}, self.rfile.read(int(self.headers["content-length"])).decode()))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Receiver)
threading.Thread(target=server.serve_forever, daemon=True).start()
enabled = client.post(f"/v1/webhooks/{hook['id']}", cast_to=object, body={"state": "enabled"})
if enabled["state"] != "enabled" or enabled["disabled_reason"] != "":
    failures.append(f"enable: {enabled}")
third = client.beta.memory_stores.create(name="after")
deadline = time.time() + 10
while not received and time.time() < deadline:
    time.sleep(0.1)
time.sleep(0.5)
if len(received) != 1:
    failures.append(f"{len(received)} deliveries after enabling, not 1 (the event while disabled is never delivered)")
else:
    event = client.beta.webhooks.unwrap(received[0][1], headers=received[0][0], key=hook["signing_secret"])
    strict("webhook event", BetaWebhookEvent, __import__("json").loads(received[0][1]))
    if event.data.id != third.id:
        failures.append(f"delivered {event.data.id}, not {third.id}")
server.shutdown()
finish("a failing webhook endpoint")
