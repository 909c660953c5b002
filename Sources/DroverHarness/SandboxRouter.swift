import DroverCore
import DroverIO
import DroverStore
import Foundation
import Synchronization

/// What a tool call produced, as the model will see it.
public struct ToolOutcome: Sendable, Equatable {
    public var content: String
    public var isError: Bool
    /// Extra facts for the log: sandbox, exit code, truncation.
    public var details: [String: JSONValue]
}

/// Routes tool calls to sandboxes. A session gets a sandbox only when its first tool call needs
/// one (lazy), on the least loaded live pool in the registry; later calls, and later harnesses,
/// find it again through the registry. Pool failures become tool results the model can read.
///
/// A session's threads share its sandbox: everything here is keyed by the spec's `home` (the
/// session whose sandbox it is), while the lease that fences a provision is the caller's own.
public final class SandboxRouter: Sendable {
    public let registry: PoolRegistry
    let token: String
    let log: Log

    struct Placement: Sendable, Equatable {
        var address: String
        var pool: String
        var sandbox: String
        /// The sandbox this one replaces and why it ended (idle, evicted, lost, …): set on the
        /// placement a provision returns, so that the call which first uses it tells the model.
        var replaces: Replaced?
    }

    struct Replaced: Sendable, Equatable {
        var sandbox: String
        var reason: String
    }

    private let clients = Mutex<[String: PoolClient]>([:])
    private let placements = Mutex<[SessionID: Placement]>([:])
    private let flights = Mutex<[SessionID: Task<Placement?, any Error>]>([:])
    /// The sandbox whose mounted files were brought in line with the session's resources in
    /// this wake (`syncFiles`).
    private let synced = Mutex<[SessionID: String]>([:])
    /// Per session, the output files stored in this wake: name → size and modification time.
    private let storedOutputs = Mutex<[SessionID: [String: String]]>([:])
    /// How many runners of this harness use each home's placement (a session's and its threads'):
    /// it is forgotten when the last one ends.
    private let users = Mutex<[SessionID: Int]>([:])
    /// When and to which pool each provision now unanswered was sent, by a token of its own
    /// (`sandboxWaits`, `PoolChoice`).
    private let provisions = Mutex<(next: Int, sent: [Int: (at: ContinuousClock.Instant, pool: String)])>((0, [:]))

    public init(registry: PoolRegistry, token: String, log: Log) {
        self.registry = registry
        self.token = token
        self.log = log
    }

    /// Provisions sent and unanswered for longer than `threshold`: a pool answers a provision
    /// in milliseconds when it has room, so these are waiting in a full pool's line (or making a
    /// slow sandbox). The harness claims no new sessions while there are any (`Harness`).
    public func sandboxWaits(olderThan threshold: Duration) -> Int {
        let cutoff = ContinuousClock.now - threshold
        return provisions.withLock { $0.sent.values.count { $0.at < cutoff } }
    }

    /// Provisions the session's sandbox now if it has none (for `--eager-sandbox`).
    public func ensureSandbox(for lease: Lease, spec: SandboxSpec) async throws {
        _ = try await placement(for: lease, spec: spec, recovering: false)
    }

