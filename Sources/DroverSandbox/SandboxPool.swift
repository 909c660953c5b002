import DroverCore
import DroverIO
import Foundation
import Synchronization

/// Why a sandbox ended, as the registry records it and `sandbox_gone` says.
public enum SandboxEnd: String, Sendable {
    /// A client asked (`destroy`).
    case destroyed
    /// Its session ended for good (terminated or deleted).
    case sessionEnded = "session_ended"
    /// Idle longer than the pool's `--idle-ttl`.
    case idle
    /// The pool was full and it was the least recently used.
    case evicted
    case shutdown

    /// Whether the sandbox was taken back while its session may still want it.
    public var isReclaim: Bool { self == .idle || self == .evicted }
}

/// The sandboxes of one pool daemon: provisioning (from a warm pool of ready workspaces when it
/// can), lookup, reclaiming, destruction, and the kill switch for shutdown.
final class SandboxPool: Sendable {
    struct Config: Sendable {
        var root: String
        var capacity: Int
        var warm: Int
        /// First uid for sandboxes when the daemon runs as root.
        var uidBase: UInt32
        /// Seconds a sandbox may sit idle before it is reclaimed (nil: never).
        var idleTTL: Double?
        /// Threads for blocking waits on running calls; more calls wait for a free one.
        var waitThreads = 256
        /// Lets `memory_mb` and `processes` fall back to per-process rlimits where no control group
        /// can be made (otherwise such requests are refused).
        var allowUnenforcedLimits = false
        /// Try a size-capped tmpfs per sandbox (off: workspaces on the host filesystem).
        var diskQuota = true
    }

    /// Told about sandboxes made and ended (the Postgres registry listens).
    enum Event: Sendable {
        case provisioned(id: String, session: String?)
        case ended(id: String, reason: SandboxEnd)
    }

    typealias Failure = PoolProtocol.Failure

    let config: Config
    let isolation: Isolation
    let tools: Tools
    let log: Log
    /// Control groups per sandbox, where the host allows them.
    let cgroups: SandboxCgroups?
    /// Whether each sandbox's folder is a size-capped tmpfs (`disk_mb` over `/workspace` and `/tmp`).
    let diskQuota: Bool
    /// With quotas, the mount the workspaces sit under (`Workspace.mountParent`).
    let workspaces: String?
    let events: @Sendable (Event) -> Void
    /// Environments' packages, installed once per package set (nil: provisions with packages are
    /// refused).
    let layers: PackageLayers?
    /// Provisions waiting for room when every sandbox is running a call.
    let admission = AdmissionQueue()
    /// Creating and removing workspaces, and cgroups: filesystem work on the pool's own threads.
    let housekeeping = BlockingPool(name: "drover.pool.housekeeping", threads: 4)

    private struct State {
        var sandboxes: [String: Sandbox] = [:]
        /// Slots taken by provisions under way, so that concurrent ones never exceed the capacity.
        var reserved = 0
        /// Why recently ended sandboxes ended, so that late calls get `sandbox_gone` with the reason.
        var ended: [String: SandboxEnd] = [:]
        var endedOrder: [String] = []
        var warm: [Prepared] = []
        var warming = 0
        var nextIndex: UInt32 = 0
        var shuttingDown = false
        var provisioned = 0
        var warmHits = 0
        var reclaimed = 0
    }

    private let state = Mutex(State())
    private let processes = ProcessTable()
    static let rememberedEnded = 4096

    init(
        config: Config, isolation: Isolation, cgroups: SandboxCgroups?, log: Log, egress: EgressProxy? = nil, layers: PackageLayers? = nil,
        events: @escaping @Sendable (Event) -> Void = { _ in }
    ) throws {
        self.config = config
        self.layers = layers
        self.cgroups = cgroups
        self.log = log
        self.events = events
        try FileManager.default.createDirectory(atPath: config.root, withIntermediateDirectories: true)
        // Sandboxes run as other uids and must reach their own workspace, but may not list others.
        chmod(config.root, 0o711)
        self.isolation = isolation.sharingEtc(in: config.root + "/etc")
        diskQuota = config.diskQuota && isolation.mode == .bubblewrap && Workspace.quotasWork(under: config.root)
        workspaces = diskQuota ? Workspace.mountParent(config.root + "/workspaces", uidBase: config.uidBase) : nil
        tools = Tools(
            isolation: self.isolation, track: { [processes] key, pid in processes.set(key, pid) },
            files: BlockingPool(name: "drover.pool.files", threads: 16),
            waits: BlockingPool(name: "drover.pool.calls", threads: config.waitThreads), egress: egress)
    }

