import DroverCLI
import DroverCore
import DroverStore
import Foundation

struct EnvironmentKeyCreateCommand: Command {
    static let name = "environment-key create"
    static let summary = "create a self-hosted environment's worker key (printed once)"
    static let help = """
        usage: drover environment-key create --environment ENV [--org NAME] [--json]

        Creates a key for the workers of a self_hosted environment: the SDK's EnvironmentWorker
        polls with it (environment_key=…). It authenticates that environment's work endpoints and
        its sessions' events, nothing else. Printed once; only its SHA-256 is stored. Revoke it with
        `drover environment-key revoke`.

          --environment ENV   the environment (config.type self_hosted)
          --org NAME          refuse unless the environment is this organisation's
          --json              {"id", "key", "environment"} instead of the key alone
        """
    static let options: Set<String> = ["environment", "org"]
    static let flags: Set<String> = ["json"]

    static func run(_ arguments: Arguments) async throws {
        guard let environment = arguments.value("environment"), !environment.isEmpty else { throw UsageError("--environment ENV is required") }
        let pool = try Environment.pool(maxConnections: 1)
        defer { pool.close() }
        let made = try await WorkQueue(pool: pool).createEnvironmentKey(environment: environment, org: arguments.value("org"))
        if arguments.has("json") {
            Output.line(JSONValue.object(["id": .string(made.id), "key": .string(made.secret), "environment": .string(environment)]).text)
        } else {
            Output.line(made.secret)
        }
    }
}

struct EnvironmentKeyRevokeCommand: Command {
    static let name = "environment-key revoke"
    static let summary = "revoke a self-hosted environment's worker key"
    static let help = """
        usage: drover environment-key revoke KEY_ID

        Revokes the key (its id, ekey_…, from `environment-key create --json`): its next request
        gets 401. Items its workers hold keep their sessions tokens until they stop.
        """

    static func run(_ arguments: Arguments) async throws {
        guard let id = arguments.positionals.first, arguments.positionals.count == 1 else { throw UsageError("KEY_ID is required") }
        let pool = try Environment.pool(maxConnections: 1)
        defer { pool.close() }
        try await WorkQueue(pool: pool).revokeEnvironmentKey(id: id)
        Output.line("revoked \(id)")
    }
}

struct WorkCommand: Command {
    static let name = "work"
    static let summary = "show self-hosted environments' work items and queues"
    static let help = """
        usage: drover work [--watch] [--interval SECONDS] [--json]

        Lists the work items of self_hosted environments that are live or stopped in the last ten
        minutes (the drover.work_status view): item, session, state, worker, lease age and time
        until its lease runs out, reclaims; then each environment's queue: depth (waiting),
        pending (polled, not acknowledged), leased, stopping, and workers polling in the last 30 s
        (drover.work_queue_stats). The same data as GET /v1/fleet/work.

          --watch     redraw every --interval seconds (default 1) until Ctrl-C
          --json      {"data": [...items], "queues": [...]} on one line
        """
    static let options: Set<String> = ["interval"]
    static let flags: Set<String> = ["watch", "json"]

    static func run(_ arguments: Arguments) async throws {
        try await Watching.run(arguments, title: "drover work") { pool in
            let fleet = try await WorkQueue(pool: pool).fleet()
            return arguments.has("json") ? fleet.text : table(fleet)
        }
    }

    static func table(_ fleet: JSONValue) -> String {
        func text(_ value: JSONValue?) -> String {
            switch value {
            case .string(let text)?: text
            case .number(let number)?: number == number.rounded() ? String(Int(number)) : String(format: "%.1f", number)
            case .bool(let flag)?: flag ? "yes" : "no"
            default: "-"
            }
        }
        guard case .array(let items)? = fleet["data"], case .array(let queues)? = fleet["queues"] else { return "" }
        let itemTable = items.isEmpty ? "no work items" : Output.table(
            ["WORK", "ENVIRONMENT", "SESSION", "STATE", "PENDING", "WORKER", "LEASE AGE", "EXPIRES IN", "RECLAIMS"],
            items.map { item in
                [text(item["id"]), text(item["environment_id"]), text(item["session_id"]), text(item["state"]), text(item["pending"]),
                 text(item["worker_id"]), text(item["lease_age_s"]), text(item["expires_in_s"]), text(item["reclaims"])]
            })
        let queueTable = queues.isEmpty ? "no self_hosted environments" : Output.table(
            ["ENVIRONMENT", "NAME", "DEPTH", "PENDING", "LEASED", "STOPPING", "OLDEST QUEUED", "WORKERS POLLING"],
            queues.map { queue in
                [text(queue["environment_id"]), text(queue["name"]), text(queue["depth"]), text(queue["pending"]), text(queue["leased"]),
                 text(queue["stopping"]), text(queue["oldest_queued_at"]), text(queue["workers_polling"])]
            })
        return itemTable + "\n\n" + queueTable
    }
}
