import DroverCore
import DroverPostgres
import DroverResources
import Foundation

/// Memory stores, their memories and the memories' versions (`client.beta.memory_stores`,
/// migration 0020). Every write goes through `drover.memory_write`, which locks the memory, checks
/// the precondition and records the version in one statement.
extension TenantStore {
    /// Who makes a change, as the SDK types it (`created_by`, `redacted_by`).
    public enum MemoryActor: Sendable {
        case apiKey(String)
        case session(String)

        var json: String {
            switch self {
            case .apiKey(let id): return JSONValue.object(["type": "api_actor", "api_key_id": .string(id)]).text
            case .session(let id): return JSONValue.object(["type": "session_actor", "session_id": .string(id)]).text
            }
        }
    }

    /// At most 100 kB of UTF-8 per memory, as the SDK documents.
    public static let maxMemoryBytes = 102_400

    // MARK: - Stores

    public func createMemoryStore(org: String, _ body: JSONValue) async throws -> API.MemoryStore {
        let name = try Self.storeName(body["name"], required: true)
        return try await written(
            """
            INSERT INTO drover.memory_stores AS s (id, org_id, name, description, metadata)
            VALUES (drover.new_id('memstore'), $1, $2, coalesce($3, ''), coalesce($4::jsonb, '{}'))
            RETURNING drover.api_memory_store_json(s)::text
            """, [org, name, try Self.storeDescription(body["description"]), try Self.storeMetadata(body["metadata"], removals: false)], missing: "")
    }

    public func memoryStore(org: String, id: String) async throws -> API.MemoryStore {
        try await owned("drover.memory_stores", render: "drover.api_memory_store_json", id: id, org: org, what: "memory store")
    }

    public func memoryStores(org: String, limit: Int, page: String?, includeArchived: Bool, createdFrom: String?, createdTo: String?) async throws -> APIPage<API.MemoryStore> {
        try await byCreation(
            "drover.memory_stores", render: "drover.api_memory_store_json", org: org, includeArchived: includeArchived, page: page, limit: limit,
            filter: "($6::timestamptz IS NULL OR t.created_at >= $6) AND ($7::timestamptz IS NULL OR t.created_at <= $7)",
            extra: [createdFrom, createdTo])
    }

    /// `name`, `description` and `metadata` (a key set to null is removed); an archived store
    /// cannot be updated.
    public func updateMemoryStore(org: String, id: String, _ body: JSONValue) async throws -> API.MemoryStore {
        let name = try Self.storeName(body["name"], required: false)
        let updated = try await jsonRows(
            """
            UPDATE drover.memory_stores s
               SET name = coalesce($3, s.name), description = coalesce($4, s.description),
                   metadata = jsonb_strip_nulls(s.metadata || coalesce($5::jsonb, '{}')), updated_at = now()
             WHERE s.id = $1 AND s.org_id = $2 AND s.archived_at IS NULL
               AND (SELECT count(*) FROM jsonb_object_keys(jsonb_strip_nulls(s.metadata || coalesce($5::jsonb, '{}')))) <= 16
            RETURNING drover.api_memory_store_json(s)::text
            """, [id, org, name, try Self.storeDescription(body["description"]), try Self.storeMetadata(body["metadata"], removals: true)])
        if let store = updated.first { return try API.MemoryStore.decode(render: store) }
        guard try await memoryStore(org: org, id: id).archivedAt == nil else {
            throw DroverError(.conflict, "memory store \(id) is archived and cannot be updated")
        }
        throw DroverError(.invalidArgument, "metadata: at most 16 pairs after the change")
    }

    public func archiveMemoryStore(org: String, id: String) async throws -> API.MemoryStore {
        try await one(
            """
            UPDATE drover.memory_stores s SET archived_at = coalesce(s.archived_at, now()), updated_at = now()
             WHERE s.id = $1 AND s.org_id = $2 RETURNING drover.api_memory_store_json(s)::text
            """, [id, org], missing: "no memory store \(id)")
    }

