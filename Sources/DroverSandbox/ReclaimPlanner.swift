/// Which sandboxes a pool takes back: pure, so its rules are tested without a pool.
///
/// A sandbox with a running call is never taken. Idle ones go after the TTL; when the pool is full
/// and a new sandbox is wanted, the least recently used idle one goes at once, so no session is
/// refused a sandbox because finished or idle sessions hold them all; but not one made moments
/// ago that has yet to run its first call (under a burst, provisions waiting in line took each
/// other's new sandboxes before their calls arrived, over and over).
enum ReclaimPlanner {
    struct Candidate: Equatable {
        var id: String
        var lastUsed: ContinuousClock.Instant
        var running: Int
        var awaitingFirstCall = false
    }

    /// How long a new sandbox is kept for its first call (a harness that died after provisioning
    /// leaves one that is reclaimable after this).
    static let firstCallGrace: Duration = .seconds(30)

    /// Sandboxes idle for at least `ttl`, oldest first.
    static func idle(_ candidates: [Candidate], now: ContinuousClock.Instant, ttl: Duration) -> [Candidate] {
        candidates.filter { $0.running == 0 && now - $0.lastUsed >= ttl }.sorted { $0.lastUsed < $1.lastUsed }
    }

    /// The sandbox to give up for a new one: the least recently used without a running call, other
    /// than one still within its first call's grace.
    static func evict(_ candidates: [Candidate], now: ContinuousClock.Instant = .now) -> Candidate? {
        candidates.filter { $0.running == 0 && !($0.awaitingFirstCall && now - $0.lastUsed < firstCallGrace) }.min { $0.lastUsed < $1.lastUsed }
    }
}
