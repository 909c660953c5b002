/// Which sandboxes a pool takes back: pure, so its rules are tested without a pool.
///
/// A sandbox with a running call is never taken. Idle ones go after the TTL; when the pool is full
/// and a new sandbox is wanted, the least recently used idle one goes at once, so no session is
/// refused a sandbox because finished or idle sessions hold them all.
enum ReclaimPlanner {
    struct Candidate: Equatable {
        var id: String
        var lastUsed: ContinuousClock.Instant
        var running: Int
    }

    /// Sandboxes idle for at least `ttl`, oldest first.
    static func idle(_ candidates: [Candidate], now: ContinuousClock.Instant, ttl: Duration) -> [Candidate] {
        candidates.filter { $0.running == 0 && now - $0.lastUsed >= ttl }.sorted { $0.lastUsed < $1.lastUsed }
    }

    /// The sandbox to give up for a new one: the least recently used without a running call.
    static func evict(_ candidates: [Candidate]) -> Candidate? {
        candidates.filter { $0.running == 0 }.min { $0.lastUsed < $1.lastUsed }
    }
}
