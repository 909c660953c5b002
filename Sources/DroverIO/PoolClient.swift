import DroverCore
import Foundation
import Synchronization

/// A connection to a sandbox pool. Requests may be issued concurrently; each waits for the reply
/// carrying its own id.
///
/// The socket belongs to an event loop (the process's shared one unless given another): requests
/// are queued and written as the socket takes them, replies read as they come, so a pool that
/// stops reading holds up no caller's thread, and a connection costs no thread.
///
/// No request waits forever: each has a deadline (an `execute` or `provision` its sandbox's
/// timeout plus a margin), after which it fails with `timeout` (its outcome unknown), and the
/// socket has TCP keepalive, so a stopped or partitioned pool cannot hold a session.
public final class PoolClient: @unchecked Sendable {
    typealias Failure = PoolProtocol.Failure

    private let socket: Socket
    private let loop: EventLoop
    private struct State {
        var nextID = 0
        var waiting: [String: CheckedContinuation<JSONValue, any Error>] = [:]
        var closed = false
    }
    private let state = Mutex(State())
    /// Replies that answer no pending request (e.g. `bad_json`, whose id could not be read).
    public let unmatched: AsyncStream<JSONValue>
    private let unmatchedContinuation: AsyncStream<JSONValue>.Continuation
    // Loop-confined.
    private var outbound = OutboundBuffer()
    private var framer = LineFramer(maxLineLength: PoolProtocol.maxReplyLength)
    private var ended = false

    /// Seconds beyond a call's own timeout that its reply may take; and the deadline of requests
    /// that run no tool (hello, destroy, ping, …).
    public static let margin: Double = 10
    /// Seconds a connect may take.
    static let connectTimeout: Duration = .seconds(10)