    /// Runs one tool call. `recovering`: the call was logged by a harness that died; it is re-sent
    /// with the same call id, and if its sandbox is gone the outcome is reported as unknown.
    public func execute(lease: Lease, callID: String, name: String, input: JSONValue, spec: SandboxSpec, recovering: Bool) async throws -> ToolOutcome {
        let session = spec.home ?? lease.sessionID
        do {
            guard let placement = try await placement(for: lease, spec: spec, recovering: recovering) else {
                return ToolOutcome(
                    content: "The outcome of this call is unknown: the harness that sent it stopped and its sandbox is gone. Check before repeating it.",
                    isError: true, details: ["outcome": "unknown"])
            }
            do {
                try await syncFiles(placement, session: session, spec: spec)
                return try await run(placement, callID: callID, name: name, input: input, resources: spec.resources)
            } catch let failure as PoolProtocol.Failure where failure.code == .sandboxReclaimed && !recovering {
                // The pool took the sandbox back before this call ran in it: the call runs in a
                // fresh one, and the model is told its files are gone.
                placements.withLock { _ = $0.removeValue(forKey: session) }
                let reason = Self.reason(failure.message) ?? "reclaimed"
                try? await registry.sandboxEnded(id: placement.sandbox, reason: reason)
                log.info("sandbox reclaimed by its pool", ("session", .string(session.rawValue)), ("sandbox", .string(placement.sandbox)), ("reason", .string(reason)))
                guard let fresh = try await self.placement(for: lease, spec: spec, recovering: false) else {
                    throw failure
                }
                try await syncFiles(fresh, session: session, spec: spec)
                return try await run(fresh, callID: callID, name: name, input: input, resources: spec.resources)
            }
        } catch let failure as PoolProtocol.Failure {
            switch failure.code {
            case .timeout:
                // The pool went silent (stopped, partitioned): whether the call ran is unknown. Its
                // connection is dropped; the next call finds the sandbox again or a new one.
                if let lost = placements.withLock({ $0.removeValue(forKey: session) }) { dropClient(lost.address) }
                log.warning("sandbox pool silent", ("session", .string(session.rawValue)), ("error", .string(failure.message)))
                return ToolOutcome(
                    content: "The outcome of this call is unknown: \(failure.message). Check before repeating it.",
                    isError: true, details: ["error": .string(failure.code.rawValue), "outcome": "unknown"])
            case .sandboxGone, .sandboxReclaimed, .noSuchSandbox, .unreachable, .shuttingDown:
                let lost = placements.withLock { $0.removeValue(forKey: session) }
                if failure.code == .unreachable, let lost { dropClient(lost.address) }
                // Recorded as ended, so that the session's next call provisions a new sandbox
                // instead of finding this one in the registry again: a dead pool looks live
                // there until its heartbeat is overdue, and every call until then failed the same
                // way. A pool that was only out of reach restores the row at its next heartbeat.
                if let lost { try? await registry.sandboxEnded(id: lost.sandbox, reason: failure.code == .unreachable ? "lost" : "gone") }
                log.warning("sandbox lost", ("session", .string(session.rawValue)), ("code", .string(failure.code.rawValue)))
                let prefix = recovering ? "The outcome of this call is unknown" : "The sandbox is gone"
                return ToolOutcome(
                    content: "\(prefix) (\(failure.code): \(failure.message)). The next tool call gets a new sandbox; files written before are lost.",
                    isError: true, details: ["error": .string(failure.code.rawValue), "outcome": recovering ? "unknown" : "not_run"])
            case .packagesFailed:
                // Not the call's failure but the environment's: the session reports it and stops.
                throw PackagesFailed(message: failure.message)
            default:
                return ToolOutcome(content: "\(failure.code): \(failure.message)", isError: true, details: ["error": .string(failure.code.rawValue)])
            }
        }
    }

    /// Runs the call in `placement`'s sandbox; a placement that replaces an ended sandbox says so
    /// in the result, first thing, so the model knows its earlier files are gone.
    private func run(_ placement: Placement, callID: String, name: String, input: JSONValue, resources: JSONValue?) async throws -> ToolOutcome {
        let client = try await client(placement.address)
        let result = try await client.execute(sandbox: placement.sandbox, callID: callID, name: name, input: input, resources: resources)
        var details: [String: JSONValue] = ["sandbox": .string(placement.sandbox)]
        if let code = result["exit_code"] { details["exit_code"] = code }
        if result["truncated"]?.boolValue == true { details["truncated"] = true }
        if result["timed_out"]?.boolValue == true { details["timed_out"] = true }
        // The exact bytes, when the text shown had to replace some (see ToolText).
        if let exact = result["output_base64"] { details["content_base64"] = exact }
        var content = result["output"]?.stringValue ?? ""
        if let replaced = placement.replaces {
            details["sandbox_replaced"] = ["sandbox": .string(replaced.sandbox), "reason": .string(replaced.reason)]
            content = Self.replacementNote(replaced) + content
        }
        return ToolOutcome(content: content, isError: result["is_error"]?.boolValue ?? false, details: details)
    }

