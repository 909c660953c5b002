import CDroverSys
import DroverCore
import DroverIO
import Foundation
import Synchronization

/// Serves the sandbox pool protocol over TCP, on one event loop (epoll): every connection is a
/// non-blocking socket the loop owns, not a thread. Lines are framed with a cap; `hello` is
/// answered in order on the loop; after it, every request runs as its own task and its reply
/// comes back to the loop, so one slow `execute` never holds up another request, and a client
/// that stops reading a large reply holds up nothing but its own connection. A bad line gets a
/// coded error and the connection keeps serving.
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
    let log: Log
    let metrics: PoolMetrics
    let loop: EventLoop

    private struct State {
        var inFlight = 0
        var served = 0
        var protocolErrors: [String: Int] = [:]
        var connections = 0
        var accepting = false
    }

    private let state = Mutex(State())
    /// Loop-confined: the connections, and those still without a successful `hello`, in the
    /// order they were accepted.
    private let table = PoolConnections()

    init(config: Config, pool: SandboxPool, listener: Listener, log: Log, metrics: PoolMetrics) throws {
        self.metrics = metrics
        self.config = config
        self.pool = pool
        self.listener = listener
        self.log = log
        loop = try EventLoop(name: "drover.pool")
    }

    func start() {
        state.withLock { $0.accepting = true }
        loop.start()
        loop.execute { [self] in
            _ = drover_set_nonblocking(listener.fd)
            loop.register(listener.fd, .readable) { [self] _ in acceptAll() }
            loop.every(.milliseconds(250)) { [self] in checkDeadlines() }
        }
    }

    /// Stops accepting new connections (returns once the listener is closed).
    func stopAccepting() async {
        guard state.withLock({ state -> Bool in defer { state.accepting = false }; return state.accepting }) else { return }
        await onLoop { [self] in
            loop.unregister(listener.fd)
            listener.close()
        }
    }

    /// Requests being handled right now.
    var inFlight: Int { state.withLock { $0.inFlight } }

    var connectionCount: Int { state.withLock { $0.connections } }

    /// Closes every connection, then ends the loop.
    func closeConnections() async {
        await onLoop { [self] in
            for connection in Array(table.connections.values) { connection.close() }
        }
        await loop.stop()
    }

    /// Runs `work` on the loop and resumes once it has run (suspended, never blocking a thread).
    private func onLoop(_ work: @escaping @Sendable () -> Void) async {
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            loop.execute {
                work()
                done.resume()
            }
        }
    }

    // MARK: - On the loop

    private func acceptAll() {
        while true {
            let fd = drover_accept_nonblock(listener.fd)
            if fd < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                return  // EAGAIN (none left), or EMFILE: the next readiness tries again
            }
            let socket = Socket(fd: fd)
            let connection = PoolConnection(server: self, socket: socket)
            guard table.connections.count < config.maxConnections else {
                connection.send(PoolProtocol.failure(id: .null, PoolProtocol.Failure(
                    .tooManyConnections, "this pool serves at most \(config.maxConnections) connections")))
                socket.close()
                continue
            }
            table.connections[fd] = connection
            table.unauthenticated.append(connection)
            state.withLock { $0.connections = table.connections.count }
            loop.register(fd, [.readable, .peerClosed]) { events in connection.handle(events) }
            // The unauthenticated budget: when it is full, the oldest such connection is told why
            // and closed, so a flood of silent connections never keeps a harness out.
            if table.unauthenticated.count > config.maxUnauthenticated {
                let evicted = table.unauthenticated.removeFirst()
                metrics.protocolErrors.inc(["code": "unauthenticated_evicted"])
                evicted.send(PoolProtocol.failure(id: .null, PoolProtocol.Failure(
                    .unauthorized, "closed: \(config.maxUnauthenticated) newer connections are waiting to authenticate")))
                evicted.closeAfterFlush()
            }
        }
    }

    fileprivate func forget(_ connection: PoolConnection) {
        table.connections[connection.socket.fd] = nil
        table.unauthenticated.removeAll { $0 === connection }
        state.withLock { $0.connections = table.connections.count }
    }

    fileprivate func authenticated(_ connection: PoolConnection) {
        table.unauthenticated.removeAll { $0 === connection }
    }

    /// A connection that has not authenticated within the hello deadline (counted from its
    /// start: a client that drips a byte now and then cannot extend it) is told so and closed.
    private func checkDeadlines() {
        let cutoff = ContinuousClock.now - .seconds(config.helloDeadline)
        for connection in table.unauthenticated where connection.opened < cutoff {
            connection.send(PoolProtocol.failure(id: .null, PoolProtocol.Failure(
                .unauthorized, "no successful hello within \(config.helloDeadline) s: closing")))
            connection.closeAfterFlush()
        }
        table.unauthenticated.removeAll { $0.opened < cutoff }
    }

    /// One framed line of a connection, on the loop.
    fileprivate func received(_ bytes: [UInt8], on connection: PoolConnection) {
        if bytes.allSatisfy({ $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }) { return }
        switch PoolProtocol.Request.parse(bytes) {
        case .failure(let rejected):
            connection.send(PoolProtocol.failure(id: rejected.id, rejected.failure))
        case .success(let request):
            if request.op == "hello" {
                let answer = hello(request)
                if case .success = answer, !connection.authenticated {
                    connection.authenticated = true
                    authenticated(connection)
                }
                connection.send(render(request.id, answer))
            } else if !connection.authenticated {
                connection.send(PoolProtocol.failure(id: request.id, PoolProtocol.Failure(
                    .unauthorized, "send {\"op\":\"hello\",\"version\":\(PoolProtocol.version),\"token\":…} first")))
            } else {
                state.withLock { $0.inFlight += 1 }
                let key = connection.nextRequest()
                let task = Task { [self, loop] in
                    let answer = await handle(request)
                    let line = render(request.id, answer)
                    loop.execute { [self] in
                        state.withLock {
                            $0.inFlight -= 1
                            $0.served += 1
                        }
                        connection.tasks[key] = nil
                        if connection.isClosed {
                            // A sandbox provisioned for a client that is gone by then is
                            // destroyed, so a dead harness's provision holds no slot.
                            if request.op == "provision", case .success(let result) = answer, let sandbox = result["sandbox"]?.stringValue {
                                log.info("sandbox destroyed: its client went away before the answer", ("sandbox", .string(sandbox)))
                                Task { try? await pool.destroy(sandbox) }
                            }
                            return
                        }
                        connection.send(line)
                    }
                }
                // Only a provision is given up with its client: a call runs on, so that the
                // harness that resumes the session gets its one result.
                if request.op == "provision" { connection.tasks[key] = task }
            }
        }
    }

    /// A line too long for the framer.
    fileprivate func tooLong(on connection: PoolConnection) {
        connection.send(PoolProtocol.failure(id: .null, PoolProtocol.Failure(
            .lineTooLong, "a line may be at most \(config.maxLineLength) bytes; the rest of it was discarded")))
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
                let connections = connectionCount
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

/// The pool server's connections by descriptor, and those not yet authenticated: loop-confined.
private final class PoolConnections: @unchecked Sendable {
    var connections: [Int32: PoolConnection] = [:]
    var unauthenticated: [PoolConnection] = []
}

/// One pool connection, confined to the server's loop: its line framer, what waits to be written,
/// and its provisions in flight (cancelled if it goes: one waiting in line leaves it).
private final class PoolConnection: @unchecked Sendable {
    unowned let server: PoolServer
    let socket: Socket
    let opened = ContinuousClock.now
    var framer: LineFramer
    var authenticated = false
    var outbound = OutboundBuffer()
    var closing = false
    private(set) var isClosed = false
    var tasks: [UInt64: Task<Void, Never>] = [:]
    private var requests: UInt64 = 0

    init(server: PoolServer, socket: Socket) {
        self.server = server
        self.socket = socket
        framer = LineFramer(maxLineLength: server.config.maxLineLength)
    }

    var loop: EventLoop { server.loop }

    func nextRequest() -> UInt64 {
        requests += 1
        return requests
    }

    func handle(_ events: EventLoop.Events) {
        if events.contains(.writable) { flush() }
        if isClosed { return }
        if events.wantsRead { readAll() }
    }

    private func readAll() {
        let open = socket.readAvailable(while: { !isClosed }) { chunk in
            // Once told to go (evicted, past its deadline), nothing more it says is answered.
            guard !closing else { return }
            for frame in framer.feed(chunk) {
                switch frame {
                case .tooLong: server.tooLong(on: self)
                case .line(let bytes): server.received(bytes, on: self)
                }
                if isClosed || closing { break }
            }
        }
        if !open { close() }
    }

    /// Queues `line` and a newline, and writes what the socket takes now.
    func send(_ line: String) {
        guard !isClosed else { return }
        outbound.append(Array(line.utf8) + [UInt8(ascii: "\n")])
        flush()
    }

    /// Closes once what is queued has been written.
    func closeAfterFlush() {
        closing = true
        if outbound.isEmpty { close() }
    }

    private func flush() {
        switch outbound.flush(to: socket.fd, on: loop, watching: [.readable, .peerClosed]) {
        case .wouldBlock: return
        case .failed: close()
        case .done: if closing { close() }
        }
    }

    func close() {
        guard !isClosed else { return }
        isClosed = true
        for task in tasks.values { task.cancel() }
        tasks = [:]
        loop.unregister(socket.fd)
        server.forget(self)
        socket.close()
    }
}