    /// What this pool enforces, for `stats`, `/readyz` and the start-up log.
    var enforcement: JSONValue {
        [
            "cgroups": .string(cgroups?.version ?? "none"),
            "memory": .string(cgroups != nil ? "per_sandbox" : config.allowUnenforcedLimits ? "per_process" : "refused"),
            "processes": .string(cgroups != nil ? "per_sandbox" : config.allowUnenforcedLimits ? "per_uid" : "refused"),
            "disk": .string(diskQuota ? "per_sandbox" : "per_file"),
            "seccomp": .bool(isolation.seccomp != nil),
        ]
    }

    // MARK: - Provisioning

    /// A new sandbox. Without a `setup` script it comes from the warm pool when one is ready. A
    /// full pool first reclaims its least recently used idle sandbox.
    ///
    /// `announced`: whether the registry and metrics hear of it (the start-up self-check's is not).
    ///
    /// `network`: its way out (the egress proxy); its repositories are cloned through the proxy,
    /// inside the sandbox, before `setup` runs.
    ///
    /// `wait`: seconds it may wait, in line, for room when every sandbox is running a call (0:
    /// refused with `capacity` at once).
    ///
    /// `packages`: the environment's, from their layer (`PackageLayers`), installed first if this
    /// is the first sandbox to need them.
    func provision(_ resources: SandboxResources, session: String?, network: SandboxNetwork? = nil, packages: PackageSet = PackageSet(),
                   announced: Bool = true, wait: Double = 0) async throws(Failure) -> Sandbox {
        let layer = packages.isEmpty ? nil : try await packageLayer(packages, network: network, wait: wait)
        return try await make(resources, session: session, network: network, layer: layer, announced: announced, wait: wait)
    }

    /// The layer of `packages`, installed when the pool has none yet: in a sandbox of its own,
    /// whose way out reaches the package registries only (or anything, under `unrestricted`),
    /// with the layer's folder writable in it. The sandbox is gone when the install is.
    private func packageLayer(_ packages: PackageSet, network: SandboxNetwork?, wait: Double) async throws(Failure) -> PackageLayer {
        guard let layers else { throw Failure(.packagesFailed, "this pool installs no packages") }
        let policy = network?.policy.kind == .unrestricted ? NetworkPolicy(kind: .unrestricted) : NetworkPolicy(kind: .limited, allowedHosts: layers.hosts)
        var resources = SandboxResources()
        resources.timeout = layers.timeout
        resources.cpuSeconds = Int(layers.timeout)
        resources.diskMB = 4096
        return try await layers.layer(for: packages) { [self, resources] folder, script in
            let sandbox: Sandbox
            do {
                sandbox = try await make(
                    resources, session: nil, network: SandboxNetwork(policy: policy, repositories: []),
                    layer: PackageLayer(path: folder, packages: packages, writable: true), announced: false, wait: wait)
            } catch let error as Failure {
                return Failure(error.code == .networkUnavailable ? .packagesFailed : error.code, "the environment's packages need a sandbox to install in: \(error.message)")
            } catch {
                return Failure(.internal, "\(error)")
            }
            // The install runs as the build sandbox's own user.
            chown(folder, sandbox.uid, sandbox.uid)
            let outcome = await tools.run("bash", input: ["command": .string(script)], in: sandbox)
            sandbox.markEnded(.destroyed)
            await end(sandbox, .destroyed)
            if case .success(let result) = outcome, result["is_error"]?.boolValue == false { return nil }
            let detail = ((try? outcome.get())?["output"]?.stringValue ?? "\(outcome)").trimmingCharacters(in: .whitespacesAndNewlines)
            return Failure(.packagesFailed, "installing the environment's packages failed: \(String(detail.suffix(1500)))")
        }
    }