    /// Deletes the store with its memories and their versions.
    public func deleteMemoryStore(org: String, id: String) async throws -> API.Deleted {
        try await one(
            "DELETE FROM drover.memory_stores s WHERE s.id = $1 AND s.org_id = $2 RETURNING jsonb_build_object('type', 'memory_store_deleted', 'id', s.id)::text",
            [id, org], missing: "no memory store \(id)")
    }

    // MARK: - Memories

    public func createMemory(org: String, store: String, _ body: JSONValue, actor: MemoryActor, full: Bool) async throws -> API.Memory {
        guard let pathValue = body["path"]?.stringValue else { throw DroverError(.invalidArgument, "path: a string is required") }
        let path = try MemoryPath.checked(pathValue)
        guard let content = body["content"], content == .null || content.stringValue != nil else {
            throw DroverError(.invalidArgument, "content: a string (or null, for an empty memory) is required")
        }
        return try await write(org: org, store: store, memory: nil, path: path, content: try Self.memoryContent(content.stringValue ?? ""),
                               expected: nil, delete: false, actor: actor, full: full)
    }

    public func memory(org: String, store: String, id: String, full: Bool) async throws -> API.Memory {
        try await one(
            """
            SELECT drover.api_memory_json(m, $4)::text FROM drover.memories m JOIN drover.memory_stores s ON s.id = m.store_id
             WHERE m.id = $1 AND m.store_id = $2 AND s.org_id = $3
            """, [id, store, org, full], missing: "no memory \(id) in memory store \(store)")
    }

    /// `content` replaces the content, `path` renames; `precondition` `{type: content_sha256,
    /// content_sha256}` must hold or nothing changes (409).
    public func updateMemory(org: String, store: String, id: String, _ body: JSONValue, actor: MemoryActor, full: Bool) async throws -> API.Memory {
        let path = try body["path"].flatMap { $0 == .null ? nil : $0 }.map { value -> String in
            guard let text = value.stringValue else { throw DroverError(.invalidArgument, "path must be a string") }
            return try MemoryPath.checked(text)
        }
        let content = try body["content"].flatMap { $0 == .null ? nil : $0 }.map { value -> String in
            guard let text = value.stringValue else { throw DroverError(.invalidArgument, "content must be a string") }
            return try Self.memoryContent(text)
        }
        var expected: String?
        if let precondition = body["precondition"], precondition != .null {
            guard precondition["type"]?.stringValue == "content_sha256", let sha = precondition["content_sha256"]?.stringValue else {
                throw DroverError(.invalidArgument, "precondition: {type: content_sha256, content_sha256} is required")
            }
            expected = try Self.sha256Hex(sha, field: "precondition.content_sha256")
        }
        return try await write(org: org, store: store, memory: id, path: path, content: content, expected: expected, delete: false, actor: actor, full: full)
    }

    public func deleteMemory(org: String, store: String, id: String, expectedSHA256: String?, actor: MemoryActor) async throws -> API.Deleted {
        let expected = try expectedSHA256.map { try Self.sha256Hex($0, field: "expected_content_sha256") }
        let deleted = try await write(org: org, store: store, memory: id, path: nil, content: nil, expected: expected, delete: true, actor: actor, full: false)
        return API.Deleted(id: deleted.id, type: "memory_deleted")
    }

    private func write(
        org: String, store: String, memory: String?, path: String?, content: String?, expected: String?, delete: Bool, actor: MemoryActor, full: Bool
    ) async throws -> API.Memory {
        try await one(
            "SELECT drover.api_memory_json(m, $9)::text FROM drover.memory_write($1, $2, $3, $4, $5, $6, $7, $8::jsonb) m",
            [org, store, memory, path, content, expected, delete, actor.json, full], missing: "no memory \(memory ?? "") in memory store \(store)")
    }

