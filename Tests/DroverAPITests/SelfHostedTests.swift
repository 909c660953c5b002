import DroverCore
import DroverIO
import DroverStore
import DroverTestSupport
import Foundation
import Testing

/// Self-hosted environments (issue #21) with the pinned SDK's own `EnvironmentWorker`, started as
/// separate worker processes against a real `drover api`, harnesses and the strict scripted model
/// (Tests/sdk/self_hosted.py): they serve sessions whose calls run on the workers' machine; a
/// worker SIGKILLed mid-call loses its item to another that finishes the session without running
/// an answered call again; keys and tokens are refused outside their scope.
@Suite(.serialized) struct SelfHostedTests {
    static func script(counter: String) -> JSONValue {
        [
            "turns": [
                ["content": [["type": "tool_use", "name": "bash", "input": ["command": "echo hello-from-worker"]]]],
                ["content": [["type": "tool_use", "name": "write", "input": ["file_path": "note.txt", "content": "drover was here"]]]],
                ["content": [["type": "tool_use", "name": "read", "input": ["file_path": "note.txt"]]]],
                ["content": [["type": "text", "text": "Done."]]],
            ],
            "variants": [[
                "match": "in the cloud",
                "turns": [
                    ["content": [["type": "tool_use", "name": "bash", "input": ["command": "echo from-the-pool"]]]],
                    ["content": [["type": "text", "text": "Pooled."]]],
                ],
            ], [
                "match": "use the worker memory",
                "turns": [
                    ["content": [["type": "tool_use", "name": "bash", "input": [
                        "command": "cat /mnt/memory/worker-notes/todo.md && echo learned-on-a-worker >> /mnt/memory/worker-notes/todo.md",
                    ]]]],
                    ["content": [["type": "text", "text": "Noted."]]],
                ],
            ], [
                "match": "use the worker skill",
                "turns": [
                    ["content": [["type": "tool_use", "name": "bash", "input": ["command": "cat skills/greeter/SKILL.md && sh skills/greeter/hello.sh"]]]],
                    ["content": [["type": "text", "text": "Greeted."]]],
                ],
            ], [
                "match": "count carefully",
                "turns": [
                    ["content": [["type": "tool_use", "name": "bash", "input": ["command": .string("echo one >> \(counter)")]]]],
                    ["content": [["type": "tool_use", "name": "bash", "input": ["command": .string("sleep 4 && echo two >> \(counter)")]]]],
                    ["content": [["type": "tool_use", "name": "bash", "input": ["command": .string("echo three >> \(counter)")]]]],
                    ["content": [["type": "text", "text": "Counted."]]],
                ],
            ]],
        ]
    }

    static let program = "Tests/sdk/self_hosted.py"

    /// One step of the Python program; its standard output.
    static func step(_ arguments: [String], _ environment: [String: String]) async throws -> String {
        try await APIRig.python(program, arguments, environment: environment, checks: false)
    }

    static func drover(_ arguments: [String], database: String) async throws -> String {
        let result = try await DroverProcess.run(arguments, database: database)
        guard result.status == 0 else { throw DroverError(.invalidArgument, "drover \(arguments) failed: \(result.stderr)") }
        return result.stdout
    }