    /// What the model reads first when its call ran in a fresh sandbox.
    static func replacementNote(_ replaced: Replaced) -> String {
        let why = switch replaced.reason {
        case "idle": "it was idle longer than the pool's idle limit"
        case "evicted": "its pool needed the room"
        default: "its pool took it back (\(replaced.reason))"
        }
        return "[Note: this session's previous sandbox was reclaimed because \(why). This call ran in a new, empty sandbox: files written earlier are gone.]\n"
    }

    /// The `(reason: …)` a pool's `sandbox_reclaimed` message ends with.
    static func reason(_ message: String) -> String? {
        guard let range = message.range(of: "(reason: "), let end = message[range.upperBound...].firstIndex(of: ")") else { return nil }
        return String(message[range.upperBound..<end])
    }

    /// The session's sandbox: remembered, else from the registry, else a new one. With
    /// `recovering`, a sandbox that existed and is gone yields nil (the call's outcome is unknown).
    ///
    /// Single flight: parallel tool calls of one session wait for one look-up or provision, so a
    /// response with two tool calls never splits the session's files over two sandboxes.
    private func placement(for lease: Lease, spec: SandboxSpec, recovering: Bool) async throws -> Placement? {
        let session = spec.home ?? lease.sessionID
        if let known = placements.withLock({ $0[session] }) { return known }
        let (flight, leader) = flights.withLock { flights -> (Task<Placement?, any Error>, Bool) in
            if let existing = flights[session] { return (existing, false) }
            let task = Task { try await self.find(for: lease, spec: spec, recovering: recovering) }
            flights[session] = task
            return (task, true)
        }
        defer { if leader { flights.withLock { _ = $0.removeValue(forKey: session) } } }
        return try await flight.value
    }

    private func find(for lease: Lease, spec: SandboxSpec, recovering: Bool) async throws -> Placement? {
        let session = spec.home ?? lease.sessionID
        if let found = try await registry.sandbox(forSession: session.rawValue) {
            let placement = Placement(address: found.address, pool: found.pool, sandbox: found.sandbox)
            placements.withLock { $0[session] = placement }
            return placement
        }
        if recovering, try await registry.hasSandboxRecord(forSession: session.rawValue) { return nil }
        // A fresh sandbox for a session that had one: the first call in it tells the model.
        let replaces = try await registry.reclaimedSandbox(forSession: session.rawValue).map { Replaced(sandbox: $0.sandbox, reason: $0.reason) }
        // Least loaded first (`PoolChoice`); a pool that cannot be reached (dead, but not yet marked gone) or is
        // shutting down is skipped. A full pool still provisions (it reclaims its least recently
        // used idle sandbox), and one whose every sandbox is running a call puts the provision in
        // line; the wait is one deadline across pools (`SandboxSpec.wait`), so a pool that dies
        // with provisions waiting sends them to the next.
        var lastFailure = PoolProtocol.Failure(.unreachable, "no sandbox pool is available in the registry")
        let deadline = ContinuousClock.now + .seconds(spec.wait)
        // The registry is read again when every pool it listed failed: a pool that started while
        // this provision waited in a line that then died is the one to go to (CI once saw 32
        // provisions fail because the list was read a moment before a second pool registered).
        var tried = Set<String>()
        for _ in 0..<3 {
            let outstanding = provisions.withLock { provisions in
                provisions.sent.values.reduce(into: [String: Int]()) { $0[$1.pool, default: 0] += 1 }
            }
            var random = SystemRandomNumberGenerator()
            let candidates = PoolChoice.order(
                try await registry.pools().filter { $0.status == "up" && !tried.contains($0.address) }, outstanding: outstanding, using: &random)
            if candidates.isEmpty { break }
            for pool in candidates {
                tried.insert(pool.address)
                do {
                    let client = try await client(pool.address)
                    let left = max(0, (deadline - ContinuousClock.now) / .seconds(1))
                    let repositories = try await spec.repositories().map(\.provisionJSON)
                    let token = provisions.withLock { provisions -> Int in
                        defer { provisions.next += 1 }
                        provisions.sent[provisions.next] = (.now, pool.address)
                        return provisions.next
                    }
                    defer { provisions.withLock { _ = $0.sent.removeValue(forKey: token) } }
                    let sandbox = try await client.provision(
                        resources: spec.resources, session: session.rawValue, networking: spec.networking,
                        repositories: repositories, packages: spec.packages, wait: left)
                    // Recorded, fenced by the lease, before any call runs in it, so that a successor can
                    // tell "never ran" from "unknown" and a stale harness never adopts a sandbox. A
                    // thread's lease records it under its session (`drover.record_session_sandbox`).
                    let recorded: String
                    do {
                        recorded = try await registry.recordSessionSandbox(id: sandbox, pool: pool.id, lease: lease)
                    } catch {
                        try? await client.destroy(sandbox: sandbox)
                        throw error
                    }
                    if recorded != sandbox {
                        // Another holder of this session recorded one first: use that one.
                        try? await client.destroy(sandbox: sandbox)
                        return try await find(for: lease, spec: spec, recovering: recovering)
                    }
                    let placement = Placement(address: pool.address, pool: pool.id, sandbox: sandbox)
                    placements.withLock { $0[session] = placement }
                    log.info(
                        "sandbox provisioned", ("session", .string(session.rawValue)), ("sandbox", .string(sandbox)), ("pool", .string(pool.id)),
                        ("replaces", replaces.map { .string($0.sandbox) } ?? .null))
                    var first = placement
                    first.replaces = replaces
                    return first
                } catch let failure as PoolProtocol.Failure where failure.code == .unreachable || failure.code == .capacity || failure.code == .shuttingDown {
                    if failure.code == .unreachable { dropClient(pool.address) }
                    lastFailure = failure
                }
            }
        }
        throw lastFailure
    }

