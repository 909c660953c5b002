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
            let id = try #require(kept["id"]?.stringValue)
            #expect(try await store.fileContent(org: "org_a", id: id).bytes == bytes)
            await #expect(throws: DroverError.self, "another organisation's file is not found") {
                try await store.fileContent(org: "org_b", id: id)
            }
            let expiring = try await store.uploadFile(org: "org_a", filename: "soon.txt", mimeType: "text/plain", bytes: Array("soon".utf8), expiresInSeconds: 3_600)
            let soon = try #require(expiring["id"]?.stringValue)
            try await sql.query("UPDATE drover.files SET expires_at = now() - interval '1 second' WHERE id = $1", [soon])
            #expect(try await store.file(org: "org_a", id: soon)["downloadable"] == false)
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
}
