import DroverCLI
import DroverCore
import DroverStore
import Foundation

struct VerifyCommand: Command {
    static let name = "verify"
    static let summary = "check every session against Drover's invariants"
    static let help = """
        usage: drover verify [--rescue-window SECONDS] [--json]

        Checks every session in DATABASE_URL and exits 1 on any breach:
          contiguous_seq       seq is 1…last_seq with no gap or duplicate
          epoch_order          a session's writer epochs never go backwards
          epoch_in_force       every event was written under the lease epoch in force then (no
                               write after a newer lease was granted; no epoch never granted)
          tool_result_per_use  every agent.tool_use has exactly one agent.tool_result, except the
                               latest ones of a session still in flight
          user_event_seen      every user.message of an idle session precedes a model request
          no_stale_running     no session is running under a lease expired longer ago than
                               --rescue-window (default 60 s)
          final_status         idle sessions end on session.status_idle; terminated ones not on
                               session.status_running
        Prints each breach with session and seq, then a summary line. --json prints one object.
        """
    static let options: Set<String> = ["rescue-window"]
    static let flags: Set<String> = ["json"]

    static func run(_ arguments: Arguments) async throws {
        let pool = try Environment.pool(maxConnections: 1)
        defer { pool.close() }
        let report = try await Verifier(pool: pool).run(rescueWindow: try arguments.double("rescue-window") ?? 60)
        if arguments.has("json") {
            Output.line(JSONValue.object([
                "sessions": .number(Double(report.sessions)), "events": .number(Double(report.events)),
                "ok": .bool(report.breaches.isEmpty),
                "breaches": .array(report.breaches.map {
                    ["check": .string($0.check), "session": .string($0.session), "seq": $0.seq.map { .number(Double($0)) } ?? .null,
                     "detail": .string($0.detail)]
                }),
            ]).text)
        } else {
            for breach in report.breaches {
                Output.line("breach \(breach.check) session \(breach.session)\(breach.seq.map { " seq \($0)" } ?? ""): \(breach.detail)")
            }
            Output.line("verify: \(report.sessions) sessions, \(report.events) events, \(report.breaches.count) breaches")
        }
        if !report.breaches.isEmpty { exit(1) }
    }
}