    /// Asks the session's pool to kill a running call (an interrupt, a hand-off, a lost lease). The
    /// placement is taken now, before the runner forgets it; the request goes out on its own. Best
    /// effort: a call that already ended, or an unreachable pool, leaves nothing to do.
    public func cancel(session: SessionID, callID: String) {
        guard let placement = placements.withLock({ $0[session] }), let client = clients.withLock({ $0[placement.address] }) else { return }
        let log = self.log
        Task {
            do {
                try await client.cancel(sandbox: placement.sandbox, callID: callID)
            } catch {
                log.debug("cancel not delivered", ("session", .string(session.rawValue)), ("error", .string("\(error)")))
            }
        }
    }

    /// A runner of `home`'s sandbox (the session's, or a thread's) began: its placement is kept
    /// until the last such runner of this harness ends (`forget`).
    public func use(_ home: SessionID) {
        users.withLock { $0[home, default: 0] += 1 }
    }

    /// A runner of `home`'s sandbox ended; with the last one, the placement is forgotten (the
    /// registry remembers it).
    public func forget(_ home: SessionID) {
        let last = users.withLock { users -> Bool in
            let left = (users[home] ?? 1) - 1
            users[home] = left > 0 ? left : nil
            return left <= 0
        }
        guard last else { return }
        placements.withLock { _ = $0.removeValue(forKey: home) }
        synced.withLock { _ = $0.removeValue(forKey: home) }
        storedOutputs.withLock { _ = $0.removeValue(forKey: home) }
    }

