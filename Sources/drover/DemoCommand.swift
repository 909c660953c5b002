import DroverCore
import DroverPostgres
import DroverStore
import Foundation

/// The foundation walk-through: the log, the queue, leases and fencing, on a real database.
/// No model is involved yet; the agent-side events are written by this command and say so.
struct DemoCommand: Command {
    static let name = "demo"
    static let summary = "walk through the session log and lease queue on DATABASE_URL"
    static let help = """
        usage: drover demo

        Migrates DATABASE_URL, creates an agent, an environment and three sessions, claims them as a
        demo harness, appends events under the lease, shows the event log and the lease table, and
        shows fencing: a lease that expired and was taken over cannot write any more.
        """

    static func run(_ arguments: Arguments) async throws {
        guard let directory = Migration.defaultDirectory() else { throw UsageError("no migrations folder found") }
        let pool = try Environment.pool()
        defer { pool.close() }
        let store = SessionStore(pool: pool)
        let queue = LeaseQueue(pool: pool)

        step("migrate")
        let applied = try await Migrator(pool: pool).migrate(try Migration.load(from: directory))
        Output.line("applied migrations: \(applied.isEmpty ? "none pending" : applied.map(String.init).joined(separator: ", "))")

        step("create an agent, an environment and three sessions")
        let agent = try await store.createAgent(name: "demo", model: "scripted-none", systemPrompt: "You are a demo.")
        let environment = try await store.createEnvironment(name: "demo", configJSON: #"{"networking":"none"}"#)
        var sessions: [SessionID] = []
        for (index, text) in ["Write hello.py", "Count the lines in /etc/os-release", "Say hi"].enumerated() {
            sessions.append(try await store.createSession(
                agent: agent, environment: environment, firstMessage: JSONText.userMessage(text), priority: index == 2 ? 5 : 0))
        }
        try await showSessions(store)

        step("a harness claims two sessions (highest priority first)")
        let harness = HarnessID.fresh(prefix: "demo")
        let leases = try await queue.claim(max: 2, owner: harness, ttl: 30)
        for lease in leases { Output.line("claimed \(lease.sessionID) epoch \(lease.epoch)") }
        Output.line(Render.leaseTable(try await LeaseView.all(in: pool)))

        step("the harness appends events under its lease, then releases")
        let lease = leases[0]
        try await store.append(lease, type: .sessionStatusRunning, payload: "{}")
        try await store.append(lease, type: .agentMessage, payload: JSONText.object([
            ("content", #"[{"type":"text","text":"(written by drover demo; no model in this step)"}]"#)]))
        try await store.append(lease, type: .sessionStatusIdle, payload: #"{"stop_reason":{"type":"end_turn"}}"#)
        let status = try await queue.release(lease, handledThrough: lease.lastSeq)
        Output.line("released \(lease.sessionID) → \(status.rawValue)")
        for event in try await store.events(lease.sessionID) { Output.line(Render.eventLine(event)) }

        step("fencing: a lease that expires and is taken over can no longer write")
        let slow = HarnessID.fresh(prefix: "demo-slow")
        let fast = HarnessID.fresh(prefix: "demo-fast")
        try await queue.release(leases[1], handledThrough: leases[1].lastSeq)
        try await store.send(leases[1].sessionID, type: .userMessage, payload: JSONText.userMessage("one more thing"))
        guard let stale = try await queue.claim(max: 1, owner: slow, ttl: 0.5).first(where: { $0.sessionID == leases[1].sessionID })
            ?? nil else { throw DroverError(.notFound, "the demo session was not claimable") }
        Output.line("\(slow) holds \(stale.sessionID) at epoch \(stale.epoch) with a 0.5 s TTL and stops heartbeating")
        try await Task.sleep(for: .milliseconds(700))
        let taken = try await queue.claim(max: 3, owner: fast, ttl: 30)
        for lease in taken { Output.line("\(fast) claimed \(lease.sessionID) at epoch \(lease.epoch)") }
        do {
            try await store.append(stale, type: .agentMessage, payload: #"{"content":[]}"#)
            Output.line("UNEXPECTED: the stale holder could write")
        } catch let error as DroverError {
            Output.line("the stale holder's append was refused: \(error.code): \(error.message)")
        }
        Output.line(Render.leaseTable(try await LeaseView.all(in: pool)))
        for lease in taken { try await queue.release(lease, handledThrough: lease.lastSeq) }

        step("final state")
        try await showSessions(store)
    }

    private static func step(_ title: String) {
        Output.line("\n== \(title)")
    }

    private static func showSessions(_ store: SessionStore) async throws {
        let sessions = try await store.sessions()
        Output.line(Output.table(
            ["SESSION", "STATUS", "PRIORITY", "EVENTS", "EPOCH"],
            sessions.map { [$0.id.rawValue, $0.status.rawValue, String($0.priority), String($0.lastSeq), String($0.leaseEpoch)] }))
    }
}
