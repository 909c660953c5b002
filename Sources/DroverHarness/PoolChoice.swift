import DroverStore

/// Which pool a provision goes to first: a pure decision, so that it is tested without pools.
///
/// The registry orders live pools by their recorded sandboxes plus the provisions waiting in
/// their lines, for their capacity. Under a burst every pool is full, and the lines' lengths are
/// as old as the last heartbeat, so that order stayed the same for seconds and sent every
/// provision of every harness to one pool's line while the other's sandboxes sat idle (one
/// pool of two served 619 of 1,000 sessions). So the harness adds the provisions it has sent
/// and not yet had answered at each pool, which it knows now, and breaks ties at random: each
/// harness spreads its own waiting provisions evenly, and so the fleet's are spread too.
enum PoolChoice {
    static func order<Random: RandomNumberGenerator>(
        _ pools: [PoolRecord], outstanding: [String: Int], using random: inout Random
    ) -> [PoolRecord] {
        pools
            .map { pool in
                let load = Double(pool.sandboxes + (outstanding[pool.address] ?? 0)) / Double(max(pool.capacity, 1))
                return (pool, load, UInt64.random(in: 0...UInt64.max, using: &random))
            }
            .sorted { ($0.1, $0.0.runningCalls, $0.2) < ($1.1, $1.0.runningCalls, $1.2) }
            .map(\.0)
    }
}