    private init(socket: Socket, loop: EventLoop) {
        self.socket = socket
        self.loop = loop
        socket.enableKeepalive()
        (unmatched, unmatchedContinuation) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1024))
    }

    /// Connects to `address` (`host:port`) and, with a token, says hello.
    public static func connect(_ address: String, token: String?, on loop: EventLoop? = nil) async throws -> PoolClient {
        guard let (host, port) = parseHostPort(address) else { throw Failure(.badRequest, "address must be HOST:PORT") }
        let client: PoolClient
        do {
            let loop = try loop ?? EventLoop.shared()
            client = PoolClient(socket: try await Socket.connect(host: host, port: port, on: loop, timeout: connectTimeout), loop: loop)
        } catch {
            throw Failure(.unreachable, "cannot reach the pool at \(address): \(error)")
        }
        client.loop.execute { client.attach() }
        if let token {
            do {
                _ = try await client.request("hello", ["version": .number(Double(PoolProtocol.version)), "token": .string(token)])
            } catch {
                client.close()
                throw error
            }
        }
        return client
    }

    /// Sends one request and returns its `result`; an `error` reply is thrown as a `Failure`, and
    /// no reply within `deadline` seconds (default `margin`) as `timeout`.
    public func request(_ op: String, _ fields: [String: JSONValue] = [:], deadline: Double? = nil) async throws -> JSONValue {
        let id = state.withLock { state -> Int in
            state.nextID += 1
            return state.nextID
        }
        var body = fields
        body["id"] = .number(Double(id))
        body["op"] = .string(op)
        let key = JSONValue.number(Double(id)).text
        // Cancelling the caller stops the wait (the pool may still finish the request; a repeated
        // execute with the same call_id returns that result).
        let reply = try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<JSONValue, any Error>) in
                let open = state.withLock { state -> Bool in
                    guard !state.closed else { return false }
                    state.waiting[key] = continuation
                    return true
                }
                guard open else {
                    continuation.resume(throwing: Failure(.unreachable, "the connection to the pool is closed"))
                    return
                }
                if Task.isCancelled {
                    state.withLock { $0.waiting.removeValue(forKey: key) }?.resume(throwing: CancellationError())
                    return
                }
                send(Array(JSONValue.object(body).text.utf8) + [UInt8(ascii: "\n")])
                let seconds = deadline ?? Self.margin
                Task { [self] in
                    try? await Task.sleep(for: .seconds(seconds))
                    state.withLock { $0.waiting.removeValue(forKey: key) }?.resume(throwing: Failure(
                        .timeout, "the pool did not answer \(op) within \(Int(seconds.rounded(.up))) s"))
                }
            }
        } onCancel: {
            state.withLock { $0.waiting.removeValue(forKey: key) }?.resume(throwing: CancellationError())
        }
        if let error = reply["error"] {
            throw Failure(
                PoolProtocol.ErrorCode(rawValue: error["code"]?.stringValue ?? "internal"), error["message"]?.stringValue ?? "")
        }
        return reply["result"] ?? .null
    }

    /// Sends raw bytes as they are, and a newline (tests use it to send malformed lines).
    public func sendRaw(_ bytes: [UInt8]) {
        send(bytes + [UInt8(ascii: "\n")])
    }

    /// Provisions a sandbox and returns its id. `networking` is the environment's
    /// `config.networking`; `repositories` are `{url, authorization_token?, mount_path?, checkout?}`
    /// (see docs/sandbox-protocol.md).
    /// `wait`: seconds the provision may wait in line when every sandbox of the pool is running a
    /// call (0: `capacity` at once).
    public func provision(
        resources: JSONValue? = nil, session: String? = nil, networking: JSONValue? = nil, repositories: [JSONValue] = [],
        packages: PackageSet = PackageSet(), wait: Double = 0
    ) async throws -> String {
        var fields: [String: JSONValue] = [:]
        if !packages.isEmpty { fields["packages"] = packages.json }
        if let resources { fields["resources"] = resources }
        if let session { fields["session"] = .string(session) }
        if let networking { fields["networking"] = networking }
        if !repositories.isEmpty { fields["repositories"] = .array(repositories) }
        if wait > 0 { fields["wait_s"] = .number(wait) }
        // A setup script runs under the sandbox's timeout, after the wait for room.
        guard let id = try await request("provision", fields, deadline: wait + Self.callTimeout(resources) + (packages.isEmpty ? 0 : Self.installTimeout) + Self.margin)["sandbox"]?.stringValue else {
            throw Failure(.internal, "provision answered without a sandbox id")
        }
        return id
    }

    /// Runs a tool; the result has `output`, `is_error`, `truncated` and, for processes, `exit_code`.
    public func execute(sandbox: String, callID: String, name: String, input: JSONValue, resources: JSONValue? = nil) async throws -> JSONValue {
        try await request("execute", ["sandbox": .string(sandbox), "call_id": .string(callID), "name": .string(name), "input": input],
                          deadline: Self.callTimeout(resources) + Self.margin)
    }

    /// The longest a provision waits for the environment's packages to install (the pool's
    /// `--package-timeout` default, and a wait for another provision's install of them).
    static let installTimeout: Double = 2 * 900

    /// A call's wall-clock limit: the sandbox's `timeout_s`, else the pool's default.
    static func callTimeout(_ resources: JSONValue?) -> Double {
        resources?["timeout_s"]?.doubleValue ?? PoolProtocol.defaultCallTimeout
    }

    /// Kills a running call's processes; true when one was running.
    @discardableResult
    public func cancel(sandbox: String, callID: String) async throws -> Bool {
        try await request("cancel", ["sandbox": .string(sandbox), "call_id": .string(callID)])["cancelled"]?.boolValue ?? false
    }

    /// The sandbox's mounted files (`files`: file_id, mount_path, size_bytes) and output files
    /// (`outputs`: name, size_bytes).
    public func sessionFiles(sandbox: String) async throws -> JSONValue {
        try await request("session_files", ["sandbox": .string(sandbox)])
    }

    /// Mounts `bytes` read-only at `mountPath` in the sandbox, sent in chunks that fit a line.
    public func putFile(sandbox: String, fileID: String, mountPath: String, bytes: [UInt8]) async throws {
        let chunk = 4 << 20
        var offset = 0
        repeat {
            let end = min(bytes.count, offset + chunk)
            _ = try await request("put_file", [
                "sandbox": .string(sandbox), "file_id": .string(fileID), "mount_path": .string(mountPath), "offset": .number(Double(offset)),
                "data_base64": .string(Data(bytes[offset..<end]).base64EncodedString()), "last": .bool(end == bytes.count),
            ])
            offset = end
        } while offset < bytes.count
    }

    public func removeFile(sandbox: String, fileID: String) async throws {
        _ = try await request("remove_file", ["sandbox": .string(sandbox), "file_id": .string(fileID)])
    }

    /// An output file's bytes.
    public func output(sandbox: String, name: String) async throws -> [UInt8] {
        guard let data = try await request("get_output", ["sandbox": .string(sandbox), "name": .string(name)])["data_base64"]?.stringValue,
              let bytes = Data(base64Encoded: data) else {
            throw Failure(.internal, "get_output answered without data")
        }
        return Array(bytes)
    }

    /// Mounts a memory store's files at `mountPath` (`reset`: replacing what its folder held),
    /// each with its content hash in the store (kept by the pool for `memoryChanges`).
    public func putMemory(
        sandbox: String, storeID: String, mountPath: String, readOnly: Bool, files: [(path: String, bytes: [UInt8], sha256: String?)], reset: Bool
    ) async throws {
        _ = try await request("put_memory", [
            "sandbox": .string(sandbox), "memory_store_id": .string(storeID), "mount_path": .string(mountPath), "read_only": .bool(readOnly),
            "reset": .bool(reset),
            "files": .array(files.map { file in
                ["path": .string(file.path), "data_base64": .string(Data(file.bytes).base64EncodedString()), "sha256": file.sha256.map(JSONValue.string) ?? .null]
            }),
        ])
    }

    /// What changed in a read-write store's folder since it was mounted or last written back.
    public struct MemoryChanges: Sendable {
        /// New or changed files: bytes (nil: too large to be a memory) and the hash they were mounted with.
        public var changed: [(path: String, bytes: [UInt8]?, baseSHA256: String?)]
        /// Mounted memories whose file is gone, with the hash they were mounted with.
        public var removed: [(path: String, baseSHA256: String?)]
    }

    public func memoryChanges(sandbox: String, storeID: String) async throws -> MemoryChanges {
        let reply = try await request("get_memory", ["sandbox": .string(sandbox), "memory_store_id": .string(storeID)])
        guard case .array(let changes)? = reply["changes"], case .array(let removed)? = reply["removed"] else {
            throw Failure(.internal, "get_memory answered without changes and removed")
        }
        return MemoryChanges(
            changed: changes.compactMap { item in
                guard let path = item["path"]?.stringValue else { return nil }
                return (path, item["data_base64"]?.stringValue.flatMap { Data(base64Encoded: $0) }.map(Array.init), item["base_sha256"]?.stringValue)
            },
            removed: removed.compactMap { item in item["path"]?.stringValue.map { ($0, item["base_sha256"]?.stringValue) } })
    }

    /// Tells the pool a memory was written back (`bytes` nil: deleted) with its new content hash.
    public func memorySynced(sandbox: String, storeID: String, path: String, bytes: [UInt8]?, sha256: String?) async throws {
        var body: [String: JSONValue] = ["sandbox": .string(sandbox), "memory_store_id": .string(storeID), "path": .string(path)]
        if let bytes {
            body["data_base64"] = .string(Data(bytes).base64EncodedString())
            body["sha256"] = sha256.map(JSONValue.string) ?? .null
        } else {
            body["deleted"] = true
        }
        _ = try await request("memory_synced", body)
    }

    public func destroy(sandbox: String) async throws {
        _ = try await request("destroy", ["sandbox": .string(sandbox)])
    }

    /// Ends the connection: requests waiting fail with `unreachable`.
    public func close() {
        loop.execute { [self] in end() }
    }

    // MARK: - On the loop

    private func attach() {
        guard !ended else { return }
        loop.register(socket.fd, .readable) { [self] events in
            if events.contains(.writable) { flush() }
            if events.wantsRead, !ended { read() }
        }
    }

    private func send(_ line: [UInt8]) {
        loop.execute { [self] in
            guard !ended else { return }
            outbound.append(line)
            flush()
        }
    }

    private func flush() {
        if outbound.flush(to: socket.fd, on: loop, watching: .readable) == .failed { end() }
    }

    private func read() {
        var replies: [JSONValue] = []
        let open = socket.readAvailable(while: { true }) { bytes in
            for case .line(let line) in framer.feed(bytes) {
                if let reply = try? JSONValue.parse(line) { replies.append(reply) }
            }
        }
        for reply in replies {
            let waiter = state.withLock { $0.waiting.removeValue(forKey: (reply["id"] ?? .null).text) }
            if let waiter {
                waiter.resume(returning: reply)
            } else {
                unmatchedContinuation.yield(reply)
            }
        }
        if !open { end() }
    }

    /// The connection ended (closed by either side, or failed): every waiting request fails.
    private func end() {
        guard !ended else { return }
        ended = true
        loop.unregister(socket.fd)
        socket.close()
        let waiters = state.withLock { state -> [CheckedContinuation<JSONValue, any Error>] in
            state.closed = true
            defer { state.waiting = [:] }
            return Array(state.waiting.values)
        }
        waiters.forEach { $0.resume(throwing: Failure(.unreachable, "the pool closed the connection")) }
        unmatchedContinuation.finish()
    }
}
