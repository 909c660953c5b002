import DroverCore
import DroverTestSupport
import Foundation
import Testing

/// Issue #26's acceptance: deployments on a schedule and webhooks, through the pinned SDK,
/// against three `drover api` replicas sharing one clock that runs 60 times as fast
/// (Tests/sdk/deployments.py, which SIGKILLs whichever replica holds the scheduler lease).
@Suite(.serialized) struct DeploymentTests {
    @Test func schedulesFireOncePerTimeAcrossReplicasAndWebhooksDeliverEverything() async throws {
        let script: JSONValue = [
            "turns": [["content": [["type": "text", "text": "Done."]]]],
            // The capped session's turn wants a second model call, which its budget refuses until
            // sessions.update raises it.
            "variants": [[
                "match": "spend",
                "turns": [
                    ["content": [["type": "tool_use", "name": "bash", "input": ["command": "echo spent"]]]],
                    ["content": [["type": "text", "text": "Sent once the budget was raised."]]],
                ],
            ]],
        ]
        // The cluster's own replica fires no schedules (its clock is the real one).
        try await APIRig.withClusterAndAPI(script: script, apiArgs: ["--no-scheduler", "--allow-internal", "127.0.0.1/32"]) { cluster, _ in
            // The replicas' schedule clock: 2026-03-29 00:55 London (a daylight-saving morning), 60× real time.
            let clock = ["DROVER_CLOCK": "base=1774745700,rate=60,anchor=\(Int(Date().timeIntervalSince1970))"]
            let flags = ["--schedule-interval", "0.1", "--schedule-lease-ttl", "1", "--allow-internal", "127.0.0.1/32",
                         "--webhook-retry-base", "0.2", "--webhook-retry-cap", "1", "--webhook-timeout", "2"]
            var replicas: [RunningAPI] = []
            for _ in 0..<3 { replicas.append(try await RunningAPI.start(database: cluster.database.conninfo, flags, environment: clock)) }
            let key = try await replicas[0].key(org: "cron")
            // The operator's price for the agents' model, which the script's budget is measured against.
            let priced = try await DroverProcess.run(["prices", "set", "--model", "claude-sonnet-4-5", "--input", "100", "--output", "500"],
                                                     database: cluster.database.conninfo)
            #expect(priced.status == 0, "\(priced.stderr)")
            defer { for replica in replicas { replica.daemon.signal(SIGKILL) } }
            try await APIRig.python("Tests/sdk/deployments.py", environment: [
                "DROVER_API_URLS": replicas.map { "http://\($0.address)" }.joined(separator: ","),
                "DROVER_API_PIDS": replicas.map { String($0.daemon.pid) }.joined(separator: ","),
                "DROVER_KEY_A": key, "DATABASE_URL": cluster.database.conninfo,
            ])
            let checked = try await RenderAgreement.check(cluster.sql)
            #expect(checked["deployment", default: 0] > 0 && checked["deployment_run", default: 0] > 0, "\(checked)")
            #expect(cluster.model.refusals.isEmpty, "the model server refused: \(cluster.model.refusals.map(\.message))")
        }
    }

    /// `drover webhook create` prints the endpoint with its signing secret once; `drover webhook
    /// list` shows it without.
    @Test func webhookCommandsRegisterAndList() async throws {
        let database = try await TestDatabase.create()
        let environment = ["DATABASE_URL": database.conninfo, "DROVER_VAULT_KEY": TestDatabase.vaultKey]
        _ = try await DroverProcess.run(["api-key", "create", "--org", "hooks", "--json"], database: database.conninfo)
        let created = try await DroverProcess.run(
            program: TestDatabase.droverBinary.path,
            ["webhook", "create", "--org", "hooks", "--url", "https://hooks.example.com/drover", "--events", "session.status_idled,deployment_run.failed"],
            environment: environment)
        let endpoint = try JSONValue.parse(created.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(created.status == 0 && endpoint["signing_secret"]?.stringValue?.hasPrefix("whsec_") == true, "\(created.stdout)\(created.stderr)")
        let listed = try await DroverProcess.run(program: TestDatabase.droverBinary.path, ["webhook", "list", "--org", "hooks"], environment: environment)
        #expect(listed.status == 0 && listed.stdout.contains(endpoint["id"]?.stringValue ?? "?") && !listed.stdout.contains("whsec_"), "\(listed.stdout)")
        let refused = try await DroverProcess.run(
            program: TestDatabase.droverBinary.path, ["webhook", "create", "--org", "hooks", "--url", "https://x.example", "--events", "session.exploded"],
            environment: environment)
        #expect(refused.status != 0 && refused.stderr.contains("session.exploded"), "\(refused.stderr)")
        try await database.drop()
    }

    /// A failing endpoint is given up and disabled with its reason; enabled again, it gets the
    /// next events (Tests/sdk/webhook_disable.py, with a give-up of 2 s).
    @Test func aFailingEndpointIsDisabledAndResumesWhenEnabled() async throws {
        let database = try await TestDatabase.create()
        let api = try await RunningAPI.start(
            database: database.conninfo,
            ["--allow-internal", "127.0.0.1/32", "--webhook-retry-base", "0.2", "--webhook-retry-cap", "0.5", "--webhook-give-up", "2"])
        let key = try await api.key(org: "failing")
        var failure: (any Error)?
        do {
            try await APIRig.python("Tests/sdk/webhook_disable.py", environment: ["DROVER_API_URL": "http://\(api.address)", "DROVER_KEY_A": key])
        } catch {
            failure = error
        }
        #expect(await api.stop() == 0)
        try await database.drop()
        if let failure { throw failure }
    }
}