    private func make(_ resources: SandboxResources, session: String?, network: SandboxNetwork?, layer: PackageLayer?, announced: Bool,
                      wait: Double) async throws(Failure) -> Sandbox {
        if network != nil && (tools.egress == nil || !isolation.networking) {
            throw Failure(
                .networkUnavailable,
                "this pool cannot give sandboxes a network (it needs bubblewrap and root, to make each call's network namespace); "
                    + "use networking {\"type\": \"none\"} and no repositories")
        }
        if cgroups == nil && !config.allowUnenforcedLimits {
            let named = resources.named.intersection(["memory_mb", "processes"])
            if !named.isEmpty {
                throw Failure(
                    .limitUnenforceable,
                    "this pool cannot bound \(named.sorted().joined(separator: " and ")) per sandbox (no control group can be made on its host); "
                        + "start it with --allow-unenforced-limits to accept per-process limits instead")
            }
        }
        try await reserveSlot(wait: wait)
        var reserved = true
        defer {
            if reserved {
                state.withLock { $0.reserved -= 1 }
                admission.wakeFirst()
            }
        }
        let warm = state.withLock { state -> Prepared? in
            state.provisioned += 1
            guard resources.setup == nil, let prepared = state.warm.popLast() else { return nil }
            state.warmHits += 1
            return prepared
        }
        defer { refillWarm() }
        let prepared: Prepared
        do {
            prepared = try await housekeeping.run { [self] in
                guard let warm else { return try prepare(resources) }
                do {
                    // A warm one was made with the default limits: set the asked-for ones.
                    if let quota = warm.workspace.quotaBytes, quota != resources.diskMB << 20 {
                        try warm.workspace.resize(to: resources.diskMB << 20)
                    }
                    if let cgroup = warm.cgroup {
                        try cgroups?.setLimits(cgroup.folders, memoryMB: resources.memoryMB, processes: resources.processes)
                    }
                    return warm
                } catch {
                    release(warm.workspace, warm.cgroup)
                    throw error
                }
            }
        } catch {
            throw Failure(.internal, "cannot make a sandbox: \(error)")
        }
        let (id, workspace, cgroup) = (prepared.id, prepared.workspace, prepared.cgroup)
        let sandbox = Sandbox(
            id: id, session: session, resources: resources, workspace: workspace, uid: workspace.owner?.uid ?? getuid(), cgroup: cgroup,
            network: network, layer: layer, announced: announced)
        for repository in network?.repositories ?? [] {
            try await runProvisionScript(sandbox,  Self.cloneScript(repository)) { detail in
                Failure(.repositoryFailed, "cloning \(repository.url) into \(repository.mountPath) failed: \(detail)")
            }
            log.info("repository cloned", ("sandbox", .string(sandbox.id)), ("repository", repository.logged))
        }
        if let setup = resources.setup {
            try await runProvisionScript(sandbox,  setup) { Failure(.setupFailed, "the setup script failed: \($0)") }
            log.info("setup ran", ("sandbox", .string(sandbox.id)))
        }
        let admitted = state.withLock { state -> Bool in
            guard !state.shuttingDown else { return false }
            state.sandboxes[sandbox.id] = sandbox
            state.reserved -= 1
            return true
        }
        reserved = !admitted
        guard admitted else {
            release(sandbox.workspace, sandbox.cgroup)
            throw Failure(.shuttingDown, "the pool is shutting down")
        }
        if announced { events(.provisioned(id: sandbox.id, session: session)) }
        return sandbox
    }

    /// Runs a provision's script in the new sandbox; when it fails, the sandbox is released and
    /// `failure` is thrown with the end of its output.
    private func runProvisionScript(_ sandbox: Sandbox, _ script: String, failure: (String) -> Failure) async throws(Failure) {
        let outcome = await tools.run("bash", input: ["command": .string(script)], in: sandbox)
        if case .success(let result) = outcome, result["is_error"]?.boolValue == false { return }
        release(sandbox.workspace, sandbox.cgroup)
        let detail = (try? outcome.get())?["output"]?.stringValue ?? "\(outcome)"
        throw failure(String(detail.suffix(2000)))
    }

