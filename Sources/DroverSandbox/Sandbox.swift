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
        var destroyed = false
    }

    private let calls = Mutex(Calls())

    init(id: String, session: String?, resources: SandboxResources, workspace: Workspace, uid: UInt32) {
        self.id = id
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
            if calls.destroyed { return .answer(.failure(PoolProtocol.Failure(.sandboxGone, "sandbox \(id) was destroyed"))) }
            switch calls.table[callID] {
            case .done(let outcome): return .answer(outcome)
            case .running: return .wait
            case nil:
                calls.table[callID] = .running([])
                calls.executed += 1
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

    /// Marks the sandbox destroyed: calls from now on get `sandbox_gone`.
    func markDestroyed() {
        calls.withLock { $0.destroyed = true }
    }

    var json: JSONValue {
        [
            "sandbox": .string(id), "session": session.map(JSONValue.string) ?? .null,
            "created_at": .string(createdAt.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))),
            "calls": .number(Double(executedCount)), "resources": resources.json,
        ]
    }
}
