import DroverCore
import DroverIO
import DroverModel
import DroverScriptedModel
import DroverPostgres
import DroverStore
import Foundation
import Synchronization

/// Everything a harness test needs, for real: its own database, a `drover sandbox-pool` process,
/// the scripted model server (HTTP on loopback), and `drover harness` processes.
public final class HarnessCluster: Sendable {
    public let database: TestDatabase
    public let sql: ConnectionPool
    public let store: SessionStore
    public let pool: RunningPool
    public let model: ScriptedModelServer
    public let agent: String
    public let environment: String
    public let apiKey: String
    private let harnesses = Mutex<[ChildDaemon]>([])

    /// `server`: a Postgres server URL other than `DATABASE_URL`'s (a test's own server).
    public static func start(script: JSONValue, harnesses: Int = 1, harnessArgs: [String] = [], poolArgs: [String] = [],
                             apiKey: String = "sk-test-key", server: String? = nil) async throws -> HarnessCluster {
        let database = try await TestDatabase.create(on: server)
        let sql = database.pool(maxConnections: 4)
        let store = SessionStore(pool: sql)
        let pool = try await RunningPool.start(["--warm", "0", "--grace", "1"] + poolArgs, environment: ["DATABASE_URL": database.conninfo])
        let model = try ScriptedModelServer(
            script: try ModelScript.load(script), host: "127.0.0.1", port: 0, log: Log(component: "scripted-model", minimum: .error))
        model.start()
        let agent = try await store.createAgent(name: "test", model: "scripted", systemPrompt: "test")
        let environment = try await store.createEnvironment(name: "test", configJSON: #"{"resources":{"timeout_s":60}}"#)
        let cluster = HarnessCluster(
            database: database, sql: sql, store: store, pool: pool, model: model, agent: agent, environment: environment, apiKey: apiKey)
        for _ in 0..<harnesses { _ = try await cluster.startHarness(harnessArgs) }
        return cluster
    }

    private init(database: TestDatabase, sql: ConnectionPool, store: SessionStore, pool: RunningPool, model: ScriptedModelServer,
                 agent: String, environment: String, apiKey: String) {
        self.database = database
        self.sql = sql
        self.store = store
        self.pool = pool
        self.model = model
        self.agent = agent
        self.environment = environment
        self.apiKey = apiKey
    }

    public var modelURL: String { "http://127.0.0.1:\(model.listener.port)" }

    /// Starts one more harness process (lease TTL 2 s and a 0.2 s poll unless `args` says otherwise).
    @discardableResult
    public func startHarness(_ args: [String] = []) async throws -> ChildDaemon {
        var arguments = ["harness", "--model-url", modelURL]
        if !args.contains("--poll-interval") { arguments += ["--poll-interval", "0.2"] }
        if !args.contains("--lease-ttl") { arguments += ["--lease-ttl", "2"] }
        let harness = try ChildDaemon(
            binary: TestDatabase.droverBinary.path, arguments + args,
            environment: ["DATABASE_URL": database.conninfo, "DROVER_POOL_TOKEN": pool.token, "ANTHROPIC_API_KEY": apiKey, "OPENAI_API_KEY": apiKey,
                          "DROVER_VAULT_KEY": TestDatabase.vaultKey])
        _ = try await harness.waitForLog("started")
        harnesses.withLock { $0.append(harness) }
        return harness
    }

    public var harnessProcesses: [ChildDaemon] { harnesses.withLock { $0 } }

    /// The harness process that holds the session's lease now, if one of ours does.
    public func holder(of session: SessionID) async throws -> ChildDaemon? {
        guard let owner = try await store.session(session).leaseOwner?.rawValue else { return nil }
        return harnesses.withLock { $0.first { owner.contains("_\($0.pid)_") } }
    }

    /// A queued session whose first message is `text`.
    public func session(_ text: String) async throws -> SessionID {
        try await store.createSession(agent: agent, environment: environment, firstMessage: JSONText.userMessage(text))
    }

    public func events(_ session: SessionID) async throws -> [Event] {
        try await store.events(session, limit: 10_000)
    }

    /// Waits until an event matching `predicate` is in the log; returns it.
    @discardableResult
    public func waitForEvent(_ session: SessionID, timeout: Double = 30, _ predicate: (Event) -> Bool) async throws -> Event {
        let deadline = ContinuousClock.now + .seconds(timeout)
        while ContinuousClock.now < deadline {
            if let event = try await events(session).first(where: predicate) { return event }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw DroverError(.invalidArgument, "no matching event within \(timeout) s; log:\n" + (try await events(session)).map { "\($0.seq) \($0.type) \($0.payload)" }.joined(separator: "\n"))
    }

    /// Waits for `session.status_idle` and returns the stop reason and the whole log.
    public func waitForIdle(_ session: SessionID, timeout: Double = 30) async throws -> (stopReason: String, events: [Event]) {
        let idle = try await waitForEvent(session, timeout: timeout) { $0.type == .sessionStatusIdle }
        let reason = StopReason.name(of: (try? JSONValue.parse(idle.payload))?["stop_reason"]) ?? ""
        let log = try await events(session)
        if reason == "error" {
            // Say why, so that a failing test explains itself.
            for event in log where event.type == .sessionError { FileHandle.standardError.write(Data("session.error in \(session): \(event.payload)\n".utf8)) }
        }
        return (reason, log)
    }

    /// Stops every process and drops the database.
    public func stop() async {
        for harness in harnesses.withLock({ $0 }) where harness.isRunning {
            harness.signal(SIGCONT)
            harness.signal(SIGTERM)
        }
        for harness in harnesses.withLock({ $0 }) { _ = await harness.wait(timeout: 15) }
        await pool.stop()
        model.stop()
        sql.close()
        try? await database.drop()
    }
}

extension Event {
    /// The payload parsed (tests only).
    public var json: JSONValue { (try? JSONValue.parse(payload)) ?? .null }
}