    /// Clones a repository inside the sandbox, through the proxy's relay, so that `origin` is the
    /// relay's URL and the token stays with the proxy. Every value is checked at parse
    /// (`SandboxNetwork`), and quoted here anyway.
    static func cloneScript(_ repository: RepositoryResource) -> String {
        func quoted(_ text: String) -> String { "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'" }
        var script = "set -e\ngit clone --quiet"
        if case .branch(let name) = repository.checkout { script += " --branch " + quoted(name) }
        script += " " + quoted(repository.relayURL) + " " + quoted(repository.mountPath) + "\n"
        if case .commit(let sha) = repository.checkout { script += "git -C \(quoted(repository.mountPath)) checkout --quiet \(quoted(sha))\n" }
        script += "git -C \(quoted(repository.mountPath)) config user.name 'Drover agent'\n"
        script += "git -C \(quoted(repository.mountPath)) config user.email agent@drover.invalid\n"
        return script
    }

    /// Takes a slot for a new sandbox, reclaiming the least recently used idle one when full; when
    /// every sandbox is running a call, waits in line (`AdmissionQueue`) for up to `wait` seconds.
    private func reserveSlot(wait: Double) async throws(Failure) {
        var ticket: UInt64?
        defer { if let ticket { admission.remove(ticket) } }
        let deadline = ContinuousClock.now + .seconds(wait)
        while true {
            // First come, first served: while others wait, a newcomer queues behind them. A pool
            // shutting down answers everyone in line at once.
            let mayTry = wait <= 0 || (ticket.map(admission.isFirst) ?? admission.isEmpty) || state.withLock { $0.shuttingDown }
            if mayTry, try await tryReserve(canWait: wait > 0) { return }
            if ticket == nil {
                // In line before parking, then one more look: room that appeared between the
                // try and the enqueue woke no one (the line was empty), and would be missed.
                ticket = admission.enqueue()
                continue
            }
            let left = deadline - ContinuousClock.now
            guard left > .zero else {
                throw Failure(.capacity, "no room for \(Int(wait.rounded())) s: all \(config.capacity) sandboxes of this pool were running calls")
            }
            await admission.park(ticket!, timeout: left)
            // Its client went away (a harness that died): out of the line, so no room is kept for no one.
            if Task.isCancelled { throw Failure(.clientGone, "the connection that asked for this sandbox closed while it waited in line") }
        }
    }

    /// One attempt at a slot: true when taken, false when the pool is full of running calls and
    /// the caller may wait (otherwise that is a `capacity` refusal).
    private func tryReserve(canWait: Bool) async throws(Failure) -> Bool {
        while true {
            enum Step {
                case reserved
                case evict(Sandbox, ContinuousClock.Instant)
                case refuse(Failure)
            }
            let step = state.withLock { state -> Step in
                if state.shuttingDown { return .refuse(Failure(.shuttingDown, "the pool is shutting down")) }
                if state.sandboxes.count + state.reserved < config.capacity {
                    state.reserved += 1
                    return .reserved
                }
                let candidates = state.sandboxes.values.map { sandbox in
                    let usage = sandbox.usage
                    return ReclaimPlanner.Candidate(
                        id: sandbox.id, lastUsed: usage.lastUsed, running: usage.running, awaitingFirstCall: usage.awaitingFirstCall)
                }
                guard let victim = ReclaimPlanner.evict(candidates), let sandbox = state.sandboxes[victim.id] else {
                    return .refuse(Failure(.capacity, "the pool holds its capacity of \(config.capacity) sandboxes, each running a call or about to"))
                }
                return .evict(sandbox, victim.lastUsed)
            }
            switch step {
            case .reserved: return true
            case .refuse(let failure) where failure.code == .capacity && canWait: return false
            case .refuse(let failure): throw failure
            case .evict(let sandbox, let lastUsed):
                // Fails when a call started in it meanwhile; then look again.
                guard sandbox.markReclaimedIfIdle(since: lastUsed, .evicted) else { continue }
                // Its slot is this provision's at once, in the step that takes it off the books;
                // its workspace and group are removed in the background. Awaiting that here kept
                // the whole line waiting on one removal at a time (a burst drained at one
                // unmount per session).
                let took = state.withLock { state -> Bool in
                    guard Self.detach(sandbox, .evicted, from: &state) else { return false }
                    state.reserved += 1
                    return true
                }
                guard took else { continue }
                Task { await dispose(sandbox, .evicted) }
                return true
            }
        }
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
        Task { [self] in
            for _ in 0..<toMake {
                let prepared = try? await housekeeping.run { [self] in try prepare(SandboxResources()) }
                let keep = state.withLock { state -> Bool in
                    state.warming -= 1
                    guard let prepared, !state.shuttingDown else { return false }
                    state.warm.append(prepared)
                    return true
                }
                if !keep, let prepared { release(prepared.workspace, prepared.cgroup) }
            }
        }
    }

