"""The console in headless Chromium (Debian's, driven by Playwright), against real daemons. Run by
DroverAPITests.ConsoleTests in two phases:

  live   sign in; start a session from the console and watch it run to end_turn live; answer a
         custom tool call from the page; another organisation's session id gives a not-found page;
         a memory store's memories, and a memory's history as diffs
  fleet  the lease table shows a held and an expired lease, the invariants panel reports; a session
         taken over after its harness was SIGKILLed shows two lease epochs on its trace

Environment: DROVER_CONSOLE_URL, DROVER_KEY (an operator key of the organisation), DROVER_OTHER_SESSION
(a session of another organisation), DROVER_TAKEOVER_SESSION (fleet), DROVER_SCREENSHOTS (a folder).
Every page must log no console error. Prints one line per check; a failure raises."""
import json
import os
import sys
import urllib.request

from playwright.sync_api import expect, sync_playwright

URL = os.environ["DROVER_CONSOLE_URL"]
KEY = os.environ["DROVER_KEY"]
SHOTS = os.environ["DROVER_SCREENSHOTS"]
phase = sys.argv[1]
errors = []


def check(name, condition, detail=""):
    if not condition:
        raise AssertionError(f"{name}: {detail}")
    print("ok", name, flush=True)


def call(method, path, body=None):
    """The API with the console's key, for what the test sets up."""
    request = urllib.request.Request(URL.split("/console")[0] + path, method=method, data=None if body is None else json.dumps(body).encode(),
                                     headers={"x-api-key": KEY, "content-type": "application/json"})
    with urllib.request.urlopen(request) as response:
        return json.loads(response.read())


def shot(page, name):
    page.screenshot(path=os.path.join(SHOTS, name + ".png"), full_page=True)


def sign_in(page):
    page.goto(URL)
    page.get_by_label("API key").fill(KEY)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Sessions")).to_be_visible()


