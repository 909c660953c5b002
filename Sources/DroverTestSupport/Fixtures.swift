import DroverCore
import DroverPostgres
import DroverStore
import Foundation

/// An agent and an environment to hang sessions on, plus shortcuts tests use often.
public struct Fixtures: Sendable {
    public let pool: ConnectionPool
    public let store: SessionStore
    public let queue: LeaseQueue
    public let agent: String
    public let environment: String

    public static func make(_ pool: ConnectionPool) async throws -> Fixtures {
        let store = SessionStore(pool: pool)
        let agent = try await store.createAgent(name: "test", model: "none")
        let environment = try await store.createEnvironment(name: "test")
        return Fixtures(pool: pool, store: store, queue: LeaseQueue(pool: pool), agent: agent, environment: environment)
    }

    /// A session; queued when `message` is given.
    public func session(message: String? = "hello", priority: Int = 0) async throws -> SessionID {
        try await store.createSession(
            agent: agent, environment: environment, firstMessage: message.map(JSONText.userMessage), priority: priority)
    }

    /// `count` queued sessions made in one statement (fast for large counts).
    public func queuedSessions(_ count: Int) async throws -> [SessionID] {
        try await pool.query(
            "SELECT drover.create_session($1, $2, '{\"content\":[]}', 0) FROM generate_series(1, $3)",
            [agent, environment, count]
        ).map { SessionID(try $0.decode(0)) }
    }

    /// Number of events stored for a session, counted directly in the table.
    public func eventCount(_ session: SessionID) async throws -> Int {
        try await pool.query("SELECT count(*) FROM drover.events WHERE session_id = $1", [session.rawValue])[0].decode(0)
    }
}

/// The outcome of an async call, for tests that expect some calls of a group to fail.
public func capture<T>(_ body: () async throws -> T) async -> Result<T, any Error> {
    do { return .success(try await body()) } catch { return .failure(error) }
}

extension Result {
    /// The error's Drover code, if this is a `DroverError` failure.
    public var droverCode: DroverError.Code? {
        if case .failure(let error) = self { return (error as? DroverError)?.code }
        return nil
    }
}
