import DroverCore

extension API {
    /// One of a session's `resources`: the SDK's union, told apart by `type`.
    public enum SessionResource: APIResource {
        case githubRepository(RepositoryMount)
        case file(FileMount)
        case memoryStore(MemoryStoreMount)

        enum CodingKeys: String, CodingKey { case type }

        public init(from decoder: any Decoder) throws {
            switch try decoder.container(keyedBy: CodingKeys.self).decode(String.self, forKey: .type) {
            case "file": self = .file(try FileMount(from: decoder))
            case "memory_store": self = .memoryStore(try MemoryStoreMount(from: decoder))
            default: self = .githubRepository(try RepositoryMount(from: decoder))
            }
        }

        public func encode(to encoder: any Encoder) throws {
            switch self {
            case .githubRepository(let resource): try resource.encode(to: encoder)
            case .file(let resource): try resource.encode(to: encoder)
            case .memoryStore(let resource): try resource.encode(to: encoder)
            }
        }

        public var id: String {
            switch self {
            case .githubRepository(let resource): resource.id
            case .file(let resource): resource.id
            case .memoryStore(let resource): resource.id
            }
        }
    }

    /// `BetaManagedAgentsGitHubRepositoryResource`.
    public struct RepositoryMount: APIResource {
        /// `github_repository`.
        public var type: String
        public var id: String
        public var url: String
        public var mountPath: String
        /// `{type: branch, name}` or `{type: commit, sha}`; null for the default branch.
        public var checkout: JSONValue?
        public var createdAt: String
        public var updatedAt: String

        enum CodingKeys: String, CodingKey {
            case type, id, url, checkout
            case mountPath = "mount_path"
            case createdAt = "created_at"
            case updatedAt = "updated_at"
        }
    }

    /// `BetaManagedAgentsFileResource`.
    public struct FileMount: APIResource {
        /// `file`.
        public var type: String
        public var id: String
        public var fileID: String
        public var mountPath: String
        public var createdAt: String
        public var updatedAt: String

        enum CodingKeys: String, CodingKey {
            case type, id
            case fileID = "file_id"
            case mountPath = "mount_path"
            case createdAt = "created_at"
            case updatedAt = "updated_at"
        }
    }

    /// `BetaManagedAgentsMemoryStoreResource`.
    public struct MemoryStoreMount: APIResource {
        /// `memory_store`.
        public var type: String
        public var id: String
        public var memoryStoreID: String
        /// `read_only` or `read_write`.
        public var access: String
        public var instructions: String?
        public var mountPath: String
        public var name: String
        public var description: String
        public var createdAt: String
        public var updatedAt: String

        enum CodingKeys: String, CodingKey {
            case type, id, access, instructions, name, description
            case memoryStoreID = "memory_store_id"
            case mountPath = "mount_path"
            case createdAt = "created_at"
            case updatedAt = "updated_at"
        }
    }
}