with sync_playwright() as playwright:
    browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"])
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.set_default_timeout(30_000)
    sign_in(page)
    check("signed in", page.get_by_role("link", name="Fleet").is_visible())

    if phase == "live":
        # A session started from the console runs to end_turn while its events appear live.
        page.get_by_label("Agent for the new session").select_option(label="console")
        page.get_by_label("First message").fill("hello from the console")
        page.get_by_role("button", name="Start").click()
        events = page.locator("#events")
        expect(events.locator('[data-type="agent.tool_use"]')).to_have_count(1)
        expect(events.locator('[data-type="session.status_idle"]')).to_contain_text("end_turn")
        expect(events.locator('[data-type="agent.message"]')).to_contain_text("Done.")
        expect(page.locator("#stream-state")).to_have_text("live")
        expect(page.locator("#trace rect.model")).to_have_count(2)
        check("a console-started session ran to end_turn live", True)
        shot(page, "session")

        # A custom tool call is answered from the page.
        page.goto(URL + "#/sessions")
        page.get_by_label("Agent for the new session").select_option(label="with-lookup")
        page.get_by_label("First message").fill("use the lookup")
        page.get_by_role("button", name="Start").click()
        answer = page.get_by_label("Result of lookup")
        answer.fill("a runtime for agents")
        page.get_by_role("button", name="Send result").click()
        expect(page.locator('#events [data-type="user.custom_tool_result"]')).to_contain_text("a runtime for agents")
        expect(page.locator('#events [data-type="agent.message"]')).to_contain_text("Found it.")
        expect(page.locator('#events [data-type="session.status_idle"]').last).to_contain_text("end_turn")
        check("a custom tool call was answered from the page", True)
        shot(page, "custom-tool")

        # An outcome: its evaluations and their verdicts in the session's events.
        console_agent = [a for a in call("GET", "/v1/agents")["data"] if a["name"] == "console"][0]
        environment = call("GET", "/v1/environments")["data"][0]
        graded = call("POST", "/v1/sessions", {"agent": console_agent["id"], "environment_id": environment["id"], "title": "graded"})
        call("POST", f"/v1/sessions/{graded['id']}/events", {"events": [
            {"type": "user.define_outcome", "description": "console outcome", "rubric": {"type": "text", "content": "RUBRIC-CONSOLE"}}]})
        page.goto(URL + "#/sessions/" + graded["id"])
        verdicts = page.locator('#events [data-type="span.outcome_evaluation_end"]')
        expect(verdicts).to_have_count(2)
        expect(verdicts.first).to_contain_text("needs_revision")
        expect(verdicts.last).to_contain_text("satisfied")
        expect(page.locator('#events [data-type="user.define_outcome"]')).to_contain_text("console outcome")
        expect(page.locator('#trace rect.evaluation[data-verdict="needs_revision"]')).to_have_count(1)
        expect(page.locator('#trace rect.evaluation[data-verdict="satisfied"]')).to_have_count(1)
        check("an outcome's evaluations show their verdicts", True)
        shot(page, "outcome")

        # Session threads: a coordinator's two workers are lanes of the trace.
        worker = call("POST", "/v1/agents", {"name": "worker", "model": "claude-sonnet-4-5"})
        boss = call("POST", "/v1/agents", {"name": "coordinator", "model": "claude-sonnet-4-5",
                                           "multiagent": {"type": "coordinator", "agents": [worker["id"]]}})
        coordinated = call("POST", "/v1/sessions", {"agent": boss["id"], "environment_id": environment["id"], "title": "coordinated",
                                                    "initial_events": [{"type": "user.message", "content": [{"type": "text", "text": "coordinate the work"}]}]})
        page.goto(URL + "#/sessions/" + coordinated["id"])
        expect(page.locator('#events [data-type="session.status_idle"]')).to_contain_text("end_turn")
        expect(page.locator('#events [data-type="agent.thread_message_received"]')).to_have_count(2)
        expect(page.locator("#trace rect.thread-tool")).to_have_count(2)
        expect(page.locator("#trace text", has_text="↳ worker")).to_have_count(2)
        check("a coordinator's threads are lanes of its trace", True)
        shot(page, "threads")

        # A workflow run: its phases and its end.
        researcher = call("POST", "/v1/agents", {"name": "researcher", "model": "claude-sonnet-4-5"})
        lead = call("POST", "/v1/agents", {"name": "lead", "model": "claude-sonnet-4-5", "multiagent": {
            "type": "multiagent_20261001", "workflows": {"type": "enabled", "predefined_agents": [{"type": "agent", "id": researcher["id"]}]}}})
        surveyed = call("POST", "/v1/sessions", {"agent": lead["id"], "environment_id": environment["id"], "title": "surveyed",
                                                 "initial_events": [{"type": "user.message", "content": [{"type": "text", "text": "run the survey workflow"}]}]})
        page.goto(URL + "#/sessions/" + surveyed["id"])
        expect(page.locator('#events [data-type="session.status_idle"]')).to_contain_text("end_turn")
        expect(page.locator('#events [data-type="workflow_run.created"]')).to_contain_text("Workflow run survey: gather → write")
        expect(page.locator('#events [data-type="workflow_run.phase_started"]').first).to_contain_text("phase gather started")
        expect(page.locator('#events [data-type="workflow_run.status_ended"]')).to_contain_text("run completed")
        check("a workflow run shows its phases and its end", True)
        shot(page, "workflow")

        # Another organisation's session id: the same page as a missing one.
        page.goto(URL + "#/sessions/" + os.environ["DROVER_OTHER_SESSION"])
        expect(page.get_by_role("heading", name="Session not found")).to_be_visible()
        check("another organisation's session is not found", True)
        shot(page, "not-found")

        # Memory: a store, its memories, and a memory's history as diffs.
        memory_store = call("POST", "/v1/memory_stores", {"name": "console notes", "description": "for the console"})
        memory = call("POST", f"/v1/memory_stores/{memory_store['id']}/memories", {"path": "/todo.md", "content": "one\ntwo\n"})
        call("POST", f"/v1/memory_stores/{memory_store['id']}/memories/{memory['id']}", {"content": "one\nthree\n"})
        page.get_by_role("link", name="Memory").click()
        page.get_by_role("link", name=memory_store["id"]).click()
        page.get_by_role("link", name="/todo.md").click()
        expect(page.locator("#memory-content")).to_have_text("one\nthree\n")
        expect(page.locator('#memory-versions li[data-operation="modified"] .removed')).to_have_text("- two\n")
        expect(page.locator('#memory-versions li[data-operation="modified"] .added')).to_have_text("+ three\n")
        check("a memory's history shows each change as a diff", True)
        shot(page, "memory")

        # Webhooks: an endpoint and its delivery log (an unreachable URL: the attempts show their errors).
        hook = call("POST", "/v1/webhooks", {"url": "http://127.0.0.1:9/", "name": "console hook", "enabled_events": ["memory_store.created"]})
        call("POST", "/v1/memory_stores", {"name": "for the hook"})
        page.get_by_role("link", name="Webhooks").click()
        page.get_by_role("link", name="console hook").click()
        expect(page.locator("#deliveries tbody tr")).to_have_count(1)
        expect(page.locator("#deliveries tbody tr").first).to_contain_text("memory_store.created")
        check("an endpoint's delivery log lists its events", True)
        shot(page, "webhooks")

        # Phone width: the session page still reads.
        page.set_viewport_size({"width": 390, "height": 844})
        page.goto(URL + "#/sessions")
        expect(page.locator("#sessions")).to_be_visible()
        shot(page, "sessions-phone")

    if phase == "fleet":
        page.get_by_role("link", name="Fleet").click()
        leases = page.locator("#leases tbody tr")
        expect(page.locator("#leases tbody tr.expired")).to_have_count(1)
        expect(leases).to_have_count(2)
        check("the lease table shows a held and an expired lease", "expired" in page.locator("#leases tbody tr.expired").inner_text())
        expect(page.locator("#verify")).to_contain_text("invariants hold")
        expect(page.locator("#queue-chart svg")).to_be_visible()
        expect(page.locator("#harnesses tbody tr").first).to_be_visible()
        expect(page.locator("#pools tbody tr").first).to_be_visible()
        expect(page.locator("#work-queues")).to_be_visible()
        shot(page, "fleet")

        page.goto(URL + "#/sessions/" + os.environ["DROVER_TAKEOVER_SESSION"])
        expect(page.locator('#events [data-type="session.status_idle"]').last).to_contain_text("end_turn")
        epochs = page.locator("#trace g.epoch")
        check("a takeover shows as a new lease epoch on the trace", epochs.count() >= 2, epochs.count())
        shot(page, "takeover-trace")

        # Keyboard: the main links and buttons are reachable with Tab.
        page.keyboard.press("Tab")
        check("keyboard focus lands on a control", page.evaluate("document.activeElement && document.activeElement.tagName") in ("A", "BUTTON", "INPUT", "TEXTAREA", "SELECT"))

    browser.close()

check("no console errors", not errors, errors)
print("all checks passed", flush=True)
