import DroverCore
import DroverStore
import Foundation
import Synchronization

/// Admits requests: authenticates keys and spends the organisation's per-minute allowance, taken
/// from Postgres in batches (`drover.api_admit`), so that most requests cost no database write.
/// A batch is tied to its key and its minute: a revoked key stops at its next batch at the latest
/// (within the minute), and a batch not spent in its minute is dropped.
final class Admissions: Sendable {
    let store: TenantStore

    private struct Allowance {
        var principal: APIPrincipal
        var remaining: Int
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
            let spent = allowances.withLock { allowances -> APIPrincipal? in
                guard var allowance = allowances[slot], allowance.expires > now, allowance.remaining > 0 else { return nil }
                allowance.remaining -= 1
                allowances[slot] = allowance
                return allowance.principal
            }
            if let spent { return .admitted(spent) }
            let refill = refills.withLock { refills -> Task<TenantStore.Admission, any Error> in
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
                            allowances[slot] = Allowance(principal: principal, remaining: granted, expires: now + .seconds(secondsLeft))
                        case .unknownKey, .limited:
                            allowances[slot] = nil
                        }
                    }
                    return admission
                }
                refills[slot] = task
                return task
            }
            switch try await refill.value {
            case .unknownKey: return .unknownKey
            case .limited(let retryAfter): return .limited(retryAfter: retryAfter)
            case .admitted: continue  // spend from the batch (or refill again if others took it all)
            }
        }
    }
}
