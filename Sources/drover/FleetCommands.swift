import DroverCLI
import DroverCore
import DroverStore
import Foundation

struct HarnessesCommand: Command {
    static let name = "harnesses"
    static let summary = "list harness processes: host, pid, sessions held, heartbeat, alive/gone"
    static let help = """
        usage: drover harnesses [--json]

        The harness registry (the drover.harness_status view): a harness is alive while it
        heartbeats (every 5 s) and has not stopped. CLAIMS is "paused" while a harness claims no
        sessions because its sessions wait for sandboxes (every sandbox it can reach is running a
        call): the surplus waits in the queue.
        """
    static let flags: Set<String> = ["json"]

    static func run(_ arguments: Arguments) async throws {
        let pool = try Environment.pool(maxConnections: 1)
        defer { pool.close() }
        let harnesses = try await HarnessView.all(in: pool)
        if arguments.has("json") {
            for h in harnesses {
                Output.line(JSONValue.object([
                    "id": .string(h.id), "host": .string(h.host), "pid": .number(Double(h.pid)),
                    "started_at": .string(Output.timestamp(h.startedAt)), "heartbeat_age_s": .number(h.heartbeatAge),
                    "sessions_held": .number(Double(h.sessionsHeld)), "state": .string(h.state), "claims_paused": .bool(h.claimsPaused),
                ]).text)
            }
            return
        }
        let colour = Terminal.isColour
        Output.line(Output.table(
            ["HARNESS", "HOST", "PID", "SESSIONS", "CLAIMS", "HEARTBEAT AGE", "STATE"],
            harnesses.map {
                [$0.id, $0.host, String($0.pid), String($0.sessionsHeld), $0.claimsPaused ? "paused" : "open", Output.seconds($0.heartbeatAge),
                 $0.state == "alive" ? $0.state : Terminal.dim($0.state, colour)]
            }))
    }
}

struct PoolsCommand: Command {
    static let name = "pools"
    static let summary = "list sandbox pools: address, sandboxes, load, heartbeat"
    static let help = """
        usage: drover pools [--json]

        The sandbox pool registry (the drover.pool_status view): each pool's sandboxes of its
        capacity, running calls, provisions waiting in line for room (every sandbox running a
        call), heartbeat age and status.
        """
    static let flags: Set<String> = ["json"]

    static func run(_ arguments: Arguments) async throws {
        let pool = try Environment.pool(maxConnections: 1)
        defer { pool.close() }
        let pools = try await PoolView.all(in: pool)
        if arguments.has("json") {
            for p in pools {
                Output.line(JSONValue.object([
                    "id": .string(p.id), "address": .string(p.address), "status": .string(p.status),
                    "capacity": .number(Double(p.capacity)), "sandboxes": .number(Double(p.sandboxes)),
                    "running_calls": .number(Double(p.runningCalls)), "heartbeat_age_s": .number(p.heartbeatAge),
                    "waiting": .number(Double(p.waiting)),
                ]).text)
            }
            return
        }
        let colour = Terminal.isColour
        Output.line(Output.table(
            ["POOL", "ADDRESS", "SANDBOXES", "RUNNING CALLS", "WAITING", "HEARTBEAT AGE", "STATUS"],
            pools.map {
                ["\($0.id)", $0.address, "\($0.sandboxes)/\($0.capacity)", String($0.runningCalls), String($0.waiting), Output.seconds($0.heartbeatAge),
                 $0.status == "up" ? $0.status : Terminal.red($0.status, colour)]
            }))
    }
}

struct TopCommand: Command {
    static let name = "top"
    static let summary = "queue depth by status, claims/s, events/s, oldest runnable age"
    static let help = """
        usage: drover top [--watch] [--interval SECONDS] [--json]

        Samples the drover.queue_stats view twice, --interval apart (default 1 s): queue depth by
        status, expired leases, the oldest runnable session's wait, the harnesses whose claims are
        paused because their sessions wait for sandboxes (the queued sessions then wait for room
        in the fleet), claims/s and events/s over the interval (from Postgres's statistics,
        which may lag by up to a second), and memory: memories, stores and the bytes their
        tables take. --watch repeats until Ctrl-C.
        """
    static let options: Set<String> = ["interval"]
    static let flags: Set<String> = ["watch", "json"]

    static func run(_ arguments: Arguments) async throws {
        let interval = try arguments.double("interval") ?? 1
        let pool = try Environment.pool(maxConnections: 1)
        defer { pool.close() }
        var before = try await QueueStats.sample(in: pool)
        repeat {
            try await Task.sleep(for: .seconds(interval))
            let now = try await QueueStats.sample(in: pool)
            let claims = Double(now.leasesGranted - before.leasesGranted) / interval
            let events = Double(now.eventsInserted - before.eventsInserted) / interval
            before = now
            if arguments.has("json") {
                Output.line(JSONValue.object([
                    "queued": .number(Double(now.queued)), "running": .number(Double(now.running)), "idle": .number(Double(now.idle)),
                    "terminated": .number(Double(now.terminated)), "expired_leases": .number(Double(now.expiredLeases)),
                    "oldest_runnable_age_s": .number(now.oldestRunnableAge), "claims_per_s": .number(claims), "events_per_s": .number(events),
                    "harnesses_paused": .number(Double(now.harnessesPaused)),
                    "memory_stores": .number(Double(now.memoryStores)), "memories": .number(Double(now.memories)),
                    "memory_bytes": .number(Double(now.memoryBytes)),
                ]).text)
            } else {
                let colour = Terminal.isColour
                Output.line((arguments.has("watch") ? Terminal.clear : "") + Output.table(
                    ["QUEUED", "RUNNING", "IDLE", "TERMINATED", "EXPIRED LEASES", "OLDEST RUNNABLE", "PAUSED HARNESSES", "CLAIMS/S", "EVENTS/S",
                     "MEMORIES"],
                    [[String(now.queued), String(now.running), String(now.idle), String(now.terminated),
                      now.expiredLeases > 0 ? Terminal.red(String(now.expiredLeases), colour) : "0",
                      Output.seconds(now.oldestRunnableAge), String(now.harnessesPaused), String(format: "%.1f", claims), String(format: "%.1f", events),
                      "\(now.memories) in \(now.memoryStores) stores, \(now.memoryBytes >> 10) KiB"]]))
            }
        } while arguments.has("watch")
    }
}
