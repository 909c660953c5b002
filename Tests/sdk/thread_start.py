"""Starts a coordinator's session whose one thread runs a slow tool, through the pinned SDK, and
prints the session's id (for OutcomeTests' harness kill)."""
import os

import anthropic

client = anthropic.Anthropic(api_key=os.environ["DROVER_KEY"], base_url=os.environ["DROVER_API_URL"], max_retries=0)
worker = client.beta.agents.create(name="worker", model="claude-sonnet-4-5")
coordinator = client.beta.agents.create(name="coordinator", model="claude-sonnet-4-5", multiagent={"type": "coordinator", "agents": [worker.id]})
environment = client.beta.environments.create(name="thread kill")
session = client.beta.sessions.create(agent=coordinator.id, environment_id=environment.id)
client.beta.sessions.events.send(session.id, events=[{"type": "user.message", "content": [{"type": "text", "text": "coordinate slowly"}]}])
print(session.id, flush=True)
