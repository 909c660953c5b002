"""Issue #23, `event_deltas`, through the pinned SDK: a stream that asks for previews of
agent.message and agent.thinking gets `event_start` (with the id the event will carry) and
`event_delta` fragments while the model writes, before the event itself; the fragments add up to
the message; a stream that did not ask gets none; the history holds no preview; an event type
that cannot be previewed is refused. Run by DroverAPITests.SDKTests with DROVER_API_URL and
DROVER_KEY_A.
"""
import os
import threading

import anthropic
from anthropic.types.beta.sessions import BetaManagedAgentsStreamSessionEvents

from checks import failures, finish, read_stream, refused, strict

client = anthropic.Anthropic(api_key=os.environ["DROVER_KEY_A"], base_url=os.environ["DROVER_API_URL"], max_retries=0)
beta = client.beta

agent = beta.agents.create(name="slow writer", model="claude-sonnet-4-5")
environment = beta.environments.create(name="previews")
session = beta.sessions.create(agent=agent.id, environment_id=environment.id)


plain = []
with beta.sessions.events.with_streaming_response.stream(session.id) as plain_response:
    watcher = threading.Thread(target=read_stream, args=(plain_response, plain))
    watcher.start()
    streamed = []
    with beta.sessions.events.with_streaming_response.stream(session.id, event_deltas=["agent.message", "agent.thinking"]) as response:
        beta.sessions.events.send(session.id, events=[{"type": "user.message", "content": [{"type": "text", "text": "write slowly"}]}])
        read_stream(response, streamed)
    watcher.join(timeout=60)

for event in streamed:
    strict(f"events.stream with event_deltas ({event['type']})", BetaManagedAgentsStreamSessionEvents, event)
types = [e["type"] for e in streamed]
messages = [e for e in streamed if e["type"] == "agent.message"]
thinking = [e for e in streamed if e["type"] == "agent.thinking"]
starts = {e["event"]["id"]: (i, e["event"]["type"]) for i, e in enumerate(streamed) if e["type"] == "event_start"}
if len(messages) != 1 or len(thinking) != 1:
    failures.append(f"the turn's events: {types}")
else:
    message, thought = messages[0], thinking[0]
    at = streamed.index(message)
    deltas = [(i, e) for i, e in enumerate(streamed) if e["type"] == "event_delta" and e["event_id"] == message["id"]]
    text = "".join(e["delta"]["content"]["text"] for _, e in deltas)
    if starts.get(message["id"], (None, None))[1] != "agent.message" or starts[message["id"]][0] > at:
        failures.append(f"no event_start before the agent.message it previews: {types}")
    # Best effort, as the SDK says: the fragments before the message are a prefix of it (all of it,
    # as a rule; a last one that lost its race with the message is dropped, never sent after it).
    elif len(deltas) < 2 or any(i > at for i, _ in deltas) or not message["content"][0]["text"].startswith(text):
        failures.append(f"the deltas ({len(deltas)}, {text!r}) are not a prefix of the message, before it: {message['content']}")
    else:
        whole = "the whole message" if text == message["content"][0]["text"] else "a prefix"
        print(f"ok {len(deltas)} deltas preview the agent.message {message['id']} before it arrives ({whole})", flush=True)
    if starts.get(thought["id"], (None, None))[1] != "agent.thinking" or starts[thought["id"]][0] > streamed.index(thought) \
            or any(e["type"] == "event_delta" and e["event_id"] == thought["id"] for e in streamed):
        failures.append(f"agent.thinking is previewed start-only, before it: {types}")
if any(e["type"] in ("event_start", "event_delta") for e in plain) or "agent.message" not in [e["type"] for e in plain]:
    failures.append(f"a stream that did not ask got previews, or not the turn: {[e['type'] for e in plain]}")
history = [e.type for e in beta.sessions.events.list(session.id)]
if "event_start" in history or "event_delta" in history:
    failures.append(f"previews in the history: {history}")
refused("event_deltas of a type that has no preview", 400,
        lambda: beta.sessions.events.with_streaming_response.stream(session.id, event_deltas=["agent.tool_use"]).__enter__())

finish("event_deltas")