    /// What a sandbox is made of before it is handed out: its id, workspace and control group.
    /// Made ahead for the warm pool, where joining a cgroup (v1: the spawner thread's move costs
    /// a few milliseconds, an RCU grace period) is paid off the provision's path.
    struct Prepared: Sendable {
        let id: String
        let workspace: Workspace
        let cgroup: SandboxCgroup?
    }

    private func prepare(_ resources: SandboxResources) throws -> Prepared {
        let id = "sb_" + Self.randomHex()
        let workspace = try makeWorkspace(quotaMB: resources.diskMB)
        do {
            let cgroup = try cgroups?.make(sandbox: id, memoryMB: resources.memoryMB, processes: resources.processes)
            return Prepared(id: id, workspace: workspace, cgroup: cgroup)
        } catch {
            workspace.remove()
            throw error
        }
    }

    private func makeWorkspace(quotaMB: Int) throws -> Workspace {
        let index = state.withLock { state -> UInt32 in
            defer { state.nextIndex &+= 1 }
            return state.nextIndex
        }
        let owner: (uid: UInt32, gid: UInt32)? =
            isolation.mode == .bubblewrap && geteuid() == 0
            ? (config.uidBase + index % Self.uidsPerPool, config.uidBase + index % Self.uidsPerPool) : nil
        return try Workspace(
            home: (workspaces ?? config.root) + "/" + Workspace.folderPrefix + Self.randomHex(), parent: workspaces, owner: owner, quotaBytes: diskQuota ? quotaMB << 20 : nil)
    }

    /// uids a pool cycles through; pools on one host take disjoint ranges (`PoolDaemon`).
    static let uidsPerPool: UInt32 = 60_000

    // MARK: - Lookup and destruction

    func sandbox(_ id: String) throws(Failure) -> Sandbox {
        let found = state.withLock { state -> Result<Sandbox, Failure> in
            if let sandbox = state.sandboxes[id] { return .success(sandbox) }
            if let reason = state.ended[id] { return .failure(Sandbox.gone(id, reason)) }
            return .failure(Failure(.noSuchSandbox, "no sandbox \(id) in this pool"))
        }
        return try found.get()
    }

    /// Destroys a sandbox now, whatever runs in it.
    func destroy(_ id: String, reason: SandboxEnd = .destroyed) async throws(Failure) {
        let sandbox = try sandbox(id)
        sandbox.markEnded(reason)
        await end(sandbox, reason)
    }

    /// Reclaims sandboxes idle longer than the TTL; returns how many.
    @discardableResult
    func reclaimIdle(now: ContinuousClock.Instant = .now) async -> Int {
        guard let ttl = config.idleTTL else { return 0 }
        let idle = state.withLock { state in
            ReclaimPlanner.idle(
                state.sandboxes.values.map { sandbox in
                    let usage = sandbox.usage
                    return ReclaimPlanner.Candidate(id: sandbox.id, lastUsed: usage.lastUsed, running: usage.running)
                }, now: now, ttl: .seconds(ttl)
            ).compactMap { candidate in state.sandboxes[candidate.id].map { ($0, candidate.lastUsed) } }
        }
        var count = 0
        for (sandbox, lastUsed) in idle where sandbox.markReclaimedIfIdle(since: lastUsed, .idle) {
            await end(sandbox, .idle)
            count += 1
        }
        return count
    }

    /// Removes an ended sandbox (already marked ended): its processes, workspace and group.
    private func end(_ sandbox: Sandbox, _ reason: SandboxEnd) async {
        guard state.withLock({ Self.detach(sandbox, reason, from: &$0) }) else { return }
        await dispose(sandbox, reason)
    }

