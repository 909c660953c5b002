import DroverCLI
import DroverCore
import DroverStore

/// The payload of a user event from `--message TEXT` or `--payload JSON`.
private func userPayload(_ arguments: Arguments, required: Bool) throws -> String? {
    switch (arguments.value("message"), arguments.value("payload")) {
    case (let text?, nil): return JSONText.userMessage(text)
    case (nil, let json?): return json
    case (nil, nil):
        if required { throw UsageError("give --message TEXT or --payload JSON") }
        return nil
    default: throw UsageError("give --message or --payload, not both")
    }
}

struct SessionCreateCommand: Command {
    static let name = "session create"
    static let summary = "create a session, optionally with a first user message"
    static let help = """
        usage: drover session create --agent ID --environment ID [--message TEXT | --payload JSON]
                                     [--priority N] [--json]

        Creates a session pinned to the agent's latest version and prints its id. With a first
        message the session is queued at once for a harness to claim.

          --message TEXT   the first user.message, as one text block
          --payload JSON   the first user.message payload as a JSON object
          --priority N     higher runs first (default 0)
          --json           print the session as JSON
        """
    static let options: Set<String> = ["agent", "environment", "message", "payload", "priority"]
    static let flags: Set<String> = ["json"]

    static func run(_ arguments: Arguments) async throws {
        guard let agent = arguments.value("agent"), let environment = arguments.value("environment") else {
            throw UsageError("--agent and --environment are required")
        }
        let pool = try Environment.pool(maxConnections: 1)
        defer { pool.close() }
        let store = SessionStore(pool: pool)
        let id = try await store.createSession(
            agent: agent, environment: environment, firstMessage: try userPayload(arguments, required: false),
            priority: try arguments.int("priority") ?? 0)
        Output.line(arguments.has("json") ? Render.json(try await store.session(id)) : id.rawValue)
    }
}

struct SessionSendCommand: Command {
    static let name = "session send"
    static let summary = "send a user event (user.message, user.interrupt, …) to a session"
    static let help = """
        usage: drover session send SESSION [--type TYPE] (--message TEXT | --payload JSON)

        Appends a user-side event; no lease is needed. An idle session becomes queued. Prints the
        event's seq.

          --type TYPE      user.message (default), user.interrupt, user.tool_confirmation or
                           user.custom_tool_result
          --message TEXT   the payload as one text block (user.message)
          --payload JSON   the payload as a JSON object
        """
    static let options: Set<String> = ["type", "message", "payload"]

    static func run(_ arguments: Arguments) async throws {
        let session = SessionID(try arguments.positional(0, "SESSION"))
        let type = EventType(arguments.value("type") ?? EventType.userMessage.rawValue)
        let payload = type == .userInterrupt && arguments.value("message") == nil && arguments.value("payload") == nil
            ? "{}" : try userPayload(arguments, required: true)!
        let pool = try Environment.pool(maxConnections: 1)
        defer { pool.close() }
        Output.line(String(try await SessionStore(pool: pool).send(session, type: type, payload: payload).seq))
    }
}

struct SessionShowCommand: Command {
    static let name = "session show"
    static let summary = "show a session's status and lease"
    static let help = """
        usage: drover session show SESSION [--json]
        """
    static let flags: Set<String> = ["json"]

    static func run(_ arguments: Arguments) async throws {
        let pool = try Environment.pool(maxConnections: 1)
        defer { pool.close() }
        let session = try await SessionStore(pool: pool).session(SessionID(try arguments.positional(0, "SESSION")))
        if arguments.has("json") {
            Output.line(Render.json(session))
            return
        }
        Output.line("""
            session      \(session.id)
            status       \(session.status.rawValue)
            agent        \(session.agentID) v\(session.agentVersion)
            environment  \(session.environmentID)
            priority     \(session.priority)
            events       \(session.lastSeq)
            lease        \(session.leaseOwner.map { "\($0) epoch \(session.leaseEpoch) until \(Output.timestamp(session.leaseExpiresAt))" } ?? "none (epoch \(session.leaseEpoch))")
            created      \(Output.timestamp(session.createdAt))
            updated      \(Output.timestamp(session.updatedAt))
            """)
    }
}

struct SessionsCommand: Command {
    static let name = "sessions"
    static let summary = "list sessions, newest first"
    static let help = """
        usage: drover sessions [--status idle|queued|running|terminated] [--limit N] [--json]
        """
    static let options: Set<String> = ["status", "limit"]
    static let flags: Set<String> = ["json"]

    static func run(_ arguments: Arguments) async throws {
        let status = try arguments.value("status").map {
            guard let status = SessionStatus(rawValue: $0) else { throw UsageError("unknown status \($0)") }
            return status
        }
        let pool = try Environment.pool(maxConnections: 1)
        defer { pool.close() }
        let sessions = try await SessionStore(pool: pool).sessions(status: status, limit: try arguments.int("limit") ?? 100)
        if arguments.has("json") {
            sessions.forEach { Output.line(Render.json($0)) }
            return
        }
        Output.line(Output.table(
            ["SESSION", "STATUS", "PRIORITY", "EVENTS", "EPOCH", "OWNER", "UPDATED"],
            sessions.map {
                [$0.id.rawValue, $0.status.rawValue, String($0.priority), String($0.lastSeq), String($0.leaseEpoch),
                 $0.leaseOwner?.rawValue ?? "-", Output.timestamp($0.updatedAt)]
            }))
    }
}
