"""Defines one outcome in a new session through the pinned SDK and prints the session's id (for
OutcomeTests' harness kill). Arguments: description, rubric text."""
import os
import sys

import anthropic

client = anthropic.Anthropic(api_key=os.environ["DROVER_KEY"], base_url=os.environ["DROVER_API_URL"], max_retries=0)
agent = client.beta.agents.create(name="writer", model="claude-sonnet-4-5")
environment = client.beta.environments.create(name="outcome kill")
session = client.beta.sessions.create(agent=agent.id, environment_id=environment.id)
client.beta.sessions.events.send(session.id, events=[{"type": "user.define_outcome", "description": sys.argv[1],
                                                      "rubric": {"type": "text", "content": sys.argv[2]}}])
print(session.id, flush=True)
