import DroverCLI
import DroverCore
import DroverPostgres
import DroverStore
import Foundation

/// `drover bench queue`: throughput and latency of the lease queue and session log, measured in a
/// scratch database on the server in DATABASE_URL.
struct BenchQueueCommand: Command {
    static let name = "bench queue"
    static let summary = "benchmark claims, no-op session cycles, appends and log reads"
    static let help = """
        usage: drover bench queue [--sessions N] [--claimers 1,2,4,8] [--batch N] [--appends N]
                                  [--events N] [--reads N] [--json]

        Runs in a scratch database (created on the DATABASE_URL server, dropped afterwards):
          claims/s           sessions claimed per second, each claimer on its own connection
          cycles/s           full no-op cycles, set-based: each statement (drover.cycle) commits
                             a batch's finishing writes (session.status_idle + release, per
                             session) and claims the next batch (which appends each claimed
                             session's session.status_running): one round trip and one commit
                             per batch
          cycles_grouped     the same cycle as a harness runs it: claim, then each session's
                             closing writes through a GroupCommitter shared by the batch
          cycles_unbatched   the same with one commit per write, for comparison
          append p50/p99     one append_event under a lease, sequential
          get_events p50/p99 get_events(limit 100) at random positions, and tail 100, in a log of
                             --events events

          --sessions N   sessions per throughput run (default 10000)
          --claimers L   claimer counts to run (default 1,2,4,8)
          --batch N      sessions per claim (default 32)
          --appends N    appends for the latency run (default 5000)
          --events N     log size for the read run (default 1000000)
          --reads N      reads per read run (default 2000)
          --json         print one JSON object instead of a table
        """
    static let options: Set<String> = ["sessions", "claimers", "batch", "appends", "events", "reads"]
    static let flags: Set<String> = ["json"]

    static func run(_ arguments: Arguments) async throws {
        let sessions = try arguments.int("sessions") ?? 10_000
        let batch = try arguments.int("batch") ?? 32
        let appends = try arguments.int("appends") ?? 5000
        let eventCount = try arguments.int("events") ?? 1_000_000
        let reads = try arguments.int("reads") ?? 2000
        let claimerCounts = try (arguments.value("claimers") ?? "1,2,4,8").split(separator: ",").map {
            guard let n = Int($0), n > 0 else { throw UsageError("--claimers takes a list like 1,2,4,8") }
            return n
        }
        let database = try await BenchDatabase.create()
        Progress.say("scratch database \(database.name)")
        try await BenchDatabase.run(database, stop: {}) {
            let bench = try await QueueBench(database: database, batch: batch)
            defer { bench.close() }
            var results: [BenchResult] = []
            for claimers in claimerCounts {
                let rate = try await bench.claimRate(sessions: sessions, claimers: claimers)
                Progress.say("claims, \(claimers) claimers: \(Int(rate))/s")
                results.append(BenchResult(name: "claims_per_s_\(claimers)", value: rate, unit: "sessions/s"))
            }
            for claimers in claimerCounts {
                let rate = try await bench.cycleRate(sessions: sessions, claimers: claimers, mode: .setBased)
                Progress.say("no-op cycles, set-based, \(claimers) claimers: \(Int(rate))/s")
                results.append(BenchResult(name: "cycles_per_s_\(claimers)", value: rate, unit: "cycles/s"))
            }
            for claimers in claimerCounts {
                let rate = try await bench.cycleRate(sessions: sessions, claimers: claimers, mode: .grouped)
                Progress.say("no-op cycles, group commit, \(claimers) claimers: \(Int(rate))/s")
                results.append(BenchResult(name: "cycles_grouped_per_s_\(claimers)", value: rate, unit: "cycles/s"))
            }
            for claimers in claimerCounts {
                let rate = try await bench.cycleRate(sessions: sessions, claimers: claimers, mode: .unbatched)
                Progress.say("no-op cycles, one commit per write, \(claimers) claimers: \(Int(rate))/s")
                results.append(BenchResult(name: "cycles_unbatched_per_s_\(claimers)", value: rate, unit: "cycles/s"))
            }
            let append = try await bench.appendLatency(count: appends)
            results.append(BenchResult(name: "append_p50_ms", value: append.percentile(50), unit: "ms"))
            results.append(BenchResult(name: "append_p99_ms", value: append.percentile(99), unit: "ms"))
            let (slice, tail) = try await bench.readLatency(events: eventCount, reads: reads)
            results.append(BenchResult(name: "get_events_100_p50_ms", value: slice.percentile(50), unit: "ms"))
            results.append(BenchResult(name: "get_events_100_p99_ms", value: slice.percentile(99), unit: "ms"))
            results.append(BenchResult(name: "get_events_tail_100_p50_ms", value: tail.percentile(50), unit: "ms"))
            results.append(BenchResult(name: "get_events_tail_100_p99_ms", value: tail.percentile(99), unit: "ms"))
            BenchReport.print("drover bench queue", results, json: arguments.has("json"), extra: [
                ("benchmark", "queue"), ("cores", String(ProcessInfo.processInfo.activeProcessorCount)),
                ("server_version", bench.serverVersion), ("sessions_per_run", String(sessions)),
                ("batch", String(batch)), ("log_events", String(eventCount)),
            ])
        }
    }
}

