import DroverCore

extension API {
    /// `BetaFileMetadata`.
    public struct File: APIResource {
        /// `file`.
        public var type: String
        public var id: String
        public var filename: String
        public var mimeType: String
        public var sizeBytes: Int
        public var createdAt: String
        public var expiresAt: String?
        public var downloadable: Bool?
        /// `BetaFileScope`: the session that wrote it.
        public var scope: SessionReference?

        enum CodingKeys: String, CodingKey {
            case type, id, filename, downloadable, scope
            case mimeType = "mime_type"
            case sizeBytes = "size_bytes"
            case createdAt = "created_at"
            case expiresAt = "expires_at"
        }
    }

    /// A session named by id (`BetaFileScope`, a work item's `data`).
    public struct SessionReference: APIResource {
        /// `session`.
        public var type: String
        public var id: String
    }
}
