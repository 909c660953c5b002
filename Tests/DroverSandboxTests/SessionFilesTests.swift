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
        #expect(listing["outputs"] == [["name": "result.bin", "size_bytes": 3]], "a link is not an output")
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
}
