import DroverCore
import DroverIO
import DroverStore
import DroverTestSupport
import Foundation
import Testing

/// The web console in headless Chromium (Tests/console/console_browser.py, Playwright from the
/// project's venv driving Debian's Chromium) against real `drover api`, harnesses, a sandbox pool
/// and the scripted model. Screenshots go to .build/test-output/console/.
@Suite(.serialized) struct ConsoleTests {
    static let script: JSONValue = {
        guard case .object(var script) = SDKTests.script, case .array(var variants)? = script["variants"] else { return SDKTests.script }
        variants.append([
            "match": "takeover please",
            "turns": [
                ["content": [["type": "tool_use", "name": "bash", "input": ["command": "sleep 2; echo survived"]]]],
                ["content": [["type": "text", "text": "Done."]]],
            ],
        ])
        // An outcome graded twice: needs_revision, then satisfied (grader variants first).
        variants.insert(["match": "RUBRIC-CONSOLE\nIteration: 0", "turns": [OutcomeTests.verdict("needs_revision", "Say more.")]], at: 0)
        variants.insert(["match": "RUBRIC-CONSOLE\nIteration: 1", "turns": [OutcomeTests.verdict("satisfied", "Enough.")]], at: 1)
        variants.append(["match": "console outcome", "turns": [
            ["content": [["type": "text", "text": "Draft A."]]], ["content": [["type": "text", "text": "Draft B, longer."]]],
        ]])
        // A coordinator and its workers (session threads), and a workflow run, as OutcomeTests plays them.
        if case .array(let played)? = OutcomeTests.script["variants"] {
            variants += played.filter { variant in
                let match = variant["match"]?.stringValue ?? ""
                return match.hasSuffix("the worker") || match.hasPrefix("wf ") || ["coordinate the work", "run the survey workflow"].contains(match)
            }
        }
        script["variants"] = .array(variants)
        return .object(script)
    }()

    func browser(_ phase: String, api: RunningAPI, environment: [String: String]) async throws {
        let shots = TestDatabase.packageRoot.appendingPathComponent(".build/test-output/console").path
        try FileManager.default.createDirectory(atPath: shots, withIntermediateDirectories: true)
        try await APIRig.python(
            "Tests/console/console_browser.py", [phase],
            environment: environment.merging(["DROVER_CONSOLE_URL": "http://\(api.address)/console/", "DROVER_SCREENSHOTS": shots]) { $1 })
    }

    @Test func theConsoleInABrowser() async throws {
        try await APIRig.withClusterAndAPI(script: Self.script, harnesses: 2) { cluster, api in
            let key = try await api.key(org: "console", operator_: true)
            let otherKey = try await api.key(org: "elsewhere")
            let http = try HTTPConnection.connect(api.address)
            defer { http.close() }
            func post(_ path: String, _ body: JSONValue, key: String) throws -> String {
                let answer = try #require(try http.request("POST", path, headers: [("x-api-key", key)], body: body.text))
                #expect(answer.status == 200, "\(path): \(answer.body)")
                return try JSONValue.parse(answer.body)["id"]?.stringValue ?? ""
            }
            let environment = try post("/v1/environments", ["name": "default", "config": ["resources": ["timeout_s": 60]]], key: key)
            let agent = try post("/v1/agents", ["name": "console", "model": "claude-sonnet-4-5"], key: key)
            _ = try post("/v1/agents", [
                "name": "with-lookup", "model": "claude-sonnet-4-5",
                "tools": [["type": "agent_toolset_20260401"],
                          ["type": "custom", "name": "lookup", "description": "Looks a word up.",
                           "input_schema": ["type": "object", "properties": ["q": ["type": "string"]]]]],
            ], key: key)
            let otherAgent = try post("/v1/agents", ["name": "theirs", "model": "m"], key: otherKey)
            let otherEnvironment = try post("/v1/environments", ["name": "theirs"], key: otherKey)
            let otherSession = try post("/v1/sessions", ["agent": .string(otherAgent), "environment_id": .string(otherEnvironment)], key: otherKey)

            try await browser("live", api: api, environment: ["DROVER_KEY": key, "DROVER_OTHER_SESSION": otherSession])

            // A takeover: the harness holding the session is SIGKILLed during its tool call.
            let takeover = try post("/v1/sessions", [
                "agent": .string(agent), "environment_id": .string(environment), "title": "taken over",
                "initial_events": [["type": "user.message", "content": [["type": "text", "text": "takeover please"]]]],
            ], key: key)
            try await cluster.waitForEvent(SessionID(takeover)) { $0.type == .agentToolUse }
            let holder = try #require(try await cluster.holder(of: SessionID(takeover)))
            holder.signal(SIGKILL)
            #expect(try await cluster.waitForIdle(SessionID(takeover)).stopReason == "end_turn")

            // A held and an expired lease for the table: with the harnesses stopped, nobody takes them.
            for harness in cluster.harnessProcesses where harness.isRunning { harness.signal(SIGTERM) }
            for harness in cluster.harnessProcesses { _ = await harness.wait(timeout: 15) }
            // Real claims (logged in lease_history, with session.status_running): one for an hour, one
            // for 100 ms, which has expired by the time the page loads.
            for ttl in [3_600_000, 100] {
                _ = try await cluster.session("lease fixture")
                _ = try await cluster.sql.query("SELECT session_id FROM drover.claim('hrn_fixture', 1, $1)", [ttl])
            }
            try await Task.sleep(for: .milliseconds(300))
            try await browser("fleet", api: api, environment: ["DROVER_KEY": key, "DROVER_TAKEOVER_SESSION": takeover])
        }
    }
}
