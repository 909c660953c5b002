import DroverCore
import DroverStore
import Foundation

/// Fires deployments' schedules from whichever `drover api` process holds the scheduler lease
/// (`drover.scheduler_leases`): each pass takes or renews the lease, then fires what is due at the
/// wall clock, each deployment in a transaction that checks the lease first. A holder that dies
/// leaves the lease to expire (`ttl`); the next holder fires the missed times within `catchUp`
/// (docs/guarantees.md, promise 21). Exactly once per scheduled time rests on the runs' unique
/// key, not on the lease.
public struct DeploymentScheduler: Sendable {
    public struct Config: Sendable {
        /// Seconds between passes.
        public var interval: Double = 1
        /// Seconds the lease lasts unless renewed.
        public var ttl: Double = 10
        /// Missed times older than this many seconds (of the wall clock) are skipped, not fired.
        public var catchUp: Double = 3600
        public var clock: WallClock = .system
        public init() {}
    }

    let store: TenantStore
    let config: Config
    let vaultKey: String?
    let log: Log
    /// This process, as lease holders are named (`api_<host>_<pid>_<random>`).
    let holder: String

    func run() async {
        var held: Int64?
        while !Task.isCancelled {
            do {
                let epoch = try await store.schedulerLease(holder: holder, ttl: config.ttl)
                if epoch != held {
                    if let epoch { log.info("scheduler lease taken", ("holder", .string(holder)), ("epoch", .number(Double(epoch)))) }
                    else if held != nil { log.info("scheduler lease lost", ("holder", .string(holder))) }
                    held = epoch
                }
                if let epoch {
                    let pass = try await store.fireDueDeployments(holder: holder, epoch: epoch, now: config.clock.now(), catchUp: config.catchUp, key: vaultKey)
                    for run in pass.runs {
                        log.info("deployment fired", ("deployment", .string(run.deployment)), ("run", .string(run.run)),
                                 ("session", run.session.map(JSONValue.string) ?? .null), ("error", run.error.map(JSONValue.string) ?? .null),
                                 ("epoch", .number(Double(epoch))))
                    }
                    for id in pass.paused { log.warning("deployment paused by a failed run", ("deployment", .string(id))) }
                    if pass.skipped > 0 { log.warning("scheduled times skipped", ("count", .number(Double(pass.skipped)))) }
                    if !pass.leaseHeld {
                        log.info("scheduler lease lost during a pass", ("holder", .string(holder)), ("epoch", .number(Double(epoch))))
                        held = nil
                    }
                }
            } catch {
                log.warning("scheduler pass failed", ("error", .string(String(reflecting: error))))
            }
            try? await Task.sleep(for: .seconds(config.interval))
        }
    }
}
