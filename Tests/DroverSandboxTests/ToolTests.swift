import DroverCore
import DroverIO
import DroverSandbox
import DroverTestSupport
import Foundation
import Testing

/// Every tool's happy path and error paths, over TCP against a real daemon.
@Suite(.serialized) struct ToolTests {
    func withSandbox(_ body: (PoolClient, String) async throws -> Void) async throws {
        #expect(try await RunningPool.withSandbox { _, client, sandbox in try await body(client, sandbox) } == 0)
    }

    func expectFailure(_ code: PoolProtocol.ErrorCode, _ body: () async throws -> JSONValue) async {
        do {
            let result = try await body()
            Issue.record("expected \(code), got \(result.text)")
        } catch let failure as PoolProtocol.Failure {
            #expect(failure.code == code, "\(failure)")
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test func bash() async throws {
        try await withSandbox { client, sandbox in
            let ok = try await client.execute(sandbox: sandbox, callID: "1", name: "bash", input: ["command": "echo out; echo err >&2; pwd"])
            #expect(ok.output == "out\nerr\n/workspace\n")
            #expect(!ok.isError && ok.exitCode == 0 && ok["truncated"]?.boolValue == false)
            let failed = try await client.execute(sandbox: sandbox, callID: "2", name: "bash", input: ["command": "exit 3"])
            #expect(failed.isError && failed.exitCode == 3)
            await expectFailure(.badRequest) { try await client.execute(sandbox: sandbox, callID: "3", name: "bash", input: [:]) }
            await expectFailure(.unknownTool) { try await client.execute(sandbox: sandbox, callID: "4", name: "python", input: [:]) }
            await expectFailure(.noSuchSandbox) { try await client.execute(sandbox: "sb_nope", callID: "5", name: "bash", input: ["command": "true"]) }
            // Files persist between calls; processes do not.
            _ = try await client.execute(sandbox: sandbox, callID: "6", name: "bash", input: ["command": "echo kept > f.txt"])
            #expect(try await client.execute(sandbox: sandbox, callID: "7", name: "bash", input: ["command": "cat f.txt"]).output == "kept\n")
        }
    }

    @Test func readWriteAndEdit() async throws {
        try await withSandbox { client, sandbox in
            func call(_ id: String, _ name: String, _ input: JSONValue) async throws -> JSONValue {
                try await client.execute(sandbox: sandbox, callID: id, name: name, input: input)
            }
            #expect(try await call("w", "write", ["path": "src/deep/a.txt", "content": "one\ntwo\nthree\ntwo\n"]).output.hasPrefix("wrote 18 bytes"))
            #expect(try await call("r", "read", ["path": "/workspace/src/deep/a.txt"]).output == "     1\tone\n     2\ttwo\n     3\tthree\n     4\ttwo\n")
            let window = try await call("r2", "read", ["file_path": "src/deep/a.txt", "offset": 2, "limit": 2])
            #expect(window.output == "     2\ttwo\n     3\tthree\n" && window["truncated"]?.boolValue == true)
            await expectFailure(.fileNotFound) { try await call("r3", "read", ["path": "missing.txt"]) }
            await expectFailure(.isADirectory) { try await call("r4", "read", ["path": "src"]) }
            await expectFailure(.badRequest) { try await call("r5", "read", ["path": "src/deep/a.txt", "offset": 99]) }

            await expectFailure(.notUnique) { try await call("e1", "edit", ["path": "src/deep/a.txt", "old_string": "two", "new_string": "2"]) }
            await expectFailure(.noMatch) { try await call("e2", "edit", ["path": "src/deep/a.txt", "old_string": "four", "new_string": "4"]) }
            await expectFailure(.badRequest) { try await call("e3", "edit", ["path": "src/deep/a.txt", "old_string": "one", "new_string": "one"]) }
            await expectFailure(.fileNotFound) { try await call("e4", "edit", ["path": "nope", "old_string": "a", "new_string": "b"]) }
            #expect(try await call("e5", "edit", ["path": "src/deep/a.txt", "old_string": "three", "new_string": "3"]).output == "replaced 1 occurrence in src/deep/a.txt")
            #expect(try await call("e6", "edit", ["path": "src/deep/a.txt", "old_string": "two", "new_string": "2", "replace_all": true]).output == "replaced 2 occurrences in src/deep/a.txt")
            #expect(try await call("c", "bash", ["command": "cat src/deep/a.txt; stat -c %U src/deep/a.txt"]).output.hasPrefix("one\n2\n3\n2\n"))
            // Files the tools write belong to the sandbox, which can change them.
            #expect(try await call("c2", "bash", ["command": "echo more >> src/deep/a.txt && echo ok"]).output == "ok\n")
        }
    }

    /// The SDK toolset's inputs (what the model is offered): `file_path`, `view_range`,
    /// `timeout_ms`, `restart`.
    @Test func theSDKToolsetsInputsAreTaken() async throws {
        try await withSandbox { client, sandbox in
            func call(_ id: String, _ name: String, _ input: JSONValue) async throws -> JSONValue {
                try await client.execute(sandbox: sandbox, callID: id, name: name, input: input)
            }
            _ = try await call("w", "write", ["file_path": "n.txt", "content": "a\nb\nc\nd\n"])
            #expect(try await call("r1", "read", ["file_path": "n.txt", "view_range": [2, 3]]).output == "     2\tb\n     3\tc\n")
            #expect(try await call("r2", "read", ["file_path": "n.txt", "view_range": [3, 0]]).output == "     3\tc\n     4\td\n")
            await expectFailure(.badRequest) { try await call("r3", "read", ["file_path": "n.txt", "view_range": [3, 1]]) }
            await expectFailure(.badRequest) { try await call("r4", "read", ["file_path": "n.txt", "view_range": "1-2"]) }
            let slow = try await call("b1", "bash", ["command": "sleep 5", "timeout_ms": 300])
            #expect(slow.isError && slow["timed_out"]?.boolValue == true, "\(slow.text)")
            let restarted = try await call("b2", "bash", ["restart": true])
            #expect(!restarted.isError && restarted.output.contains("restarted"))
        }
    }

    @Test func globAndGrep() async throws {
        try await withSandbox { client, sandbox in
            func call(_ id: String, _ name: String, _ input: JSONValue) async throws -> JSONValue {
                try await client.execute(sandbox: sandbox, callID: id, name: name, input: input)
            }
            _ = try await call("s", "bash", ["command": "mkdir -p app/lib && echo 'def main(): pass' > app/main.py && echo 'import os' > app/lib/util.py && echo 'TODO: write' > notes.md"])
            #expect(Set(try await call("g1", "glob", ["pattern": "**/*.py"]).output.split(separator: "\n")) == ["/workspace/app/main.py", "/workspace/app/lib/util.py"])
            #expect(try await call("g2", "glob", ["pattern": "*.md"]).output == "/workspace/notes.md")
            #expect(try await call("g3", "glob", ["pattern": "lib/*.py", "path": "app"]).output == "/workspace/app/lib/util.py")
            #expect(try await call("g4", "glob", ["pattern": "*.rs"]).output == "no files match")
            await expectFailure(.pathOutsideSandbox) { try await call("g5", "glob", ["pattern": "*", "path": "/etc"]) }

            #expect(Set(try await call("q1", "grep", ["pattern": "def|import"]).output.split(separator: "\n")) == ["/workspace/app/main.py", "/workspace/app/lib/util.py"])
            #expect(try await call("q2", "grep", ["pattern": "todo", "case_insensitive": true, "output_mode": "content"]).output == "/workspace/notes.md:1:TODO: write\n")
            #expect(try await call("q3", "grep", ["pattern": "import", "glob": "*.py", "output_mode": "count", "path": "app/lib"]).output == "/workspace/app/lib/util.py:1\n")
            let none = try await call("q4", "grep", ["pattern": "nothing-here"])
            #expect(none.output == "no matches" && !none.isError)
            await expectFailure(.badRequest) { try await call("q5", "grep", ["pattern": "x", "output_mode": "fancy"]) }
            await expectFailure(.pathOutsideSandbox) { try await call("q6", "grep", ["pattern": "root", "path": "../../etc"]) }
        }
    }

    @Test func provisionListStatsDestroy() async throws {
        let pool = try await RunningPool.start(["--warm", "1", "--capacity", "2"])
        let client = try await pool.client()
        let a = try await client.provision(session: "sesn_a")
        let b = try await client.provision(resources: ["timeout_s": 5, "memory_mb": 256])
        do {
            _ = try await client.request("provision", ["resources": ["network": "host"]])
            Issue.record("network host was accepted")
        } catch let failure as PoolProtocol.Failure {
            #expect(failure.code == .badRequest)
        }
        let listed = try await client.request("list")["sandboxes"]
        guard case .array(let sandboxes)? = listed else { Issue.record("no list"); return }
        #expect(Set(sandboxes.compactMap { $0["sandbox"]?.stringValue }) == [a, b])
        #expect(sandboxes.first { $0["sandbox"]?.stringValue == a }?["session"]?.stringValue == "sesn_a")
        #expect(try await client.request("stats")["sandboxes"]?.intValue == 2)
        // Full, with both busy: refused. Full with idle ones: the least recently used makes room.
        async let busyA = client.execute(sandbox: a, callID: "busy", name: "bash", input: ["command": "sleep 1"])
        async let busyB = client.execute(sandbox: b, callID: "busy", name: "bash", input: ["command": "sleep 1"])
        try await Task.sleep(for: .milliseconds(300))
        do {
            _ = try await client.provision()
            Issue.record("a third sandbox fits a capacity of 2 with both running calls")
        } catch let failure as PoolProtocol.Failure {
            #expect(failure.code == .capacity)
        }
        _ = try await (busyA, busyB)
        _ = try await client.execute(sandbox: b, callID: "touch", name: "bash", input: ["command": "true"])
        let c = try await client.provision()
        do {
            _ = try await client.execute(sandbox: a, callID: "x", name: "bash", input: ["command": "true"])
            Issue.record("an evicted sandbox ran a call")
        } catch let failure as PoolProtocol.Failure {
            #expect(failure.code == .sandboxReclaimed && failure.message.contains("evicted"), "\(failure)")
        }
        try await client.destroy(sandbox: c)
        do {
            _ = try await client.execute(sandbox: c, callID: "x", name: "bash", input: ["command": "true"])
            Issue.record("a destroyed sandbox ran a call")
        } catch let failure as PoolProtocol.Failure {
            #expect(failure.code == .sandboxGone)
        }
        #expect(try await client.request("stats")["reclaimed_total"]?.intValue == 1)
        #expect(try await client.request("ping")["pong"]?.boolValue == true)
        let setup = try await client.provision(resources: ["setup": "echo prepared > ready.txt"])
        #expect(try await client.execute(sandbox: setup, callID: "s", name: "read", input: ["path": "ready.txt"]).output == "     1\tprepared\n")
        try await client.destroy(sandbox: setup)
        do {
            _ = try await client.provision(resources: ["setup": "exit 7"])
            Issue.record("a failing setup made a sandbox")
        } catch let failure as PoolProtocol.Failure {
            #expect(failure.code == .setupFailed)
        }
        client.close()
        #expect(await pool.stop() == 0)
    }
}
