import DroverCore
import DroverPostgres
import DroverStore
import DroverTestSupport
import Foundation
import Testing

/// Files against a real server: bytes come back exactly, an expired file's content is gone (and
/// its storage with the organisation's next upload), and another organisation sees nothing.
@Suite struct FileStoreTests {
    @Test func bytesRoundTripAndExpiredContentIsGone() async throws {
        try await TestDatabase.with { db in
            let sql = db.pool(maxConnections: 2)
            defer { sql.close() }
            try await sql.query("INSERT INTO drover.organizations (id, name) VALUES ('org_a', 'a'), ('org_b', 'b') ON CONFLICT DO NOTHING")
            let store = TenantStore(pool: sql)
            let bytes = (0..<70_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
            let kept = try await store.uploadFile(org: "org_a", filename: "all.bin", mimeType: "application/octet-stream", bytes: bytes, expiresInSeconds: nil)
            let id = kept.id
            #expect(try await store.fileContent(org: "org_a", id: id).bytes == bytes)
            await #expect(throws: DroverError.self, "another organisation's file is not found") {
                try await store.fileContent(org: "org_b", id: id)
            }
            let expiring = try await store.uploadFile(org: "org_a", filename: "soon.txt", mimeType: "text/plain", bytes: Array("soon".utf8), expiresInSeconds: 3_600)
            let soon = expiring.id
            try await sql.query("UPDATE drover.files SET expires_at = now() - interval '1 second' WHERE id = $1", [soon])
            #expect(try await store.file(org: "org_a", id: soon).downloadable == false)
            await #expect(throws: DroverError.self, "an expired file's content is gone") {
                try await store.fileContent(org: "org_a", id: soon)
            }
            _ = try await store.uploadFile(org: "org_a", filename: "next.txt", mimeType: "text/plain", bytes: [1], expiresInSeconds: nil)
            let left: Int = try await sql.query("SELECT octet_length(content) FROM drover.files WHERE id = $1", [soon])[0].decode(0)
            #expect(left == 0, "the next upload dropped the expired file's bytes")
            #expect(try await store.fileContent(org: "org_a", id: id).bytes == bytes, "a live file keeps its bytes")
            await #expect(throws: DroverError.self) {
                try await store.uploadFile(org: "org_a", filename: "x", mimeType: "text/plain", bytes: [1], expiresInSeconds: 60)
            }
        }
    }

    /// `sessions.resources.update`: a repository's token rotated, sealed as at creation, is what
    /// the harness opens for the next sandbox.
    @Test func aRepositoryTokenRotatesSealed() async throws {
        try await TestDatabase.with { db in
            let pool = db.pool(maxConnections: 2)
            defer { pool.close() }
            let store = SessionStore(pool: pool)
            let agent = try await store.createAgent(name: "a", model: "m", systemPrompt: "")
            let environment = try await store.createEnvironment(name: "e", configJSON: "{}")
            let tenants = TenantStore(pool: pool)
            let key = TestDatabase.vaultKey
            let session = try await tenants.createSession(org: "org_default", [
                "agent": .string(agent), "environment_id": .string(environment),
                "resources": [["type": "github_repository", "url": "https://git.example.com/team/repo.git", "authorization_token": "old-token"]],
            ], key: key)
            let id = session.id
            let resource = try #require(try await tenants.sessionResources(org: "org_default", session: id).data.first?.id)
            let rotated = try await tenants.updateSessionResource(org: "org_default", session: id, id: resource, ["authorization_token": "new-token"], key: key)
            #expect(try !rotated.json.text.contains("token\":\"new") && rotated.json["type"] == "github_repository")
            let opened = try await store.repositories(SessionID(rawValue: id), key: key)
            #expect(opened.first?.token == "new-token")
            await #expect(throws: DroverError.self, "without a vault key nothing is sealed") {
                try await tenants.updateSessionResource(org: "org_default", session: id, id: resource, ["authorization_token": "x"], key: nil)
            }
        }
    }
}