    /// Memories under `prefix` (ending in `/`) in path order. `depth` 0 lists every memory below
    /// it; `depth` n lists those at most n segments below, and groups the deeper ones into
    /// `memory_prefix` items (a path ending in `/`), which count toward the page like memories.
    public func memories(org: String, store: String, prefix: String?, depth: Int, limit: Int, page: String?, full: Bool) async throws -> APIPage<API.MemoryListItem> {
        _ = try await memoryStore(org: org, id: store)
        let prefix = prefix ?? "/"
        guard prefix.hasPrefix("/"), prefix.hasSuffix("/") else { throw DroverError(.invalidArgument, "path_prefix must start and end with /") }
        guard depth >= 0 else { throw DroverError(.invalidArgument, "depth must be 0 or more") }
        return try await pagedRows(
            """
            WITH items AS (
                SELECT m, CASE WHEN $4::int > 0 AND cardinality(string_to_array(substr(m.path, length($3) + 1), '/')) > $4
                               THEN $3 || array_to_string((string_to_array(substr(m.path, length($3) + 1), '/'))[1:$4], '/') || '/'
                               ELSE m.path END AS key
                  FROM drover.memories m
                 WHERE m.store_id = $1 AND left(m.path, length($3::text)) = $3
                   AND EXISTS (SELECT 1 FROM drover.memory_stores s WHERE s.id = $1 AND s.org_id = $2))
            SELECT CASE WHEN right(key, 1) = '/' THEN jsonb_build_object('type', 'memory_prefix', 'path', key)::text
                        ELSE drover.api_memory_json((array_agg(m))[1], $5)::text END, key
              FROM items WHERE ($6::text IS NULL OR key > $6) GROUP BY key ORDER BY key LIMIT $7
            """, [store, org, prefix, depth, full, try Self.decodeCursor(page), limit + 1], limit: limit)
    }

    // MARK: - Versions

    public struct VersionFilter: Sendable {
        public var memoryID: String?
        public var operation: String?
        public var sessionID: String?
        public var apiKeyID: String?
        public var createdFrom: String?
        public var createdTo: String?
        public init() {}
    }

    /// Newest first.
    public func memoryVersions(org: String, store: String, filter: VersionFilter, limit: Int, page: String?, full: Bool) async throws -> APIPage<API.MemoryVersion> {
        _ = try await memoryStore(org: org, id: store)
        if let operation = filter.operation, !["created", "modified", "deleted"].contains(operation) {
            throw DroverError(.invalidArgument, "operation must be created, modified or deleted")
        }
        let after = try Self.decodeCursor(page)?.split(separator: "|", maxSplits: 1).map(String.init)
        return try await pagedRows(
            """
            SELECT drover.api_memory_version_json(v, $2)::text, to_char(v.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '|' || v.id
              FROM drover.memory_versions v
             WHERE v.store_id = $1 AND ($3::text IS NULL OR v.memory_id = $3) AND ($4::text IS NULL OR v.operation = $4)
               AND ($5::text IS NULL OR v.created_by @> jsonb_build_object('type', 'session_actor', 'session_id', $5::text))
               AND ($6::text IS NULL OR v.created_by @> jsonb_build_object('type', 'api_actor', 'api_key_id', $6::text))
               AND ($7::timestamptz IS NULL OR v.created_at >= $7) AND ($8::timestamptz IS NULL OR v.created_at <= $8)
               AND ($9::timestamp IS NULL OR (v.created_at AT TIME ZONE 'UTC', v.id) < ($9::timestamp, $10))
             ORDER BY v.created_at DESC, v.id DESC LIMIT $11
            """,
            [store, full, filter.memoryID, filter.operation, filter.sessionID, filter.apiKeyID, filter.createdFrom, filter.createdTo,
             after?.first, after?.last, limit + 1], limit: limit)
    }

