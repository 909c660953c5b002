"""Issue #23, item 4, through the pinned SDK: a skill uploaded as the SDK sends it (one multipart
part per file of its folder), its versions, the archive `versions.download` answers, an agent's
`skills` resolved to versions, and a scripted turn that reads the skill's SKILL.md and runs its
script at /mnt/skills/<name>/. Every answer validates strictly against the SDK's models. Run by
DroverAPITests.SDKTests with DROVER_API_URL and DROVER_KEY_A.
"""
import io
import json
import os
import zipfile

import anthropic

from checks import failures, finish, refused, strict, wait_idle
from anthropic.types.beta import BetaDeletedSkill, BetaManagedAgentsAgent, BetaSkill
from anthropic.types.beta.skills import BetaDeletedSkillVersion, BetaSkillVersion

client = anthropic.Anthropic(api_key=os.environ["DROVER_KEY_A"], base_url=os.environ["DROVER_API_URL"], max_retries=0)
beta = client.beta

SKILL_MD = b"---\nname: greeter\ndescription: Greets people by name, politely.\n---\n\n# Greeter\n\nRun scripts/hello.sh NAME.\n"
HELLO = b'#!/bin/sh\necho "Hello, $1, from the greeter skill"\n'


def raw(call):
    return call.http_response.json()


skill = raw(beta.skills.with_raw_response.create(
    files=[("greeter/SKILL.md", SKILL_MD, "text/markdown"), ("greeter/scripts/hello.sh", HELLO, "text/x-sh")]))
strict("skills.create", BetaSkill, skill)
if skill["display_name"] != "greeter" or skill["source"] != {"type": "custom"}:
    failures.append(f"skills.create: {skill}")
first = skill["latest_version_id"]
version = raw(beta.skills.versions.with_raw_response.retrieve(first, skill_id=skill["id"]))
strict("skills.versions.retrieve", BetaSkillVersion, version)
if (version["name"], version["description"]) != ("greeter", "Greets people by name, politely."):
    failures.append(f"the version's name and description come from SKILL.md: {version}")
if raw(beta.skills.versions.with_raw_response.retrieve("latest", skill_id=skill["id"]))["id"] != first:
    failures.append("versions.retrieve(latest)")

# A second version: it is the latest; the archive holds its files under the skill's folder.
second = raw(beta.skills.versions.with_raw_response.create(skill["id"], files=[
    ("greeter/SKILL.md", SKILL_MD.replace(b"politely", b"warmly")), ("greeter/scripts/hello.sh", HELLO)]))
strict("skills.versions.create", BetaSkillVersion, second)
if raw(beta.skills.with_raw_response.retrieve(skill["id"]))["latest_version_id"] != second["id"] or int(second["id"]) <= int(first):
    failures.append("the new version is not the latest")
listed = raw(beta.skills.versions.with_raw_response.list(skill["id"]))
for item in listed["data"]:
    strict("skills.versions.list", BetaSkillVersion, item)
if [v["id"] for v in listed["data"]] != [second["id"], first]:
    failures.append(f"versions.list, newest first: {listed}")
archive = zipfile.ZipFile(io.BytesIO(beta.skills.versions.download(second["id"], skill_id=skill["id"]).read()))
if sorted(archive.namelist()) != ["greeter/SKILL.md", "greeter/scripts/hello.sh"] or archive.read("greeter/scripts/hello.sh") != HELLO \
        or b"warmly" not in archive.read("greeter/SKILL.md") or archive.testzip() is not None:
    failures.append(f"versions.download: {archive.namelist()}")
skills_page = raw(beta.skills.with_raw_response.list())
for item in skills_page["data"]:
    strict("skills.list", BetaSkill, item)
if [s["id"] for s in skills_page["data"]] != [skill["id"]] or list(beta.skills.list(source="anthropic")):
    failures.append(f"skills.list: {skills_page}")

# Refusals, each with a readable reason.
refused("no SKILL.md", 400, lambda: beta.skills.create(files=[("greeter/README.md", b"x")]))
refused("two folders", 400, lambda: beta.skills.create(files=[("a/SKILL.md", SKILL_MD), ("b/x.sh", HELLO)]))
refused("a path with ..", 400, lambda: beta.skills.create(files=[("greeter/../SKILL.md", SKILL_MD)]))
refused("no description", 400, lambda: beta.skills.create(files=[("greeter/SKILL.md", b"---\nname: greeter\n---\n")]))
refused("a version named otherwise", 400, lambda: beta.skills.versions.create(
    skill["id"], files=[("other/SKILL.md", SKILL_MD.replace(b"name: greeter", b"name: other"))]))
refused("an unknown skill", 404, lambda: beta.skills.retrieve("skill_missing"))

# An agent with the skill, resolved to its latest version; a session uses it.
agent = raw(beta.agents.with_raw_response.create(name="greeting", model="claude-sonnet-4-5",
                                                  skills=[{"type": "custom", "skill_id": skill["id"]}]))
strict("agents.create (skills)", BetaManagedAgentsAgent, agent)
if agent["skills"] != [{"type": "custom", "skill_id": skill["id"], "version": second["id"]}]:
    failures.append(f"agent.skills is not resolved to the latest version: {agent['skills']}")
pinned = raw(beta.agents.with_raw_response.update(agent["id"], version=agent["version"],
                                                   skills=[{"type": "custom", "skill_id": skill["id"], "version": first}]))
strict("agents.update (skills)", BetaManagedAgentsAgent, pinned)
if pinned["skills"] != [{"type": "custom", "skill_id": skill["id"], "version": first}]:
    failures.append(f"agents.update(skills=): {pinned['skills']}")
refused("an agent with another organisation's or a missing skill", 404, lambda: beta.agents.create(
    name="x", model="m", skills=[{"type": "custom", "skill_id": "skill_missing"}]))
refused("an Anthropic skill", 400, lambda: beta.agents.create(
    name="x", model="m", skills=[{"type": "anthropic", "skill_id": "pdf"}]))

environment = beta.environments.create(name="skills")
session = beta.sessions.create(agent=agent["id"], environment_id=environment.id)
beta.sessions.events.send(session.id, events=[{"type": "user.message", "content": [{"type": "text", "text": "use the skill"}]}])
wait_idle(beta, session.id)
result = json.dumps([e for e in beta.sessions.events.list(session.id) if e.type == "agent.tool_result"][-1].model_dump(mode="json"))
if "Greets people by name, politely." not in result or "Hello, Ada, from the greeter skill" not in result or "Read-only" not in result:
    failures.append(f"the session did not use the pinned version of the skill, read-only: {result}")

# Deleting: not the only version; the skill with all its versions.
strict("skills.versions.delete", BetaDeletedSkillVersion, raw(beta.skills.versions.with_raw_response.delete(second["id"], skill_id=skill["id"])))
if raw(beta.skills.with_raw_response.retrieve(skill["id"]))["latest_version_id"] != first:
    failures.append("after deleting the latest version, the one before is the latest")
refused("delete the only version", 400, lambda: beta.skills.versions.delete(first, skill_id=skill["id"]))
strict("skills.delete", BetaDeletedSkill, raw(beta.skills.with_raw_response.delete(skill["id"])))
refused("a deleted skill", 404, lambda: beta.skills.retrieve(skill["id"]))

finish("skills")