/// The measurements behind `drover bench queue`.
struct QueueBench {
    let database: ScratchDatabase
    let batch: Int
    let admin: ConnectionPool
    let fixtures: (agent: String, environment: String)
    let serverVersion: String

    init(database: ScratchDatabase, batch: Int) async throws {
        self.database = database
        self.batch = batch
        admin = ConnectionPool(conninfo: database.conninfo, maxConnections: 1)
        let store = SessionStore(pool: admin)
        fixtures = (try await store.createAgent(name: "bench", model: "none"), try await store.createEnvironment(name: "bench"))
        serverVersion = try await admin.query("SHOW server_version")[0].decode(0)
    }

    func close() { admin.close() }

    /// Queues `count` sessions in one statement.
    private func queue(_ count: Int) async throws {
        try await admin.query(
            "SELECT count(drover.create_session($1, $2, '{\"content\":[]}', 0)) FROM generate_series(1, $3)",
            [fixtures.agent, fixtures.environment, count])
    }

    /// Runs `claimers` workers, each on its own connection, until `work` finds nothing more;
    /// returns sessions handled per second.
    private func drain(sessions: Int, claimers: Int, work: @escaping @Sendable (ConnectionPool, HarnessID) async throws -> Int) async throws -> Double {
        try await queue(sessions)
        let conninfo = database.conninfo
        let clientBefore = CPUTime.process()
        let start = ContinuousClock.now
        let (handled, serverSeconds) = try await withThrowingTaskGroup(of: (Int, Double?).self) { group in
            for index in 0..<claimers {
                group.addTask {
                    let pool = ConnectionPool(conninfo: conninfo, maxConnections: 1)
                    defer { pool.close() }
                    // The CPU of the backend serving this claimer (readable when the server is local).
                    let backend: Int = try await pool.query("SELECT pg_backend_pid()")[0].decode(0)
                    let before = CPUTime.ofProcess(backend)
                    let count = try await work(pool, HarnessID.fresh(prefix: "bench\(index)"))
                    let after = CPUTime.ofProcess(backend)
                    return (count, before.flatMap { b in after.map { $0 - b } })
                }
            }
            return try await group.reduce((0, 0.0 as Double?)) { total, next in
                (total.0 + next.0, total.1.flatMap { t in next.1.map { t + $0 } })
            }
        }
        let elapsed = (ContinuousClock.now - start).seconds
        let client = CPUTime.process() - clientBefore
        guard handled == sessions else {
            throw DroverError(.database, "bench handled \(handled) of \(sessions) sessions")
        }
        Progress.say(String(format: "  CPU per session: client %.0f µs, server backends %@", client / Double(handled) * 1e6,
                            serverSeconds.map { String(format: "%.0f µs", $0 / Double(handled) * 1e6) } ?? "unknown (remote server)"))
        // Leave nothing runnable or leased for the next run.
        try await admin.query("UPDATE drover.sessions SET status = 'terminated', lease_owner = NULL WHERE status <> 'terminated'")
        return Double(handled) / elapsed
    }

    func claimRate(sessions: Int, claimers: Int) async throws -> Double {
        let batch = self.batch
        return try await drain(sessions: sessions, claimers: claimers) { pool, owner in
            let queue = LeaseQueue(pool: pool)
            var claimed = 0
            while true {
                let leases = try await queue.claim(max: batch, owner: owner, ttl: 60)
                if leases.isEmpty { return claimed }
                claimed += leases.count
            }
        }
    }

