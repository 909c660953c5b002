import DroverCore
import DroverIO
import Foundation
import Synchronization

/// Serves the sandbox pool protocol over TCP.
///
/// Each connection has a reader thread that frames lines (with a cap) and answers `hello` in
/// order; after it, every request runs as its own task and replies when done, so one slow
/// `execute` never holds up another request on the same connection. A bad line gets a coded
/// error and the connection keeps serving.
final class PoolServer: Sendable {
    struct Config: Sendable {
        var poolID: String
        var token: String
        var maxLineLength: Int
        /// Seconds a connection has, in all, to authenticate; a silent or slow one is closed.
        var helloDeadline: Double
        var maxConnections: Int
        /// Connections that have not said `hello` yet, at most; past it the oldest of them is
        /// closed, so a flood of silent connections never keeps a harness out.
        var maxUnauthenticated = 32
        var ceilings = ResourceCeilings()
    }

    let config: Config
    let pool: SandboxPool
    let listener: Listener
    let acceptor: ConnectionAcceptor
    let log: Log
    let metrics: PoolMetrics

    private struct State {
        var inFlight = 0
        var served = 0
        var protocolErrors: [String: Int] = [:]
        /// Connections still without a successful `hello`, in the order they were accepted.
        var unauthenticated: [Socket] = []
    }

    private let state = Mutex(State())

    init(config: Config, pool: SandboxPool, listener: Listener, log: Log, metrics: PoolMetrics) {
        acceptor = ConnectionAcceptor(listener: listener, name: "drover.pool", maxConnections: config.maxConnections)
        self.metrics = metrics
        self.config = config
        self.pool = pool
        self.listener = listener
        self.log = log
    }

    func start() {
        acceptor.start(refuse: { [self] socket in
            reply(socket, PoolProtocol.failure(id: .null, PoolProtocol.Failure(
                .tooManyConnections, "this pool serves at most \(config.maxConnections) connections")))
        }, admitted: { [self] socket in admitUnauthenticated(socket) }, serve: { [self] socket in serve(socket) })
    }

    /// Stops accepting new connections.
    func stopAccepting() { acceptor.stopAccepting() }

    /// Requests being handled right now.
    var inFlight: Int { state.withLock { $0.inFlight } }

    var connectionCount: Int { acceptor.count }

    /// Closes every connection (readers wake with end of stream).
    func closeConnections() {
        acceptor.shutdownAll()
    }

    // MARK: - One connection

