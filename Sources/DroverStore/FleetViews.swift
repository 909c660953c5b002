import DroverCore
import DroverPostgres
import Foundation

/// A harness process as the registry sees it (`drover.harness_status`).
public struct HarnessView: Sendable, Equatable {
    public var id: String
    public var host: String
    public var pid: Int
    public var startedAt: Date
    public var heartbeatAge: Double
    public var sessionsHeld: Int
    /// `alive` or `gone`.
    public var state: String
    /// Claiming nothing while its sessions wait for sandboxes (issue #22's harness admission).
    public var claimsPaused = false

    public static func all(in pool: ConnectionPool) async throws -> [HarnessView] {
        try await mappingErrors {
            try await pool.query(
                """
                SELECT id, host, pid, started_at, heartbeat_age_s, sessions_held, state, claims_paused
                  FROM drover.harness_status ORDER BY state, started_at DESC
                """
            ).map { row in
                HarnessView(
                    id: try row.decode(0), host: try row.decode(1), pid: try row.decode(2), startedAt: try row.decode(3),
                    heartbeatAge: try row.decode(4), sessionsHeld: try row.decode(5), state: try row.decode(6), claimsPaused: try row.decode(7))
            }
        }
    }
}

/// A sandbox pool as the registry sees it (`drover.pool_status`).
public struct PoolView: Sendable, Equatable {
    public var id: String
    public var address: String
    public var status: String
    public var capacity: Int
    public var sandboxes: Int
    public var runningCalls: Int
    public var heartbeatAge: Double
    /// Provisions waiting in line for room.
    public var waiting: Int

    public static func all(in pool: ConnectionPool) async throws -> [PoolView] {
        try await mappingErrors {
            try await pool.query(
                """
                SELECT id, address, status, capacity, sandboxes, running_calls, heartbeat_age_s, waiting
                  FROM drover.pool_status ORDER BY status <> 'up', id
                """
            ).map { row in
                PoolView(
                    id: try row.decode(0), address: try row.decode(1), status: try row.decode(2), capacity: try row.decode(3),
                    sandboxes: try row.decode(4), runningCalls: try row.decode(5), heartbeatAge: try row.decode(6), waiting: try row.decode(7))
            }
        }
    }
}

/// The queue at one moment (`drover.queue_stats`); rates come from two samples.
public struct QueueStats: Sendable, Equatable {
    public var queued: Int
    public var running: Int
    public var idle: Int
    public var terminated: Int
    public var expiredLeases: Int
    public var oldestRunnableAge: Double
    public var eventsInserted: Int64
    public var leasesGranted: Int64
    /// Live harnesses claiming nothing while their sessions wait for sandboxes: the queued
    /// sessions wait for room in the fleet, not for a harness.
    public var harnessesPaused = 0
    /// Memory: stores, memories, and the bytes their tables (versions included) take on disk.
    public var memoryStores = 0
    public var memories = 0
    public var memoryBytes: Int64 = 0

    public static func sample(in pool: ConnectionPool) async throws -> QueueStats {
        try await mappingErrors {
            let row = try await pool.query(
                """
                SELECT queued, running, idle, terminated, expired_leases, oldest_runnable_age_s, events_inserted_total,
                       leases_granted_total, (SELECT count(*) FROM drover.harness_status WHERE claims_paused)::int,
                       (SELECT count(*) FROM drover.memory_stores)::int, (SELECT count(*) FROM drover.memories)::int,
                       pg_total_relation_size('drover.memories') + pg_total_relation_size('drover.memory_versions')
                  FROM drover.queue_stats
                """)[0]
            return QueueStats(
                queued: try row.decode(0), running: try row.decode(1), idle: try row.decode(2), terminated: try row.decode(3),
                expiredLeases: try row.decode(4), oldestRunnableAge: try row.decode(5), eventsInserted: try row.decode(6),
                leasesGranted: try row.decode(7), harnessesPaused: try row.decode(8), memoryStores: try row.decode(9), memories: try row.decode(10),
                memoryBytes: try row.decode(11))
        }
    }
}
