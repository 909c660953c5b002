import DroverCore
import DroverStore
import Foundation
import Synchronization

/// Admits requests: authenticates keys and spends the organisation's per-minute allowance, taken
/// from Postgres in batches (`drover.api_admit`), so that most requests cost no database write.
/// A batch is tied to its key and its minute: a revoked key stops at its next batch at the latest
/// (within the minute), and a batch not spent in its minute is dropped.
///
/// The next batch is fetched in the background once half of the current one is spent, so
/// requests do not stop for it: at 3,500 requests/s a batch of 50 lasted 14 ms, and every
/// request in flight waited for each refill's round trip and commit. A batch that arrives while
/// the current one is still good adds to it, so what is left of a minute's batch may be spent in
/// the next minute: at most half a batch beyond the limit at each turn of the minute.
final class Admissions: Sendable {
    let store: TenantStore

    private struct Allowance {
        var principal: APIPrincipal
        var remaining: Int
        /// What the last batch granted: the next is fetched when fewer than half of it remain.
        var granted: Int
        var expires: ContinuousClock.Instant
    }

    private let allowances = Mutex<[String: Allowance]>([:])
    /// One refill at a time per key and kind: concurrent requests wait for it and share the batch
    /// (else each would take a batch, and a burst would spend a minute's allowance at once).
    private let refills = Mutex<[String: Task<TenantStore.Admission, any Error>]>([:])

    init(store: TenantStore) { self.store = store }

    enum Outcome {
        case admitted(APIPrincipal)
        case unknownKey
        case limited(retryAfter: Int)
    }

    func admit(_ secret: String, kind: String) async throws -> Outcome {
        let slot = kind + "\u{0}" + secret
        while true {
            let now = ContinuousClock.now
            let spent = allowances.withLock { allowances -> (principal: APIPrincipal, low: Bool)? in
                guard var allowance = allowances[slot], allowance.expires > now, allowance.remaining > 0 else { return nil }
                allowance.remaining -= 1
                allowances[slot] = allowance
                return (allowance.principal, allowance.remaining * 2 < allowance.granted)
            }
            if let spent {
                if spent.low { _ = refill(slot, secret: secret, kind: kind) }
                return .admitted(spent.principal)
            }
            switch try await refill(slot, secret: secret, kind: kind).value {
            case .unknownKey: return .unknownKey
            case .limited(let retryAfter): return .limited(retryAfter: retryAfter)
            case .admitted: continue  // spend from the batch (or refill again if others took it all)
            }
        }
    }

    /// The refill of `slot` in flight, or a new one.
    private func refill(_ slot: String, secret: String, kind: String) -> Task<TenantStore.Admission, any Error> {
        refills.withLock { refills -> Task<TenantStore.Admission, any Error> in
            if let running = refills[slot] { return running }
            let task = Task { [self] in
                // Unregistered before it completes: a caller that finds no batch left starts
                // a new refill instead of reading this finished one again (and spinning).
                defer { self.refills.withLock { _ = $0.removeValue(forKey: slot) } }
                let admission = try await store.admit(secret, kind: kind)
                let now = ContinuousClock.now
                self.allowances.withLock { allowances in
                    switch admission {
                    case .admitted(let principal, let granted, let secondsLeft):
                        var left = 0
                        if let current = allowances[slot], current.expires > now, current.principal == principal { left = current.remaining }
                        allowances[slot] = Allowance(principal: principal, remaining: left + granted, granted: granted, expires: now + .seconds(secondsLeft))
                    case .unknownKey:
                        allowances[slot] = nil
                    case .limited:
                        // What was granted before stays to be spent; the next refill is the one that waits.
                        allowances[slot]?.granted = 0
                    }
                }
                return admission
            }
            refills[slot] = task
            return task
        }
    }
}