    /// Takes an ended sandbox out of the pool's books; false when it was out already.
    private static func detach(_ sandbox: Sandbox, _ reason: SandboxEnd, from state: inout State) -> Bool {
        guard state.sandboxes.removeValue(forKey: sandbox.id) != nil else { return false }
        state.ended[sandbox.id] = reason
        state.endedOrder.append(sandbox.id)
        if state.endedOrder.count > rememberedEnded { state.ended[state.endedOrder.removeFirst()] = nil }
        if reason.isReclaim { state.reclaimed += 1 }
        return true
    }

    /// Kills a detached sandbox's processes and removes its workspace and group.
    private func dispose(_ sandbox: Sandbox, _ reason: SandboxEnd) async {
        processes.killAll(prefix: sandbox.id + "/")
        _ = try? await housekeeping.run { [self] in release(sandbox.workspace, sandbox.cgroup) }
        admission.wakeFirst()
        guard sandbox.announced else { return }
        log.info(
            reason.isReclaim ? "sandbox reclaimed" : "sandbox destroyed", ("sandbox", .string(sandbox.id)),
            ("session", sandbox.session.map(JSONValue.string) ?? .null), ("reason", .string(reason.rawValue)))
        events(.ended(id: sandbox.id, reason: reason))
    }

    /// Kills what is left in the sandbox's group, removes it and the workspace (blocking).
    private func release(_ workspace: Workspace, _ cgroup: SandboxCgroup?) {
        cgroup?.remove()
        workspace.remove()
    }

    var all: [Sandbox] { state.withLock { Array($0.sandboxes.values) }.sorted { $0.createdAt < $1.createdAt } }

    var stats: JSONValue {
        state.withLock { state in
            [
                "sandboxes": .number(Double(state.sandboxes.count)), "capacity": .number(Double(config.capacity)),
                "warm": .number(Double(state.warm.count)), "running_calls": .number(Double(processes.count)),
                "provisioned_total": .number(Double(state.provisioned)), "warm_hits": .number(Double(state.warmHits)),
                "reclaimed_total": .number(Double(state.reclaimed)), "waiting": .number(Double(admission.count)),
                "isolation": .string(isolation.mode == .bubblewrap ? "bubblewrap" : "none"), "enforcement": enforcement,
                "package_layers": layers?.stats ?? .null,
            ]
        }
    }

    /// Kills the processes of a running call; false when none was running.
    func cancel(sandbox: String, callID: String) -> Bool {
        processes.killAll(prefix: ProcessTable.key(sandbox: sandbox, call: callID)) > 0
    }

    var load: (sandboxes: Int, running: Int) { (state.withLock { $0.sandboxes.count }, processes.count) }

    /// A call ended: its sandbox may now be reclaimed for a provision waiting in line.
    func callEnded() { admission.wakeFirst() }

    // MARK: - Shutdown

    /// Refuses new work from now on.
    func beginShutdown() {
        state.withLock { $0.shuttingDown = true }
        // Provisions waiting in line see it and give up (`shutting_down`: the harness goes elsewhere).
        admission.wakeAll()
    }

    var runningCalls: Int { processes.count }

    /// Kills every running call and removes every workspace, warm ones included (on the pool's
    /// own threads: removing groups and trees blocks).
    func destroyAll() async {
        _ = try? await housekeeping.run { [self] in removeEverything() }
    }

    private func removeEverything() {
        let (sandboxes, warm) = state.withLock { state -> ([Sandbox], [Prepared]) in
            defer {
                state.sandboxes = [:]
                state.warm = []
            }
            return (Array(state.sandboxes.values), state.warm)
        }
        processes.killAll(prefix: nil)
        for sandbox in sandboxes {
            sandbox.markEnded(.shutdown)
            release(sandbox.workspace, sandbox.cgroup)
        }
        warm.forEach { release($0.workspace, $0.cgroup) }
        cgroups?.removeAll()
        if let workspaces { umount2(workspaces, Int32(MNT_DETACH)) }
        try? FileManager.default.removeItem(atPath: config.root)
    }

    static func randomHex() -> String {
        String(format: "%016llx", UInt64.random(in: 0...UInt64.max))
    }
}