    private func serve(_ socket: Socket) {
        var framer = LineFramer(maxLineLength: config.maxLineLength)
        var buffer = [UInt8](repeating: 0, count: 65_536)
        var authenticated = false
        let opened = ContinuousClock.now
        // Until `hello`, reads wake every second to enforce the deadline, which counts from the
        // connection's start: a client that drips a byte now and then cannot extend it.
        socket.setReadTimeout(min(1, config.helloDeadline))
        log.debug("connection opened", ("fd", .number(Double(socket.fd))))
        // Provisions still being handled when the client goes: cancelled (one waiting in line
        // leaves it), and a sandbox made for no one is destroyed (`answer`).
        let handling = Handling()
        var nextRequest: UInt64 = 0
        defer {
            forgetUnauthenticated(socket)
            for task in handling.tasks.withLock({ Array($0.values) }) { task.cancel() }
            log.debug("connection closed", ("fd", .number(Double(socket.fd))))
        }
        while true {
            if !authenticated && ContinuousClock.now - opened > .seconds(config.helloDeadline) {
                reply(socket, PoolProtocol.failure(id: .null, PoolProtocol.Failure(
                    .unauthorized, "no successful hello within \(config.helloDeadline) s: closing")))
                return
            }
            let count: Int
            switch socket.receive(into: &buffer) {
            case .timedOut: continue
            case .closed: return
            case .bytes(let received): count = received
            }
            for frame in framer.feed(buffer[0..<count]) {
                switch frame {
                case .tooLong:
                    reply(socket, PoolProtocol.failure(id: .null, PoolProtocol.Failure(
                        .lineTooLong, "a line may be at most \(config.maxLineLength) bytes; the rest of it was discarded")))
                case .line(let bytes):
                    if bytes.allSatisfy({ $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }) { continue }
                    switch PoolProtocol.Request.parse(bytes) {
                    case .failure(let rejected):
                        reply(socket, PoolProtocol.failure(id: rejected.id, rejected.failure))
                    case .success(let request):
                        if request.op == "hello" {
                            let answer = hello(request)
                            if case .success = answer, !authenticated {
                                authenticated = true
                                forgetUnauthenticated(socket)
                                socket.setReadTimeout(nil)
                            }
                            reply(socket, render(request.id, answer))
                        } else if !authenticated {
                            reply(socket, PoolProtocol.failure(id: request.id, PoolProtocol.Failure(
                                .unauthorized, "send {\"op\":\"hello\",\"version\":\(PoolProtocol.version),\"token\":…} first")))
                        } else {
                            state.withLock { $0.inFlight += 1 }
                            nextRequest += 1
                            let key = nextRequest
                            handling.tasks.withLock { tasks in
                                let task = Task {
                                    await answer(request, on: socket)
                                    _ = handling.tasks.withLock { $0.removeValue(forKey: key) }
                                    state.withLock {
                                        $0.inFlight -= 1
                                        $0.served += 1
                                    }
                                }
                                // Only a provision is given up with its client: a call runs on, so
                                // that the harness that resumes the session gets its one result.
                                if request.op == "provision" { tasks[key] = task }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Counts a new connection against the unauthenticated budget, on the accept thread (so that
    /// "oldest" is the order of arrival, not of thread scheduling); when the budget is full, the
    /// oldest unauthenticated connection is told why and closed (its reader wakes at end of stream).
    private func admitUnauthenticated(_ socket: Socket) {
        let evicted = state.withLock { state -> Socket? in
            state.unauthenticated.append(socket)
            guard state.unauthenticated.count > config.maxUnauthenticated else { return nil }
            return state.unauthenticated.removeFirst()
        }
        if let evicted {
            metrics.protocolErrors.inc(["code": "unauthenticated_evicted"])
            reply(evicted, PoolProtocol.failure(id: .null, PoolProtocol.Failure(
                .unauthorized, "closed: \(config.maxUnauthenticated) newer connections are waiting to authenticate")))
            evicted.shutdown()
        }
    }

    private func forgetUnauthenticated(_ socket: Socket) {
        state.withLock { $0.unauthenticated.removeAll { $0 === socket } }
    }

    /// One connection's requests in flight, by arrival.
    private final class Handling: Sendable {
        let tasks = Mutex<[UInt64: Task<Void, Never>]>([:])
    }

    /// Handles one request and replies; a sandbox provisioned for a client that is gone by then is
    /// destroyed, so a dead harness's provision holds no slot.
    private func answer(_ request: PoolProtocol.Request, on socket: Socket) async {
        let answer = await handle(request)
        let delivered = reply(socket, render(request.id, answer))
        if !delivered, request.op == "provision", case .success(let result) = answer, let sandbox = result["sandbox"]?.stringValue {
            log.info("sandbox destroyed: its client went away before the answer", ("sandbox", .string(sandbox)))
            try? await pool.destroy(sandbox)
        }
    }

    @discardableResult
    private func reply(_ socket: Socket, _ line: String) -> Bool {
        do {
            try socket.send(line: line)
            return true
        } catch {
            log.debug("reply not delivered", ("error", .string("\(error)")))
            return false
        }
    }

    private func render(_ id: JSONValue, _ answer: Result<JSONValue, PoolProtocol.Failure>) -> String {
        switch answer {
        case .success(let result):
            let line = PoolProtocol.success(id: id, result)
            guard line.utf8.count > PoolProtocol.maxReplyLength else { return line }
            // A client reads no longer line: it would drop this reply and wait until its deadline.
            return render(id, .failure(PoolProtocol.Failure(
                .replyTooLarge, "the reply (\(line.utf8.count) bytes) exceeds \(PoolProtocol.maxReplyLength) bytes; ask for less output (output_bytes)")))
        case .failure(let failure):
            state.withLock { $0.protocolErrors[failure.code.rawValue, default: 0] += 1 }
            metrics.protocolErrors.inc(["code": failure.code.rawValue])
            return PoolProtocol.failure(id: id, failure)
        }
    }

    private func hello(_ request: PoolProtocol.Request) -> Result<JSONValue, PoolProtocol.Failure> {
        guard request.body["version"]?.intValue == PoolProtocol.version else {
            return .failure(PoolProtocol.Failure(.unauthorized, "this pool speaks protocol version \(PoolProtocol.version)"))
        }
        guard let token = request.body["token"]?.stringValue, Self.constantTimeEqual(token, config.token) else {
            log.warning("hello with a wrong token")
            return .failure(PoolProtocol.Failure(.unauthorized, "wrong token"))
        }
        return .success(["version": .number(Double(PoolProtocol.version)), "pool": .string(config.poolID)])
    }

    // MARK: - Operations

    /// The longest a provision may wait in line for room (`wait_s`).
    static let maxWait: Double = 3600

    private func handle(_ request: PoolProtocol.Request) async -> Result<JSONValue, PoolProtocol.Failure> {
        let knownOps: Set = ["ping", "provision", "execute", "cancel", "destroy", "list", "stats", "session_files", "put_file", "remove_file", "get_output", "put_memory", "get_memory", "memory_synced"]
        metrics.requests.inc(["op": knownOps.contains(request.op) ? request.op : "unknown"])
        do {
            switch request.op {
            case "ping":
                return .success(["pong": true])
            case "provision":
                if let violation = config.ceilings.violation(in: request.body["resources"]) {
                    throw PoolProtocol.Failure(.resourcesAboveCeiling, violation)
                }
                let resources = try SandboxResources(json: request.body["resources"])
                let session = try request.optionalString("session")
                let network = try SandboxNetwork.parse(
                    networking: request.body["networking"], repositories: request.body["repositories"],
                    packageHosts: pool.layers?.hosts ?? NetworkPolicy.packageManagerHosts)
                let packages: PackageSet
                do {
                    packages = try PackageSet(json: request.body["packages"])
                } catch {
                    throw PoolProtocol.Failure(.badRequest, error.message)
                }
                let wait = request.body["wait_s"]?.doubleValue ?? 0
                guard wait >= 0, wait <= Self.maxWait else {
                    throw PoolProtocol.Failure(.badRequest, "wait_s must be between 0 and \(Int(Self.maxWait))")
                }
                let sandbox = try await pool.provision(resources, session: session, network: network, packages: packages, wait: wait)
                log.info("sandbox provisioned", ("sandbox", .string(sandbox.id)), ("session", session.map(JSONValue.string) ?? .null))
                return .success(["sandbox": .string(sandbox.id), "resources": resources.json])
            case "execute":
                // The request's shape first, then the lookups.
                let sandboxID = try request.string("sandbox")
                let callID = try request.string("call_id")
                let name = try request.string("name")
                let sandbox = try pool.sandbox(sandboxID)
                let input = request.body["input"] ?? .object([:])
                let tools = pool.tools
                let started = ContinuousClock.now
                let ran = Mutex(false)
                let outcome = await sandbox.once(callID) {
                    ran.withLock { $0 = true }
                    return await tools.run(name, input: input, in: sandbox, callID: callID)
                }
                pool.callEnded()
                let tool = Tools.names.contains(name) ? name : "unknown"
                let result = ran.withLock { $0 } ? ((try? outcome.get()).map { $0["is_error"]?.boolValue == true ? "is_error" : "ok" } ?? "failed") : "repeated"
                metrics.toolCalls.inc(["tool": tool, "outcome": result])
                if result != "repeated" { metrics.toolSeconds.observe((ContinuousClock.now - started) / .seconds(1), ["tool": tool]) }
                log.info(
                    "tool call", ("sandbox", .string(sandbox.id)), ("session", sandbox.session.map(JSONValue.string) ?? .null),
                    ("call_id", .string(callID)), ("tool", .string(name)),
                    ("outcome", .string((try? outcome.get()).map { $0["is_error"]?.boolValue == true ? "is_error" : "ok" } ?? "failed")),
                    ("ms", .number(((ContinuousClock.now - started) / .milliseconds(1)).rounded())))
                return outcome
            case "cancel":
                // Kills a running call's whole process tree; its execute then answers with what
                // the process left (killed), as does any repeat of the same call_id.
                let sandboxID = try request.string("sandbox")
                let callID = try request.string("call_id")
                _ = try pool.sandbox(sandboxID)
                let killed = pool.cancel(sandbox: sandboxID, callID: callID)
                log.info("call cancelled", ("sandbox", .string(sandboxID)), ("call_id", .string(callID)), ("running", .bool(killed)))
                return .success(["cancelled": .bool(killed)])
            // A session's files (SessionFiles): what is mounted and what the outputs folder holds,
            // an upload's chunks, its removal, and an output's bytes.
            case "session_files":
                return .success(try pool.sandbox(try request.string("sandbox")).workspace.files.listing)
            case "put_file":
                let sandbox = try pool.sandbox(try request.string("sandbox"))
                guard let offset = request.body["offset"]?.intValue, offset >= 0,
                      let data = request.body["data_base64"]?.stringValue, let bytes = Data(base64Encoded: data) else {
                    throw PoolProtocol.Failure(.badRequest, "put_file needs offset (0 or more) and data_base64")
                }
                try sandbox.workspace.files.put(
                    fileID: try request.string("file_id"), mountPath: try request.string("mount_path"), offset: offset, bytes: Array(bytes),
                    last: request.body["last"]?.boolValue ?? false)
                return .success(["written": .number(Double(bytes.count))])
            case "remove_file":
                try pool.sandbox(try request.string("sandbox")).workspace.files.remove(fileID: try request.string("file_id"))
                return .success(["removed": true])
            case "get_output":
                let bytes = try pool.sandbox(try request.string("sandbox")).workspace.files.output(try request.string("name"))
                return .success(["data_base64": .string(Data(bytes).base64EncodedString())])
            case "put_memory":
                let sandbox = try pool.sandbox(try request.string("sandbox"))
                guard case .array(let items)? = request.body["files"] else { throw PoolProtocol.Failure(.badRequest, "put_memory needs files (an array)") }
                let files = try items.map { item -> (path: String, bytes: [UInt8], sha256: String?) in
                    guard let path = item["path"]?.stringValue, let data = item["data_base64"]?.stringValue.flatMap({ Data(base64Encoded: $0) }) else {
                        throw PoolProtocol.Failure(.badRequest, "each memory file needs path and data_base64")
                    }
                    return (path, Array(data), item["sha256"]?.stringValue)
                }
                try sandbox.workspace.files.putMemory(
                    storeID: try request.string("memory_store_id"), mountPath: try request.string("mount_path"),
                    readOnly: request.body["read_only"]?.boolValue ?? false, files: files, reset: request.body["reset"]?.boolValue ?? false)
                return .success(["written": .number(Double(files.count))])
            case "get_memory":
                return .success(try pool.sandbox(try request.string("sandbox")).workspace.files.memoryChanges(storeID: try request.string("memory_store_id")))
            case "memory_synced":
                let files = try pool.sandbox(try request.string("sandbox")).workspace.files
                var base: SessionFiles.MemoryBase?
                if request.body["deleted"]?.boolValue != true {
                    guard let data = request.body["data_base64"]?.stringValue.flatMap({ Data(base64Encoded: $0) }) else {
                        throw PoolProtocol.Failure(.badRequest, "memory_synced needs data_base64 (or deleted: true)")
                    }
                    base = SessionFiles.MemoryBase(sha256: request.body["sha256"]?.stringValue, bytes: Array(data))
                }
                try files.memorySynced(storeID: try request.string("memory_store_id"), path: try request.string("path"), base)
                return .success(["recorded": true])
            case "destroy":
                let id = try request.string("sandbox")
                try await pool.destroy(id)
                return .success(["destroyed": .string(id)])
            case "list":
                return .success(["sandboxes": .array(pool.all.map(\.json))])
            case "stats":
                var stats = pool.stats
                let connections = acceptor.count
                let (served, errors) = state.withLock { ($0.served, $0.protocolErrors) }
                if case .object(var members) = stats {
                    members["pool"] = .string(config.poolID)
                    members["connections"] = .number(Double(connections))
                    members["requests_served"] = .number(Double(served))
                    members["protocol_errors"] = .object(errors.mapValues { .number(Double($0)) })
                    stats = .object(members)
                }
                return .success(stats)
            default:
                throw PoolProtocol.Failure(
                    .unknownOp, "unknown op \(request.op); the ops are hello, provision, execute, cancel, destroy, list, stats, ping")
            }
        } catch let failure as PoolProtocol.Failure {
            return .failure(failure)
        } catch {
            return .failure(PoolProtocol.Failure(.internal, "\(error)"))
        }
    }

    private static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let (x, y) = (Array(a.utf8), Array(b.utf8))
        var difference = UInt8(x.count == y.count ? 0 : 1)
        for i in 0..<max(x.count, y.count) { difference |= (i < x.count ? x[i] : 0) ^ (i < y.count ? y[i] : 0) }
        return difference == 0
    }
}
