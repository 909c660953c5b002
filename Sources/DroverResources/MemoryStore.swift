import DroverCore

extension API {
    /// `BetaManagedAgentsMemoryStore`.
    public struct MemoryStore: APIResource {
        /// `memory_store`.
        public var type: String
        public var id: String
        public var name: String
        public var description: String
        public var metadata: [String: String]
        public var createdAt: String
        public var updatedAt: String
        public var archivedAt: String?

        enum CodingKeys: String, CodingKey {
            case type, id, name, description, metadata
            case createdAt = "created_at"
            case updatedAt = "updated_at"
            case archivedAt = "archived_at"
        }
    }

    /// `BetaManagedAgentsMemory`; `content` only where the request asked for it.
    public struct Memory: APIResource {
        /// `memory`.
        public var type: String
        public var id: String
        public var memoryStoreID: String
        public var path: String
        public var content: String?
        public var contentSHA256: String
        public var contentSizeBytes: Int
        public var memoryVersionID: String
        public var createdAt: String
        public var updatedAt: String

        enum CodingKeys: String, CodingKey {
            case type, id, path, content
            case memoryStoreID = "memory_store_id"
            case contentSHA256 = "content_sha256"
            case contentSizeBytes = "content_size_bytes"
            case memoryVersionID = "memory_version_id"
            case createdAt = "created_at"
            case updatedAt = "updated_at"
        }
    }

    /// `BetaManagedAgentsMemoryVersion`: one change to a memory, by whom (an actor).
    public struct MemoryVersion: APIResource {
        /// `memory_version`.
        public var type: String
        public var id: String
        public var memoryStoreID: String
        public var memoryID: String
        /// `created`, `modified` or `deleted`.
        public var operation: String
        public var path: String?
        public var content: String?
        public var contentSHA256: String?
        public var contentSizeBytes: Int?
        public var createdAt: String
        /// `BetaManagedAgentsSessionActor`, `…APIActor`, …
        public var createdBy: JSONValue?
        public var redactedAt: String?
        public var redactedBy: JSONValue?

        enum CodingKeys: String, CodingKey {
            case type, id, operation, path, content
            case memoryStoreID = "memory_store_id"
            case memoryID = "memory_id"
            case contentSHA256 = "content_sha256"
            case contentSizeBytes = "content_size_bytes"
            case createdAt = "created_at"
            case createdBy = "created_by"
            case redactedAt = "redacted_at"
            case redactedBy = "redacted_by"
        }
    }
}

extension API {
    /// An entry of a memory listing: a memory, or a path prefix that stands for the memories
    /// below it at the listing's depth (`BetaManagedAgentsMemoryListItem`).
    public enum MemoryListItem: APIResource {
        case memory(Memory)
        case prefix(MemoryPrefix)

        enum CodingKeys: String, CodingKey { case type }

        public init(from decoder: any Decoder) throws {
            switch try decoder.container(keyedBy: CodingKeys.self).decode(String.self, forKey: .type) {
            case "memory_prefix": self = .prefix(try MemoryPrefix(from: decoder))
            default: self = .memory(try Memory(from: decoder))
            }
        }

        public func encode(to encoder: any Encoder) throws {
            switch self {
            case .memory(let memory): try memory.encode(to: encoder)
            case .prefix(let prefix): try prefix.encode(to: encoder)
            }
        }
    }

    /// `BetaManagedAgentsMemoryPrefix`.
    public struct MemoryPrefix: APIResource {
        /// `memory_prefix`.
        public var type: String
        public var path: String
    }
}
