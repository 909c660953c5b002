"""Starts a coordinator's session through the pinned SDK and prints the session's id (for
OutcomeTests' harness kills): by default one thread runs a slow tool; with `workflow`, the agent
starts a workflow run whose first phase is slow."""
import os
import sys

import anthropic

client = anthropic.Anthropic(api_key=os.environ["DROVER_KEY"], base_url=os.environ["DROVER_API_URL"], max_retries=0)
workflow = sys.argv[1:] == ["workflow"]
worker = client.beta.agents.create(name="researcher" if workflow else "worker", model="claude-sonnet-4-5")
if workflow:
    coordinator = client.beta.agents.create(name="lead", model="claude-sonnet-4-5", multiagent={
        "type": "multiagent_20261001", "workflows": {"type": "enabled", "predefined_agents": [worker.id]}})
    task = "run the slow survey"
else:
    coordinator = client.beta.agents.create(name="coordinator", model="claude-sonnet-4-5", multiagent={"type": "coordinator", "agents": [worker.id]})
    task = "coordinate slowly"
environment = client.beta.environments.create(name="thread kill")
session = client.beta.sessions.create(agent=coordinator.id, environment_id=environment.id)
client.beta.sessions.events.send(session.id, events=[{"type": "user.message", "content": [{"type": "text", "text": task}]}])
print(session.id, flush=True)
