import DroverCore
import DroverSandbox
import DroverTestSupport
import Foundation
import Testing

/// Nothing in a sandbox's files can stall the pool daemon or blow up its memory.
@Suite(.serialized) struct NeverBlockedTests {
    /// The daemon's peak resident memory so far, in bytes (VmHWM).
    static func peakRSS(_ pid: pid_t) -> Int {
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") } ?? ""
        return (Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0) * 1024
    }

    /// Opening a FIFO would wait for a writer that never comes (it stalled the daemon, SIGTERM
    /// included). Four at once are refused with a stable code while another client is served.
    @Test func readsOfAFIFOAreRefusedAtOnceWhileOthersAreServed() async throws {
        let status = try await RunningPool.withSandbox { pool, client, sandbox in
            _ = try await client.execute(sandbox: sandbox, callID: "mk", name: "bash", input: ["command": "mkfifo pipe"])
            let started = ContinuousClock.now
            let codes = try await withThrowingTaskGroup(of: String.self) { group in
                for index in 0..<4 {
                    group.addTask {
                        do {
                            let result = try await client.execute(sandbox: sandbox, callID: "r\(index)", name: "read", input: ["path": "pipe"])
                            return "answered: \(result.text)"
                        } catch let failure as PoolProtocol.Failure {
                            return failure.code.rawValue
                        }
                    }
                }
                group.addTask {
                    let other = try await pool.client()
                    defer { other.close() }
                    return try await other.request("ping")["pong"]?.boolValue == true ? "pong" : "no pong"
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(codes.sorted() == ["not_a_regular_file", "not_a_regular_file", "not_a_regular_file", "not_a_regular_file", "pong"])
            #expect(ContinuousClock.now - started < .seconds(5))
            // Edit and write refuse it the same way; a directory keeps its own code.
            await Self.expectCode(.notARegularFile) { try await client.execute(sandbox: sandbox, callID: "e", name: "edit", input: ["path": "pipe", "old_string": "a", "new_string": "b"]) }
            await Self.expectCode(.isADirectory) { try await client.execute(sandbox: sandbox, callID: "d", name: "read", input: ["path": "."]) }
        }
        #expect(status == 0, "the daemon stopped cleanly on SIGTERM")
    }

    /// Issue #20: `write` opened a FIFO blocking, so each write held one of the pool's file-tool
    /// threads until someone read the pipe; 16 of them stopped every file tool of the pool, for
    /// every tenant. Now 24 writes (with and without a reader holding the pipe open) are refused
    /// at once, and another tenant's file tools and the daemon's SIGTERM are unaffected.
    @Test func writesToAFIFOAreRefusedAtOnceAndBlockNoOne() async throws {
        let status = try await RunningPool.withSandbox { pool, client, sandbox in
            _ = try await client.execute(sandbox: sandbox, callID: "mk", name: "bash", input: ["command": "mkfifo pipe held; (sleep 30 < held &) ; sleep 0.1"])
            let codes = try await withThrowingTaskGroup(of: String.self) { group in
                for index in 0..<24 {
                    group.addTask {
                        do {
                            _ = try await client.execute(
                                sandbox: sandbox, callID: "w\(index)", name: "write", input: ["file_path": index % 2 == 0 ? "pipe" : "held", "content": "x"])
                            return "written"
                        } catch let failure as PoolProtocol.Failure {
                            return failure.code.rawValue
                        }
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(codes == Array(repeating: "not_a_regular_file", count: 24), "\(codes)")
            // Another tenant's sandbox writes and reads as ever.
            let other = try await pool.client()
            defer { other.close() }
            let theirs = try await other.provision()
            _ = try await other.execute(sandbox: theirs, callID: "ow", name: "write", input: ["file_path": "notes.txt", "content": "fine"])
            let read = try await other.execute(sandbox: theirs, callID: "or", name: "read", input: ["path": "notes.txt"])
            #expect(read.output.contains("fine"), "\(read)")
        }
        #expect(status == 0, "the daemon stopped cleanly on SIGTERM")
    }

    /// `read` streams: a 900 MiB sparse file (one endless line of NULs) costs the daemon one
    /// chunk and the output, not the file.
    @Test func readingAHugeSparseFileLeavesTheDaemonsMemoryAlone() async throws {
        try await RunningPool.withSandbox { pool, client, sandbox in
            _ = try await client.execute(sandbox: sandbox, callID: "mk", name: "bash", input: ["command": "truncate -s 900M big; printf 'one\\ntwo\\n' > small"])
            let before = Self.peakRSS(pool.daemon.pid)
            let result = try await client.execute(sandbox: sandbox, callID: "r", name: "read", input: ["path": "big"])
            let after = Self.peakRSS(pool.daemon.pid)
            #expect(result["truncated"]?.boolValue == true)
            #expect(before > 0 && after - before < 64 << 20, "peak RSS grew by \((after - before) >> 20) MiB")
            // Ordinary reads are unchanged: offsets, limits, the end of the file.
            #expect(try await client.execute(sandbox: sandbox, callID: "s1", name: "read", input: ["path": "small"]).output == "     1\tone\n     2\ttwo\n")
            let second = try await client.execute(sandbox: sandbox, callID: "s2", name: "read", input: ["path": "small", "offset": 2, "limit": 1])
            #expect(second.output == "     2\ttwo\n" && second["truncated"]?.boolValue == false)
            let firstOnly = try await client.execute(sandbox: sandbox, callID: "s3", name: "read", input: ["path": "small", "limit": 1])
            #expect(firstOnly.output == "     1\tone\n" && firstOnly["truncated"]?.boolValue == true)
            await Self.expectCode(.badRequest) { try await client.execute(sandbox: sandbox, callID: "s4", name: "read", input: ["path": "small", "offset": 5]) }
        }
    }

    static func expectCode(_ code: PoolProtocol.ErrorCode, _ body: () async throws -> JSONValue) async {
        await ToolTests().expectFailure(code, body)
    }
}