    enum CycleMode {
        /// One `drover.cycle` per batch: the previous batch's closing writes and the next claim.
        case setBased
        /// As a harness runs it: claim, then closing writes through a shared `GroupCommitter`.
        case grouped
        /// One commit per write.
        case unbatched
    }

    /// Full no-op cycles: claim (which appends session.status_running), then session.status_idle
    /// and the release, committed together.
    func cycleRate(sessions: Int, claimers: Int, mode: CycleMode) async throws -> Double {
        let batch = self.batch
        return try await drain(sessions: sessions, claimers: claimers) { pool, owner in
            let queue = LeaseQueue(pool: pool)
            let store = SessionStore(pool: pool)
            let committer = GroupCommitter(pool: pool)
            var cycles = 0
            switch mode {
            case .setBased:
                return try await SetBasedDrain.run(queue, owner: owner, batch: batch)
            case .grouped:
                while true {
                    let leases = try await queue.claim(max: batch, owner: owner, ttl: 60)
                    if leases.isEmpty { return cycles }
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        for lease in leases {
                            group.addTask {
                                // The last event and the release commit together, as a harness does.
                                for outcome in await committer.submitAll([
                                    .append(lease, .sessionStatusIdle, payload: SetBasedDrain.idlePayload),
                                    .release(lease, to: .idle, handledThrough: lease.lastSeq),
                                ]) { _ = try outcome.get() }
                            }
                        }
                        try await group.waitForAll()
                    }
                    cycles += leases.count
                }
            case .unbatched:
                while true {
                    let leases = try await queue.claim(max: batch, owner: owner, ttl: 60)
                    if leases.isEmpty { return cycles }
                    for lease in leases {
                        try await store.append(lease, type: .sessionStatusIdle, payload: SetBasedDrain.idlePayload)
                        try await queue.release(lease, handledThrough: lease.lastSeq)
                    }
                    cycles += leases.count
                }
            }
        }
    }


    func appendLatency(count: Int) async throws -> Latencies {
        try await queue(1)
        let queue = LeaseQueue(pool: admin)
        let store = SessionStore(pool: admin)
        guard let lease = try await queue.claim(max: 1, owner: HarnessID.fresh(prefix: "bench"), ttl: 600).first else {
            throw DroverError(.notFound, "nothing to claim")
        }
        var latencies = Latencies()
        for i in 0..<count {
            _ = try await latencies.measure {
                try await store.append(lease, type: .agentMessage, payload: #"{"content":[{"type":"text","text":"step \#(i)"}]}"#)
            }
        }
        try await queue.release(lease)
        return latencies
    }

    /// Bulk-loads one session with `events` events (a direct insert: this is set-up, not the
    /// measured path), then times positional reads through `get_events`.
    func readLatency(events: Int, reads: Int) async throws -> (slice: Latencies, tail: Latencies) {
        let store = SessionStore(pool: admin)
        let session = try await store.createSession(agent: fixtures.agent, environment: fixtures.environment)
        let chunk = 100_000
        var loaded = 0
        while loaded < events {
            let upper = min(events, loaded + chunk)
            try await admin.query(
                """
                INSERT INTO drover.events (session_id, seq, type, payload, lease_epoch)
                SELECT $1, g, 'agent.message', jsonb_build_object('content', jsonb_build_array(
                       jsonb_build_object('type', 'text', 'text', 'event ' || g))), 1
                  FROM generate_series($2::int8, $3::int8) g
                """, [session.rawValue, loaded + 1, upper])
            loaded = upper
            Progress.say("loading the log: \(loaded)/\(events) events")
        }
        try await admin.query("UPDATE drover.sessions SET last_seq = $2 WHERE id = $1", [session.rawValue, events])
        try await admin.query("VACUUM ANALYZE drover.events")
        var slice = Latencies()
        var tail = Latencies()
        for _ in 0..<reads {
            let after = Int64.random(in: 0...Int64(max(0, events - 100)))
            let page = try await slice.measure { try await store.events(session, after: after, limit: 100) }
            guard page.count == min(100, events - Int(after)), page.first?.seq == after + 1 else {
                throw DroverError(.database, "get_events returned a wrong slice after \(after)")
            }
            let before = Int64.random(in: 1...Int64(events + 1))
            _ = try await tail.measure { try await store.events(session, before: before, tail: 100) }
        }
        return (slice, tail)
    }
}
