import DroverCore
import DroverStore
import DroverTestSupport
import Foundation
import Testing

/// The `drover` executable, run as a separate process against a real database.
@Suite struct CLITests {
    /// A command group's --help lists its commands (and the group alone says how to use it).
    @Test func commandGroupsListTheirCommands() async throws {
        for (group, members) in [("bench", ["bench queue", "bench sandbox", "bench harness"]), ("session", ["session create", "session send", "session show"]),
                                 ("agent", ["agent create"])] {
            let help = try await DroverProcess.run([group, "--help"], database: nil)
            #expect(help.status == 0, "\(group): \(help.stderr)")
            for member in members { #expect(help.stdout.contains(member), "\(group) --help lists \(member)") }
            let bare = try await DroverProcess.run([group], database: nil)
            #expect(bare.status == 2 && bare.stderr.contains(members[0]))
            let wrong = try await DroverProcess.run([group, "frobnicate"], database: nil)
            #expect(wrong.status == 2 && wrong.stderr.contains("unknown command") && wrong.stderr.contains(members[0]))
        }
    }

    @Test func twoConcurrentMigrationsThenARepeatApplyTheSchemaOnce() async throws {
        try await TestDatabase.with(migrated: false) { db in
            async let first = DroverProcess.run(["migrate"], database: db.conninfo)
            async let second = DroverProcess.run(["migrate"], database: db.conninfo)
            let results = try await [first, second]
            for result in results { #expect(result.status == 0, "\(result.stderr)") }
            let expected = try Migration.load(from: TestDatabase.migrationsDirectory).map(\.version)
            let applying = results.map { $0.stdout.components(separatedBy: "applying ").count - 1 }
            #expect(applying.reduce(0, +) == expected.count, "each migration applied by exactly one run: \(results.map(\.stdout))")

            let again = try await DroverProcess.run(["migrate"], database: db.conninfo)
            #expect(again.status == 0)
            #expect(again.stdout.contains("up to date"))

            let pool = db.pool(maxConnections: 1)
            defer { pool.close() }
            let versions: String? = try await pool.query("SELECT string_agg(version::text, ',' ORDER BY version) FROM drover.schema_migrations")[0][0]
            #expect(versions == expected.map(String.init).joined(separator: ","))
        }
    }

    @Test func sessionsAndEventsFromTheCommandLine() async throws {
        try await TestDatabase.with { db in
            func drover(_ args: String...) async throws -> ProcessResult {
                try await DroverProcess.run(args, database: db.conninfo)
            }
            let agent = try await drover("agent", "create", "--name", "cli", "--model", "m").stdout.trimmed
            let env = try await drover("environment", "create", "--name", "cli").stdout.trimmed
            let created = try await drover("session", "create", "--agent", agent, "--environment", env, "--message", "hi \"you\"")
            #expect(created.status == 0, "\(created.stderr)")
            let session = created.stdout.trimmed
            #expect(session.hasPrefix("sesn_"))
            #expect(try await drover("session", "send", session, "--message", "second").stdout.trimmed == "2")

            let events = try await drover("events", session, "--json")
            let lines = events.stdout.split(separator: "\n")
            #expect(lines.count == 2)
            let first = try #require(try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: Any])
            #expect(first["seq"] as? Int == 1)
            #expect(first["type"] as? String == "user.message")
            let content = (first["payload"] as? [String: Any])?["content"] as? [[String: String]]
            #expect(content?.first?["text"] == "hi \"you\"")
            let tail = try await drover("events", session, "--tail", "1", "--json")
            #expect(tail.stdout.contains("\"seq\":2"))

            let listed = try await drover("sessions", "--status", "queued", "--json")
            #expect(listed.stdout.contains(session))
            let shown = try await drover("session", "show", session)
            #expect(shown.stdout.contains("queued"))
            #expect(try await drover("leases", "--json").stdout.isEmpty)
        }
    }

    @Test func errorsHaveStableCodesAndExitStatuses() async throws {
        try await TestDatabase.with { db in
            func drover(_ args: String...) async throws -> ProcessResult {
                try await DroverProcess.run(args, database: db.conninfo)
            }
            let missing = try await drover("session", "send", "sesn_missing", "--message", "x")
            #expect(missing.status == 1)
            #expect(missing.stderr.hasPrefix("error: not_found:"))
            let badJSON = try await drover("session", "send", "sesn_missing", "--payload", "[1]")
            #expect(badJSON.status == 1)
            let usage = try await drover("events")
            #expect(usage.status == 2)
            #expect(usage.stderr.contains("missing SESSION"))
            let unknown = try await drover("events", "x", "--bogus")
            #expect(unknown.status == 2)
            #expect(unknown.stderr.contains("unknown option --bogus"))
            let noDatabase = try await DroverProcess.run(["sessions"], database: nil)
            #expect(noDatabase.status == 2)
            #expect(noDatabase.stderr.contains("DATABASE_URL"))
        }
    }

    @Test func everyCommandHasHelp() async throws {
        for command in ["migrate", "session create", "session send", "session show", "events", "sessions", "leases",
                        "agent create", "environment create", "demo", "bench queue"] {
            let result = try await DroverProcess.run(command.split(separator: " ").map(String.init) + ["--help"], database: nil)
            #expect(result.status == 0, "\(command)")
            #expect(result.stdout.hasPrefix("usage: drover \(command)"), "\(command): \(result.stdout)")
        }
        let top = try await DroverProcess.run(["--help"], database: nil)
        #expect(top.status == 0 && top.stdout.contains("commands:"))
    }
}

extension String {
    var trimmed: String { trimmingCharacters(in: .whitespacesAndNewlines) }
}
