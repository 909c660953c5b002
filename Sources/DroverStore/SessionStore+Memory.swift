import DroverCore
import DroverPostgres
import Foundation

/// A session's memory stores as its harness sees them (issue #24, item 2): what to mount, the
/// memories to put there, and the agent's changes written back under the session's lease.
extension SessionStore {
    public struct AttachedStore: Sendable, Equatable {
        public var storeID: String
        public var mountPath: String
        public var readOnly: Bool
        public var name: String
        public var description: String
        public var instructions: String?
    }

    /// A store's memories: path, content and content hash.
    public func memories(ofStore store: String) async throws -> [(path: String, content: String, sha256: String)] {
        try await mappingErrors {
            try await pool.query("SELECT path, content, content_sha256 FROM drover.memories WHERE store_id = $1 ORDER BY path", [store])
                .map { (try $0.decode(0), try $0.decode(1), try $0.decode(2)) }
        }
    }

    /// What a write-back came to: written (with the memory's content hash after it, nil for a
    /// deletion, the next change's precondition), or nothing because the lease is gone.
    public enum MemorySync: Sendable, Equatable {
        case written(sha256: String?)
        case leaseLost
    }

    /// Writes one change the session's agent made in a mounted store (`drover.memory_sync`); a
    /// memory changed meanwhile by someone else throws `conflict`.
    public func syncMemory(_ lease: Lease, store: String, path: String, content: String?, expectedSHA256: String?, delete: Bool) async throws -> MemorySync {
        try await mappingErrors {
            let row = try await pool.query(
                "SELECT written, sha256 FROM drover.memory_sync($1, $2, $3, $4, $5, $6, $7, $8)",
                [lease.sessionID.rawValue, lease.owner.rawValue, lease.epoch, store, path, content, expectedSHA256, delete])[0]
            return try row.decode(0) as Bool ? .written(sha256: row[1]) : .leaseLost
        }
    }
}