    @Test func theSDKsWorkersServeSelfHostedSessions() async throws {
        let folder = NSTemporaryDirectory() + "drover-self-hosted-\(UInt64.random(in: 0...UInt64.max))"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let counter = folder + "/counter"
        try await APIRig.withClusterAndAPI(script: Self.script(counter: counter), harnesses: 2, apiArgs: ["--work-ttl", "3", "--metrics-listen", "127.0.0.1:0"]) { cluster, api in
            let database = cluster.database.conninfo
            var environment = ["DROVER_API_URL": "http://\(api.address)", "DROVER_KEY": try await api.key(org: "team"),
                               "DROVER_KEY_OTHER": try await api.key(org: "others")]
            let made = try JSONValue.parse(try await Self.step(["setup"], environment).split(separator: "\n").last.map(String.init) ?? "")
            let (agent, environmentA, environmentB) = (made["agent"]!.stringValue!, made["environment_a"]!.stringValue!, made["environment_b"]!.stringValue!)
            let keyA = try JSONValue.parse(try await Self.drover(["environment-key", "create", "--environment", environmentA, "--org", "team", "--json"], database: database))
            let keyB = try JSONValue.parse(try await Self.drover(["environment-key", "create", "--environment", environmentB, "--json"], database: database))
            environment["DROVER_AGENT"] = agent
            environment["DROVER_ENV_A"] = environmentA
            environment["DROVER_ENV_B"] = environmentB
            environment["DROVER_ENV_C"] = made["environment_c"]!.stringValue!
            environment["DROVER_ENV_CLOUD"] = made["environment_cloud"]!.stringValue!
            environment["DROVER_ENV_KEY_B"] = keyB["key"]!.stringValue!

            // Three workers, each in a session of its own (setsid) so that a kill takes its tools' processes too.
            // As root, each has a mount namespace with its own /mnt: the SDK's worker writes memory
            // stores at their mount paths (/mnt/memory/…), which must not touch the host's.
            let isolated = geteuid() == 0
            var workers: [String: ChildDaemon] = [:]
            for index in 1...3 {
                let workdir = folder + "/w\(index)"
                try FileManager.default.createDirectory(atPath: workdir, withIntermediateDirectories: true)
                let command = [APIRig.pythonPath, TestDatabase.packageRoot.appendingPathComponent(Self.program).path, "worker", environmentA,
                               keyA["key"]!.stringValue!, "w\(index)", workdir]
                let worker = try ChildDaemon(
                    binary: "/usr/bin/setsid",
                    isolated
                        ? ["/usr/bin/unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", "mount -t tmpfs tmpfs /mnt && exec \"$@\"", "sh"] + command
                        : command,
                    environment: environment)
                _ = try await worker.waitForLog("worker started")
                workers["w\(index)"] = worker
            }
            defer { for worker in workers.values { kill(-worker.pid, SIGKILL) } }

            _ = try await Self.step(["serve", "20"], environment)
            // The SDK's worker syncs a memory store of a self-hosted session with the item's token.
            if isolated { _ = try await Self.step(["memory"], environment) }
            // And the skills of its agent, into the worker's workdir.
            _ = try await Self.step(["skills"], environment)

            // A worker SIGKILLed in the middle of a call: its lease runs out, another worker takes
            // the item and runs the call the dead one never answered, and only that one.
            let started = try JSONValue.parse(try await Self.step(["start", "count carefully"], environment).split(separator: "\n").last.map(String.init) ?? "")
            let session = started["session"]!.stringValue!
            var victim: String?
            let deadline = ContinuousClock.now + .seconds(60)
            while victim == nil, ContinuousClock.now < deadline {
                let rows = try await cluster.sql.query(
                    """
                    SELECT i.worker_id FROM drover.work_items i
                     WHERE i.session_id = $1 AND i.state = 'active'
                       AND EXISTS (SELECT 1 FROM drover.events e WHERE e.session_id = $1 AND e.type = 'agent.tool_use'
                                      AND e.payload->'input'->>'command' LIKE 'sleep 4%')
                    """, [session])
                victim = try rows.first?.decodeIfPresent(0, as: String.self)
                if victim == nil { try await Task.sleep(for: .milliseconds(50)) }
            }
            let killed = try #require(victim.flatMap { workers[$0] }, "no worker took the counting session")
            try await Task.sleep(for: .milliseconds(500))  // the call is running on it now
            kill(-killed.pid, SIGKILL)
            _ = await killed.wait(timeout: 10)
            _ = try await Self.step(["wait", session], environment)
            let lines = try String(contentsOfFile: counter, encoding: .utf8).split(separator: "\n")
            #expect(lines == ["one", "two", "three"], "each call ran once: \(lines)")
            let reclaims: Int = try await cluster.sql.query(
                "SELECT coalesce(sum(reclaims), 0)::int FROM drover.work_items WHERE session_id = $1", [session])[0].decode(0)
            #expect(reclaims >= 1, "the dead worker's item went back to the queue")
            let report = try await Verifier(pool: cluster.sql).run()
            #expect(report.breaches.isEmpty, "drover verify: \(report.breaches)")

            _ = try await Self.step(["refusals"], environment)
            _ = try await Self.step(["deadline"], environment)
            _ = try await Self.drover(["environment-key", "revoke", keyB["id"]!.stringValue!], database: database)
            _ = try await Self.step(["revoked"], environment)

            // Operators see the items; nothing a worker was given appears in the logs or metrics.
            let work = try JSONValue.parse(try await Self.drover(["work", "--json"], database: database))
            #expect(work["queues"]?[0] != nil && work["data"] != nil, "drover work: \(work)")
            let secrets = [keyA["key"]!.stringValue!, keyB["key"]!.stringValue!]
            let logs = api.daemon.log + cluster.harnessProcesses.map(\.log).joined()
            for secret in secrets { #expect(!logs.contains(secret), "a key was logged") }
            #expect(!logs.contains("sk-drover-work-"), "a sessions token was logged")
            let inEvents: Int = try await cluster.sql.query(
                "SELECT count(*)::int FROM drover.events WHERE payload::text LIKE '%sk-drover-%'")[0].decode(0)
            #expect(inEvents == 0, "a key or token is in the log")
            let metricsAddress = try #require(try await api.daemon.waitForLog("listening")["metrics"]?.stringValue)
            let (_, text) = try await PrometheusText.get(metricsAddress, "/metrics")
            #expect(!text.contains("sk-drover-"), "a key or token is in the metrics")
            let metrics = try PrometheusText(text)
            #expect((metrics.value("drover_work_polls_total", ["outcome": "claimed"]) ?? 0) >= 21, "polls that claimed are counted")
            #expect((metrics.value("drover_work_heartbeats_total", ["outcome": "refused"]) ?? 0) >= 1, "the stale heartbeat is counted")
            #expect((metrics.value("drover_work_reclaims_total", ["kind": "lease_expired"]) ?? 0) >= 1,
                    "the dead worker's reclaim is counted")
            #expect(cluster.model.refusals.isEmpty, "the model server refused: \(cluster.model.refusals.map(\.message))")
        }
    }
}