    public func memoryVersion(org: String, store: String, id: String, full: Bool) async throws -> API.MemoryVersion {
        try await one(
            """
            SELECT drover.api_memory_version_json(v, $4)::text FROM drover.memory_versions v JOIN drover.memory_stores s ON s.id = v.store_id
             WHERE v.id = $1 AND v.store_id = $2 AND s.org_id = $3
            """, [id, store, org, full], missing: "no memory version \(id) in memory store \(store)")
    }

    /// Clears what a version held (content, path, hash, size) and records who did; the version
    /// that holds a memory's current content cannot be redacted (409: change the memory first).
    public func redactMemoryVersion(org: String, store: String, id: String, actor: MemoryActor) async throws -> API.MemoryVersion {
        let redacted = try await jsonRows(
            """
            UPDATE drover.memory_versions v
               SET content = NULL, path = NULL, content_sha256 = NULL, content_size_bytes = NULL,
                   redacted_at = coalesce(v.redacted_at, now()), redacted_by = coalesce(v.redacted_by, $4::jsonb)
              FROM drover.memory_stores s
             WHERE v.id = $1 AND v.store_id = $2 AND s.id = v.store_id AND s.org_id = $3
               AND NOT EXISTS (SELECT 1 FROM drover.memories m WHERE m.version_id = v.id)
            RETURNING drover.api_memory_version_json(v, false)::text
            """, [id, store, org, actor.json])
        if let version = redacted.first { return try API.MemoryVersion.decode(render: version) }
        _ = try await memoryVersion(org: org, store: store, id: id, full: false)
        throw DroverError(.conflict, "memory version \(id) holds its memory's current content: update or delete the memory before redacting it")
    }

    // MARK: - Checks

    static func storeName(_ value: JSONValue?, required: Bool) throws -> String? {
        guard let value, value != .null else {
            if required { throw DroverError(.invalidArgument, "name: a string of 1 to 255 characters is required") }
            return nil
        }
        guard let name = value.stringValue, (1...255).contains(name.count),
              !name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw DroverError(.invalidArgument, "name: 1 to 255 characters, without control characters")
        }
        return name
    }

    static func storeDescription(_ value: JSONValue?) throws -> String? {
        guard let value, value != .null else { return nil }
        guard let text = value.stringValue, text.utf8.count <= 4_096 else {
            throw DroverError(.invalidArgument, "description: a string of at most 4,096 bytes")
        }
        return text
    }

    /// At most 16 pairs, keys 1 to 64 characters, values at most 512; with `removals`, a null
    /// value removes its key (an update).
    static func storeMetadata(_ value: JSONValue?, removals: Bool) throws -> String? {
        guard let value, value != .null else { return nil }
        guard case .object(let pairs) = value, pairs.count <= 16 else { throw DroverError(.invalidArgument, "metadata: an object of at most 16 pairs") }
        for (key, item) in pairs {
            guard (1...64).contains(key.count) else { throw DroverError(.invalidArgument, "metadata: keys are 1 to 64 characters") }
            if item == .null && removals { continue }
            guard let text = item.stringValue, text.count <= 512 else {
                throw DroverError(.invalidArgument, "metadata.\(key): a string of at most 512 characters")
            }
        }
        return value.text
    }

    static func memoryContent(_ text: String) throws -> String {
        guard text.utf8.count <= maxMemoryBytes else {
            throw DroverError(.invalidArgument, "content: at most \(maxMemoryBytes) bytes (it has \(text.utf8.count))")
        }
        guard !text.utf8.contains(0) else { throw DroverError(.invalidArgument, "content: NUL bytes cannot be stored") }
        return text
    }

    static func sha256Hex(_ text: String, field: String) throws -> String {
        guard text.utf8.count == 64, text.utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }) else {
            throw DroverError(.invalidArgument, "\(field): 64 lowercase hexadecimal characters")
        }
        return text
    }
}
