import DroverCore
import DroverSandbox
import DroverTestSupport
import Foundation
import Testing

/// A session's files in its sandbox (issue #23, item 3): uploads mounted read-only at their
/// mount paths, sent in chunks; the outputs folder read back byte for byte; names and paths
/// that would reach elsewhere refused.
@Suite struct SessionFilesTests {
    @Test func uploadsAreMountedReadOnlyAndOutputsComeBack() async throws {
        let pool = try await RunningPool.start()
        let client = try await pool.client()
        defer { client.close() }
        let sandbox = try await client.provision()
        // Larger than one chunk (4 MiB): sent in two, whole only once the last is in.
        let big = (0..<(5 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 9) }
        try await client.putFile(sandbox: sandbox, fileID: "file_big", mountPath: "/mnt/session/uploads/file_big", bytes: big)
        try await client.putFile(sandbox: sandbox, fileID: "file_note", mountPath: "/mnt/data/note.txt", bytes: Array("hello\n".utf8))
        func bash(_ command: String, _ id: String) async throws -> JSONValue {
            try await client.execute(sandbox: sandbox, callID: id, name: "bash", input: ["command": .string(command)])
        }
        let read = try await bash("cat /mnt/data/note.txt; sha256sum < /mnt/session/uploads/file_big", "1")
        let copy = NSTemporaryDirectory() + "drover-session-file-\(UInt64.random(in: 0...UInt64.max))"
        FileManager.default.createFile(atPath: copy, contents: Data(big))
        defer { try? FileManager.default.removeItem(atPath: copy) }
        let digest = try await DroverProcess.run(program: "/usr/bin/sha256sum", [copy], environment: [:]).stdout
        #expect(read["output"]?.stringValue?.contains("hello") == true)
        #expect(read["output"]?.stringValue?.contains(String(digest.prefix(64))) == true, "\(read)")
        let write = try await bash("echo changed > /mnt/data/note.txt; rm -f /mnt/session/uploads/file_big; ls /mnt/session/uploads", "2")
        #expect(write["output"]?.stringValue?.contains("Read-only file system") == true, "\(write)")
        _ = try await bash("printf 'a\\0b' > /mnt/session/outputs/result.bin; ln -s /etc/passwd /mnt/session/outputs/link", "3")
        let listing = try await client.sessionFiles(sandbox: sandbox)
        #expect(listing["files"]?[0]?["file_id"] == "file_big" && listing["files"]?[0]?["size_bytes"]?.intValue == 5 << 20)
        #expect(listing["outputs"]?[0]?["name"] == "result.bin" && listing["outputs"]?[0]?["size_bytes"] == 3 && listing["outputs"]?[1] == nil,
                "a link is not an output: \(listing)")
        #expect(try await client.output(sandbox: sandbox, name: "result.bin") == [97, 0, 98])
        for name in ["link", "../workspace", "missing"] {
            await #expect(throws: PoolProtocol.Failure.self) { try await client.output(sandbox: sandbox, name: name) }
        }
        for (fileID, path) in [("file_x", "/etc/passwd"), ("file_x", "/mnt/session/outputs/x"), ("file_x", "/mnt/../etc/x"), ("../x", "/mnt/a/b")] {
            await #expect(throws: PoolProtocol.Failure.self) {
                try await client.putFile(sandbox: sandbox, fileID: fileID, mountPath: path, bytes: [1])
            }
        }
        try await client.removeFile(sandbox: sandbox, fileID: "file_note")
        let gone = try await bash("cat /mnt/data/note.txt", "4")
        #expect(gone["is_error"] == true, "a removed file is no longer mounted")
        #expect(await pool.stop() == 0)
    }

    /// Issue #24, item 2: a memory store's folder mounted read-write or read-only; the pool keeps
    /// what it mounted (with each memory's hash) and tells what changed since, so whichever
    /// harness holds the session writes back the same changes; nothing the sandbox arranges
    /// (links) leads the pool outside the store.
    @Test func memoryStoresAreMountedAndTheirChangesToldWithoutFollowingLinks() async throws {
        let pool = try await RunningPool.start()
        let client = try await pool.client()
        defer { client.close() }
        let sandbox = try await client.provision()
        try await client.putMemory(sandbox: sandbox, storeID: "memstore_rw", mountPath: "/mnt/memory/notes", readOnly: false,
                                   files: [("/notes.md", Array("first\n".utf8), "n1"), ("/a/b.md", Array("deep".utf8), "b1"),
                                           ("/same.md", Array("same".utf8), "s1")], reset: true)
        try await client.putMemory(sandbox: sandbox, storeID: "memstore_ro", mountPath: "/mnt/memory/rules", readOnly: true,
                                   files: [("/rule.md", Array("be kind".utf8), "r1")], reset: true)
        let ran = try await client.execute(sandbox: sandbox, callID: "1", name: "bash", input: ["command": """
            cat /mnt/memory/notes/a/b.md /mnt/memory/rules/rule.md && echo second >> /mnt/memory/notes/notes.md \
              && mkdir -p /mnt/memory/notes/new && echo made > /mnt/memory/notes/new/x.md && rm /mnt/memory/notes/a/b.md \
              && ln -s /etc/passwd /mnt/memory/notes/leak.md && ln -s /etc /mnt/memory/notes/etc; echo fine > /mnt/memory/rules/rule.md
            """])
        let output = ran["output"]?.stringValue ?? ""
        #expect(output.contains("deep") && output.contains("be kind") && output.contains("Read-only file system"), "\(ran)")
        func changes() async throws -> [String] {
            let told = try await client.memoryChanges(sandbox: sandbox, storeID: "memstore_rw")
            return told.changed.map { "\($0.path)=\($0.bytes.map { String(decoding: $0, as: UTF8.self) } ?? "?")@\($0.baseSHA256 ?? "new")" }
                + told.removed.map { "-\($0.path)@\($0.baseSHA256 ?? "")" }
        }
        // Unchanged files are not sent; links are not followed.
        #expect(try await changes() == ["/new/x.md=made\n@new", "/notes.md=first\nsecond\n@n1", "-/a/b.md@b1"])
        // Once written back, a change is the new base: a second look (by any harness) finds only what is left.
        try await client.memorySynced(sandbox: sandbox, storeID: "memstore_rw", path: "/notes.md", bytes: Array("first\nsecond\n".utf8), sha256: "n2")
        try await client.memorySynced(sandbox: sandbox, storeID: "memstore_rw", path: "/a/b.md", bytes: nil, sha256: nil)
        #expect(try await changes() == ["/new/x.md=made\n@new"])
        // A read-only store has no changes to tell.
        await #expect(throws: PoolProtocol.Failure.self) { try await client.memoryChanges(sandbox: sandbox, storeID: "memstore_ro") }
        // A write through a link the sandbox made lands nowhere outside the store.
        await #expect(throws: PoolProtocol.Failure.self) {
            try await client.putMemory(sandbox: sandbox, storeID: "memstore_rw", mountPath: "/mnt/memory/notes", readOnly: false,
                                       files: [("/etc/drover-leak", [1], nil)], reset: false)
        }
        #expect(!FileManager.default.fileExists(atPath: "/etc/drover-leak"))
        #expect(await pool.stop() == 0)
    }
}
