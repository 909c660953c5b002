import DroverCLI
import DroverCore
import DroverPostgres
import DroverStore
import Foundation

/// `drover bench drain`: drains the sessions already queued in DATABASE_URL's database with
/// set-based no-op cycles, for a driver that prepares the database and reads the server's counters
/// around the run (`make bench-compare`).
struct BenchDrainCommand: Command {
    static let name = "bench drain"
    static let summary = "drain queued sessions with set-based no-op cycles (for make bench-compare)"
    static let help = """
        usage: drover bench drain [--claimers N] [--batch N]

        Drains every queued session of the database in DATABASE_URL (migrated, sessions queued
        beforehand) with N claimers (default 2), each on its own connection, each running one
        drover.cycle per batch (default 32): the previous batch's session.status_idle and release,
        and the next claim (which appends session.status_running), in one transaction. Prints one
        JSON line: cycles, seconds, cycles_per_s, client_cpu_s.
        """
    static let options: Set<String> = ["claimers", "batch"]

    static func run(_ arguments: Arguments) async throws {
        let claimers = try arguments.int("claimers") ?? 2
        let batch = try arguments.int("batch") ?? 32
        let conninfo = try Environment.databaseURL()
        let clientBefore = CPUTime.process()
        let start = ContinuousClock.now
        let cycles = try await withThrowingTaskGroup(of: Int.self) { group in
            for index in 0..<claimers {
                group.addTask {
                    let pool = ConnectionPool(conninfo: conninfo, maxConnections: 1)
                    defer { pool.close() }
                    return try await SetBasedDrain.run(LeaseQueue(pool: pool), owner: HarnessID.fresh(prefix: "drain\(index)"), batch: batch)
                }
            }
            return try await group.reduce(0, +)
        }
        let seconds = (ContinuousClock.now - start).seconds
        Output.line(JSONValue.object([
            "cycles": .number(Double(cycles)), "seconds": .number(seconds), "cycles_per_s": .number(Double(cycles) / seconds),
            "client_cpu_s": .number(CPUTime.process() - clientBefore), "claimers": .number(Double(claimers)), "batch": .number(Double(batch)),
        ]).text)
    }
}

/// The set-based no-op cycle loop: one `drover.cycle` per batch, carrying the previous batch's
/// closing writes (session.status_idle and the release, per session) and the next claim.
enum SetBasedDrain {
    static let idlePayload = #"{"stop_reason":{"type":"end_turn"}}"#

    /// Runs until a claim finds nothing; returns the cycles completed (each reported after its commit).
    static func run(_ queue: LeaseQueue, owner: HarnessID, batch: Int) async throws -> Int {
        var finishing: [LeaseWrite] = []
        var cycles = 0
        while true {
            let (outcomes, leases) = try await queue.cycle(finishing: finishing, max: batch, owner: owner, ttl: 60)
            for outcome in outcomes { _ = try outcome.get() }
            cycles += finishing.count / 2
            if leases.isEmpty { return cycles }
            finishing = leases.flatMap { lease in
                [LeaseWrite.append(lease, .sessionStatusIdle, payload: idlePayload), .release(lease, to: .idle, handledThrough: lease.lastSeq)]
            }
        }
    }
}