    /// Brings the sandbox's mounted files in line with the session's file resources, once per
    /// wake and sandbox: what was added since is put (read from Postgres), what was removed is
    /// taken out. A file deleted or expired since it was attached is left out and logged.
    private func syncFiles(_ placement: Placement, session: SessionID, spec: SandboxSpec) async throws {
        guard synced.withLock({ $0[session] }) != placement.sandbox else { return }
        let wanted = try await spec.files()
        let client = try await client(placement.address)
        let mounted = try await client.sessionFiles(sandbox: placement.sandbox)["files"]
        var present: [String: String] = [:]
        if case .array(let items)? = mounted {
            for item in items {
                if let id = item["file_id"]?.stringValue, let path = item["mount_path"]?.stringValue { present[id] = path }
            }
        }
        for (fileID, _) in present where !wanted.contains(where: { $0.fileID == fileID && $0.mountPath == present[fileID] }) {
            try await client.removeFile(sandbox: placement.sandbox, fileID: fileID)
        }
        for file in wanted where present[file.fileID] != file.mountPath {
            guard let bytes = try await spec.fileBytes(file.fileID) else {
                log.warning("session file not mounted: deleted or expired", ("session", .string(session.rawValue)), ("file", .string(file.fileID)))
                continue
            }
            try await client.putFile(sandbox: placement.sandbox, fileID: file.fileID, mountPath: file.mountPath, bytes: bytes)
        }
        // Memory stores: each sent whole (its folder emptied first), in requests of a few MiB. What
        // the agent changed in a store this sandbox already holds (a holder that died before
        // writing it back) is written back first, so the fresh copy carries it.
        if spec.stores.contains(where: { !$0.readOnly }) { await spec.writeBack() }
        for store in spec.stores {
            let files = try await spec.memories(store.storeID).map { (path: $0.path, bytes: Array($0.content.utf8), sha256: Optional($0.sha256)) }
            for (index, batch) in Self.batches(files, maxBytes: 4 << 20, size: { $0.bytes.count + $0.path.utf8.count }).enumerated() {
                try await client.putMemory(sandbox: placement.sandbox, storeID: store.storeID, mountPath: store.mountPath, readOnly: store.readOnly,
                                           files: batch, reset: index == 0)
            }
        }
        synced.withLock { $0[session] = placement.sandbox }
    }

    /// `files` in consecutive batches of about `maxBytes` each; always at least one (an empty
    /// store is still mounted, and its first batch empties the folder).
    static func batches<File>(_ files: [File], maxBytes: Int, size: (File) -> Int) -> [[File]] {
        var batches: [[File]] = [[]]
        var bytes = 0
        for file in files {
            if bytes > maxBytes {
                batches.append([])
                bytes = 0
            }
            batches[batches.count - 1].append(file)
            bytes += size(file)
        }
        return batches
    }

    /// For each of `stores` (read-write) mounted in the session's sandbox: what the agent changed
    /// since it was mounted or last written back, as the pool tells it. The sandbox is the one
    /// this wake uses, else the one the registry records for the session (a wake that ends a turn
    /// its dead holder began has made no call); a store the sandbox does not hold is left out.
    func memoryChanges(of session: SessionID, stores: [String]) async throws -> [(store: String, changes: PoolClient.MemoryChanges)] {
        guard !stores.isEmpty, let placement = try await existingPlacement(session) else { return [] }
        let client = try await client(placement.address)
        var state: [(store: String, changes: PoolClient.MemoryChanges)] = []
        for store in stores.sorted() {
            do {
                state.append((store, try await client.memoryChanges(sandbox: placement.sandbox, storeID: store)))
            } catch let failure as PoolProtocol.Failure where failure.code == .fileNotFound || failure.code == .noSuchSandbox {
                continue
            }
        }
        return state
    }

    /// The session's sandbox, without provisioning one: this wake's, else the registry's.
    private func existingPlacement(_ session: SessionID) async throws -> Placement? {
        if let known = placements.withLock({ $0[session] }) { return known }
        return try await registry.sandbox(forSession: session.rawValue).map { Placement(address: $0.address, pool: $0.pool, sandbox: $0.sandbox) }
    }

    /// Tells the session's pool a memory was written back (nil bytes: deleted): the new base.
    func memorySynced(_ session: SessionID, store: String, path: String, bytes: [UInt8]?, sha256: String?) async throws {
        guard let placement = try await existingPlacement(session) else { return }
        try await client(placement.address).memorySynced(sandbox: placement.sandbox, storeID: store, path: path, bytes: bytes, sha256: sha256)
    }

