import DroverCore
import Foundation
import Synchronization

/// The sandboxes of one pool daemon: provisioning (from a warm pool of ready workspaces when it
/// can), lookup, destruction, and the kill switch for shutdown.
final class SandboxPool: Sendable {
    struct Config: Sendable {
        var root: String
        var capacity: Int
        var warm: Int
        /// First uid for sandboxes when the daemon runs as root.
        var uidBase: UInt32
    }

    typealias Failure = PoolProtocol.Failure

    let config: Config
    let isolation: Isolation
    let tools: Tools
    let log: Log

    private struct State {
        var sandboxes: [String: Sandbox] = [:]
        /// Ids of destroyed sandboxes, so that late calls get `sandbox_gone`, not `no_such_sandbox`.
        var destroyed: [String] = []
        var warm: [Workspace] = []
        var warming = 0
        var nextIndex: UInt32 = 0
        var shuttingDown = false
        var provisioned = 0
        var warmHits = 0
    }

    private let state = Mutex(State())
    private let processes = ProcessTable()
    static let rememberedDestroyed = 4096

    init(config: Config, isolation: Isolation, log: Log) throws {
        self.config = config
        self.isolation = isolation
        self.log = log
        try FileManager.default.createDirectory(atPath: config.root, withIntermediateDirectories: true)
        // Sandboxes run as other uids and must reach their own workspace, but may not list others.
        chmod(config.root, 0o711)
        tools = Tools(isolation: isolation) { [processes] key, pid in processes.set(key, pid) }
    }

    // MARK: - Provisioning

    /// A new sandbox. Without a `setup` script it comes from the warm pool when one is ready.
    func provision(_ resources: SandboxResources, session: String?) async throws(Failure) -> Sandbox {
        let grab = state.withLock { state -> Result<Workspace?, Failure> in
            if state.shuttingDown { return .failure(Failure(.shuttingDown, "the pool is shutting down")) }
            guard state.sandboxes.count < config.capacity else {
                return .failure(Failure(.capacity, "the pool holds its capacity of \(config.capacity) sandboxes"))
            }
            state.provisioned += 1
            guard resources.setup == nil, let workspace = state.warm.popLast() else { return .success(nil) }
            state.warmHits += 1
            return .success(workspace)
        }
        let warmWorkspace = try grab.get()
        let workspace: Workspace
        if let warmWorkspace {
            workspace = warmWorkspace
        } else {
            do {
                workspace = try makeWorkspace()
            } catch {
                throw Failure(.internal, "cannot make a workspace: \(error)")
            }
        }
        defer { refillWarm() }
        let sandbox = Sandbox(
            id: "sb_" + Self.randomHex(), session: session, resources: resources, workspace: workspace, uid: workspace.owner?.uid ?? getuid())
        if let setup = resources.setup {
            let outcome = await tools.run("bash", input: ["command": .string(setup)], in: sandbox)
            if case .success(let result) = outcome, result["is_error"]?.boolValue == false {
                log.info("setup ran", ("sandbox", .string(sandbox.id)))
            } else {
                workspace.remove()
                let detail = (try? outcome.get())?["output"]?.stringValue ?? "\(outcome)"
                throw Failure(.setupFailed, "the setup script failed: \(detail.suffix(2000))")
            }
        }
        let admitted = state.withLock { state -> Bool in
            guard !state.shuttingDown else { return false }
            state.sandboxes[sandbox.id] = sandbox
            return true
        }
        guard admitted else {
            workspace.remove()
            throw Failure(.shuttingDown, "the pool is shutting down")
        }
        return sandbox
    }

    /// Keeps `warm` ready workspaces, made in the background.
    func refillWarm() {
        let toMake = state.withLock { state -> Int in
            guard !state.shuttingDown else { return 0 }
            let missing = config.warm - state.warm.count - state.warming
            state.warming += max(0, missing)
            return max(0, missing)
        }
        guard toMake > 0 else { return }
        Task.detached { [self] in
            for _ in 0..<toMake {
                let workspace = try? makeWorkspace()
                let keep = state.withLock { state -> Bool in
                    state.warming -= 1
                    guard let workspace, !state.shuttingDown else { return false }
                    state.warm.append(workspace)
                    return true
                }
                if !keep { workspace?.remove() }
            }
        }
    }

    private func makeWorkspace() throws -> Workspace {
        let index = state.withLock { state -> UInt32 in
            defer { state.nextIndex &+= 1 }
            return state.nextIndex
        }
        let owner: (uid: UInt32, gid: UInt32)? =
            isolation.mode == .bubblewrap && geteuid() == 0
            ? (config.uidBase + index % 60_000, config.uidBase + index % 60_000) : nil
        return try Workspace(path: config.root + "/ws_" + Self.randomHex(), owner: owner)
    }

    // MARK: - Lookup and destruction

    func sandbox(_ id: String) throws(Failure) -> Sandbox {
        let found = state.withLock { state -> Result<Sandbox, Failure> in
            if let sandbox = state.sandboxes[id] { return .success(sandbox) }
            if state.destroyed.contains(id) { return .failure(Failure(.sandboxGone, "sandbox \(id) was destroyed")) }
            return .failure(Failure(.noSuchSandbox, "no sandbox \(id) in this pool"))
        }
        return try found.get()
    }

    func destroy(_ id: String) throws(Failure) {
        let removed = state.withLock { state -> Sandbox? in
            guard let sandbox = state.sandboxes.removeValue(forKey: id) else { return nil }
            state.destroyed.append(id)
            if state.destroyed.count > Self.rememberedDestroyed { state.destroyed.removeFirst() }
            return sandbox
        }
        guard let removed else { _ = try sandbox(id); return }
        removed.markDestroyed()
        processes.killAll(prefix: id + "/")
        removed.workspace.remove()
    }

    var all: [Sandbox] { state.withLock { Array($0.sandboxes.values) }.sorted { $0.createdAt < $1.createdAt } }

    var stats: JSONValue {
        state.withLock { state in
            [
                "sandboxes": .number(Double(state.sandboxes.count)), "capacity": .number(Double(config.capacity)),
                "warm": .number(Double(state.warm.count)), "running_calls": .number(Double(processes.count)),
                "provisioned_total": .number(Double(state.provisioned)), "warm_hits": .number(Double(state.warmHits)),
                "isolation": .string(isolation.mode == .bubblewrap ? "bubblewrap" : "none"),
            ]
        }
    }

    /// Kills the processes of a running call; false when none was running.
    func cancel(sandbox: String, callID: String) -> Bool {
        processes.killAll(prefix: ProcessTable.key(sandbox: sandbox, call: callID)) > 0
    }

    var load: (sandboxes: Int, running: Int) { (state.withLock { $0.sandboxes.count }, processes.count) }

    // MARK: - Shutdown

    /// Refuses new work from now on.
    func beginShutdown() {
        state.withLock { $0.shuttingDown = true }
    }

    var runningCalls: Int { processes.count }

    /// Kills every running call and removes every workspace, warm ones included.
    func destroyAll() {
        let (sandboxes, warm) = state.withLock { state -> ([Sandbox], [Workspace]) in
            defer {
                state.sandboxes = [:]
                state.warm = []
            }
            return (Array(state.sandboxes.values), state.warm)
        }
        processes.killAll(prefix: nil)
        for sandbox in sandboxes {
            sandbox.markDestroyed()
            sandbox.workspace.remove()
        }
        warm.forEach { $0.remove() }
        try? FileManager.default.removeItem(atPath: config.root)
    }

    static func randomHex() -> String {
        String(format: "%016llx", UInt64.random(in: 0...UInt64.max))
    }
}
