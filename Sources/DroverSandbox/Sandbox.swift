import DroverCore
import Foundation
import Synchronization

/// One sandbox: a workspace, its resource limits and its own uid. Tool calls run as fresh
/// processes in it; files persist in the workspace between calls.
///
/// `execute` is idempotent per `call_id`: a repeated call returns the first result, or waits for
/// it while the first is still running, so a harness that re-sends a call after a crash never
/// runs it twice. The table keeps the most recent `rememberedCalls` results.
final class Sandbox: Sendable {
    typealias Outcome = Result<JSONValue, PoolProtocol.Failure>

    let id: String
    let session: String?
    let resources: SandboxResources
    let workspace: Workspace
    let uid: UInt32
    /// Its control group; nil where the pool runs without them.
    let cgroup: SandboxCgroup?
    /// Its way out through the egress proxy; nil: no network at all.
    let network: SandboxNetwork?
    /// The environment's packages, mounted for every call; nil: none.
    let layer: PackageLayer?
    /// Whether the registry and metrics know of it (not the pool's own start-up check).
    let announced: Bool
    let createdAt = Date()
    static let rememberedCalls = 1024

    private enum Call {
        case running([CheckedContinuation<Outcome, Never>])
        case done(Outcome)
    }

    private struct Calls {
        var table: [String: Call] = [:]
        var finishedOrder: [String] = []
        var executed = 0
        var ended: SandboxEnd?
        /// Calls running now; a sandbox with one is never reclaimed.
        var running = 0
        var lastUsed = ContinuousClock.now
    }

    private let calls = Mutex(Calls())

    init(id: String, session: String?, resources: SandboxResources, workspace: Workspace, uid: UInt32, cgroup: SandboxCgroup?, network: SandboxNetwork? = nil, layer: PackageLayer? = nil,
         announced: Bool) {
        self.id = id
        self.layer = layer
        self.network = network
        self.cgroup = cgroup
        self.announced = announced
        self.session = session
        self.resources = resources
        self.workspace = workspace
        self.uid = uid
    }

    /// Tool calls actually run (not answered from the table).
    var executedCount: Int { calls.withLock { $0.executed } }

    /// Runs `body` once per `callID`; later calls with the same id get the first outcome.
    func once(_ callID: String, _ body: @Sendable () async -> Outcome) async -> Outcome {
        enum Decision {
            case run
            case answer(Outcome)
            case wait
        }
        let decision = calls.withLock { calls -> Decision in
            if let reason = calls.ended { return .answer(.failure(Self.gone(id, reason))) }
            switch calls.table[callID] {
            case .done(let outcome): return .answer(outcome)
            case .running: return .wait
            case nil:
                calls.table[callID] = .running([])
                calls.executed += 1
                calls.running += 1
                calls.lastUsed = .now
                return .run
            }
        }
        switch decision {
        case .answer(let outcome):
            return outcome
        case .wait:
            return await withCheckedContinuation { continuation in
                let immediate = calls.withLock { calls -> Outcome? in
                    switch calls.table[callID] {
                    case .running(var waiters):
                        waiters.append(continuation)
                        calls.table[callID] = .running(waiters)
                        return nil
                    case .done(let outcome): return outcome
                    case nil: return .failure(PoolProtocol.Failure(.internal, "call \(callID) vanished"))
                    }
                }
                if let immediate { continuation.resume(returning: immediate) }
            }
        case .run:
            let outcome = await body()
            let waiters = calls.withLock { calls -> [CheckedContinuation<Outcome, Never>] in
                calls.running -= 1
                calls.lastUsed = .now
                guard case .running(let waiters) = calls.table[callID] else { return [] }
                calls.table[callID] = .done(outcome)
                calls.finishedOrder.append(callID)
                if calls.finishedOrder.count > Self.rememberedCalls {
                    calls.table[calls.finishedOrder.removeFirst()] = nil
                }
                return waiters
            }
            waiters.forEach { $0.resume(returning: outcome) }
            return outcome
        }
    }

    /// Marks the sandbox ended: calls from now on get `sandbox_gone` (or `sandbox_reclaimed`).
    func markEnded(_ reason: SandboxEnd) {
        calls.withLock { if $0.ended == nil { $0.ended = reason } }
    }

    /// Marks it destroyed only if no call is running and none ran since `idleSince`: the pool's
    /// reclaim decision and a new call's start cannot interleave.
    func markReclaimedIfIdle(since idleSince: ContinuousClock.Instant, _ reason: SandboxEnd) -> Bool {
        calls.withLock { calls in
            guard calls.ended == nil, calls.running == 0, calls.lastUsed <= idleSince else { return false }
            calls.ended = reason
            return true
        }
    }

    /// `sandbox_reclaimed` (the session may take a fresh one) or `sandbox_gone`, saying why.
    static func gone(_ id: String, _ reason: SandboxEnd) -> PoolProtocol.Failure {
        switch reason {
        case .idle: .init(.sandboxReclaimed, "sandbox \(id) was reclaimed: idle longer than the pool's idle TTL (reason: idle)")
        case .evicted: .init(.sandboxReclaimed, "sandbox \(id) was reclaimed to make room for another (reason: evicted)")
        case .sessionEnded: .init(.sandboxGone, "sandbox \(id) was destroyed: its session ended (reason: session_ended)")
        case .shutdown: .init(.sandboxGone, "sandbox \(id) was destroyed: the pool shut down (reason: shutdown)")
        case .destroyed: .init(.sandboxGone, "sandbox \(id) was destroyed (reason: destroyed)")
        }
    }

    /// When it last started or finished a call (its creation, before any), whether one runs, and
    /// whether it has yet to see its first call (a sandbox just made for a session that is about to
    /// use it).
    var usage: (lastUsed: ContinuousClock.Instant, running: Int, awaitingFirstCall: Bool) {
        calls.withLock { ($0.lastUsed, $0.running, $0.table.isEmpty) }
    }

    var json: JSONValue {
        [
            "sandbox": .string(id), "session": session.map(JSONValue.string) ?? .null,
            "created_at": .string(createdAt.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))),
            "calls": .number(Double(executedCount)), "resources": resources.json,
        ]
    }
}