    /// The output files of the session's sandbox that are new or changed since this wake last
    /// stored them (by size and modification time), if it has a sandbox in this wake (or, with
    /// `lookUp`, in the registry: its threads may have used it elsewhere); a reader of their
    /// bytes; and a way to mark one stored.
    func outputs(of session: SessionID, lookUp: Bool = false) async throws
        -> (names: [String], read: @Sendable (String) async throws -> [UInt8], stored: @Sendable (String) -> Void)?
    {
        guard let placement = lookUp ? try await existingPlacement(session) : placements.withLock({ $0[session] }) else { return nil }
        let client = try await client(placement.address)
        guard case .array(let items)? = try await client.sessionFiles(sandbox: placement.sandbox)["outputs"] else { return nil }
        let seen = storedOutputs.withLock { $0[session] ?? [:] }
        var stamps: [String: String] = [:]
        for item in items {
            guard let name = item["name"]?.stringValue else { continue }
            stamps[name] = "\(item["size_bytes"]?.text ?? "")@\(item["modified_ns"]?.text ?? "")"
        }
        let current = stamps
        let changed = current.keys.sorted().filter { seen[$0] != current[$0] }
        return (changed, { name in try await client.output(sandbox: placement.sandbox, name: name) },
                { name in self.storedOutputs.withLock { $0[session, default: [:]][name] = current[name] } })
    }

    private func client(_ address: String) async throws -> PoolClient {
        if let client = clients.withLock({ $0[address] }) { return client }
        let client = try await PoolClient.connect(address, token: token)
        let winner = clients.withLock { clients -> PoolClient in
            if let existing = clients[address] { return existing }
            clients[address] = client
            return client
        }
        if winner !== client { client.close() }
        return winner
    }

    private func dropClient(_ address: String) {
        clients.withLock { $0.removeValue(forKey: address) }?.close()
    }

    public func close() {
        clients.withLock { clients in
            clients.values.forEach { $0.close() }
            clients = [:]
        }
    }
}

/// What a session's sandbox is made with: the environment's `resources` (limits) and
/// `networking`, and the session's repositories (with their tokens, which only the pool's proxy
/// uses).
/// The environment's packages could not be installed: reported as the session's `session.error`
/// (`unknown_error`, with the package manager's words), ending the turn.
public struct PackagesFailed: Error, Sendable {
    public var message: String
}

public struct SandboxSpec: Sendable {
    public var resources: JSONValue?
    public var networking: JSONValue?
    /// The environment's `packages`, installed by the pool into a layer the sandbox mounts.
    public var packages = PackageSet()
    /// Seconds a provision may wait for room when every sandbox is running a call: the
    /// environment's `resources.wait_s`, else 300. Past it the call fails with `capacity`.
    public var wait: Double {
        guard let asked = resources?["wait_s"]?.doubleValue, asked >= 0 else { return Self.defaultWait }
        return min(asked, 3600)
    }
    public static let defaultWait: Double = 300
    /// The session whose sandbox this is, when not the lease's own: a thread's parent (threads
    /// share their session's sandbox, files, repositories and memory stores).
    public var home: SessionID?
    /// Read when the sandbox is provisioned (most turns never provision).
    public var repositories: @Sendable () async throws -> [RepositoryResource]
    /// The session's file resources (file id, mount path), read at the first call of each wake.
    public var files: @Sendable () async throws -> [(fileID: String, mountPath: String)] = { [] }
    /// A file's bytes (nil: deleted or expired since it was attached).
    public var fileBytes: @Sendable (String) async throws -> [UInt8]? = { _ in nil }
    /// The session's memory stores (read at the start of the wake) and a reader of a store's memories.
    public var stores: [SessionStore.AttachedStore] = []
    public var memories: @Sendable (String) async throws -> [(path: String, content: String, sha256: String)] = { _ in [] }
    /// Writes back what the agent changed in the read-write stores, under the session's lease;
    /// run before a sandbox that may hold such changes gets fresh copies of the stores.
    public var writeBack: @Sendable () async -> Void = {}

    public init(resources: JSONValue? = nil, networking: JSONValue? = nil, repositories: @escaping @Sendable () async throws -> [RepositoryResource] = { [] }) {
        self.resources = resources
        self.networking = networking
        self.repositories = repositories
    }
}
