import DroverCore
import DroverIO
import DroverSandbox
import DroverTestSupport
import Foundation
import Testing

@Suite(.serialized) struct ProtocolTests {
    /// Sends a raw line and waits for the reply that carries no known id.
    func rawReply(_ client: PoolClient, _ line: [UInt8]) async throws -> JSONValue {
        client.sendRaw(line)
        var iterator = client.unmatched.makeAsyncIterator()
        guard let reply = await iterator.next() else { throw PoolProtocol.Failure(.unreachable, "connection closed") }
        return reply
    }

    @Test func abuseGetsCodedErrorsAndTheConnectionKeepsServing() async throws {
        let pool = try await RunningPool.start()
        // No hello yet: a raw connection.
        let raw = try await PoolClient.connect(pool.address, token: nil)
        var before = try await rawReply(raw, Array(#"{"id":"x1","op":"list"}"#.utf8))
        #expect(before["error"]?["code"]?.stringValue == "unauthorized")
        #expect(before["id"]?.stringValue == "x1")
        before = try await rawReply(raw, Array(#"{"id":"x2","op":"hello","version":1,"token":"wrong"}"#.utf8))
        #expect(before["error"]?["code"]?.stringValue == "unauthorized")
        before = try await rawReply(raw, Array(#"{"id":"x3","op":"hello","version":99,"token":"\#(pool.token)"}"#.utf8))
        #expect(before["error"]?["code"]?.stringValue == "unauthorized")
        // After all that, the right hello still works on the same connection.
        #expect(try await raw.request("hello", ["version": 1, "token": .string(pool.token)])["version"]?.intValue == 1)

        let cases: [([UInt8], String)] = [
            (Array("{not json".utf8), "bad_json"),
            (Array("[1,2,3]".utf8), "bad_json"),
            ([0xff, 0xfe, 0x00, 0x01], "bad_json"),
            (Array(#"{"op":"ping"}"#.utf8), "bad_request"),
            (Array(#"{"id":{"nested":1},"op":"ping"}"#.utf8), "bad_request"),
            (Array(repeating: UInt8(ascii: "x"), count: 20 << 20), "line_too_long"),
        ]
        for (line, code) in cases {
            let reply = try await rawReply(raw, line)
            #expect(reply["error"]?["code"]?.stringValue == code, "\(reply.text)")
            #expect(try await raw.request("ping")["pong"]?.boolValue == true, "after \(code)")
        }
        for (op, fields, code) in [
            ("frobnicate", [String: JSONValue](), "unknown_op"),
            ("execute", ["sandbox": "sb_x"], "bad_request"),
            ("execute", ["call_id": "c"], "bad_request"),
            ("destroy", [:], "bad_request"),
            ("provision", ["resources": "lots"], "bad_request"),
            ("provision", ["resources": ["memory_mb": -5]], "bad_request"),
        ] {
            do {
                let result = try await raw.request(op, fields)
                Issue.record("\(op) succeeded: \(result.text)")
            } catch let failure as PoolProtocol.Failure {
                #expect(failure.code.rawValue == code, "\(op): \(failure)")
            }
        }
        #expect(try await raw.request("ping")["pong"]?.boolValue == true)
        #expect(pool.daemon.isRunning)
        raw.close()
        #expect(await pool.stop() == 0)
    }

    @Test func theSameCallIDRunsOnceSequentiallyAndConcurrently() async throws {
        let pool = try await RunningPool.start()
        let client = try await pool.client()
        let second = try await pool.client()
        let sandbox = try await client.provision()
        let effect: JSONValue = ["command": "echo ran >> effects.log; sleep 0.3; wc -l < effects.log"]
        let first = try await client.execute(sandbox: sandbox, callID: "call-1", name: "bash", input: effect)
        let again = try await second.execute(sandbox: sandbox, callID: "call-1", name: "bash", input: effect)
        #expect(first == again)
        #expect(first.output == "1\n")

        async let a = client.execute(sandbox: sandbox, callID: "call-2", name: "bash", input: effect)
        async let b = second.execute(sandbox: sandbox, callID: "call-2", name: "bash", input: effect)
        async let c = client.execute(sandbox: sandbox, callID: "call-2", name: "bash", input: effect)
        let results = try await [a, b, c]
        #expect(Set(results.map(\.text)).count == 1)
        #expect(results[0].output == "2\n")
        let log = try await client.execute(sandbox: sandbox, callID: "check", name: "read", input: ["path": "effects.log"])
        #expect(log.output == "     1\tran\n     2\tran\n")
        client.close()
        second.close()
        #expect(await pool.stop() == 0)
    }

    @Test func fiftyConcurrentExecutesAcrossTenSandboxesOnFiveConnections() async throws {
        let pool = try await RunningPool.start(["--warm", "4"])
        var clients: [PoolClient] = []
        for _ in 0..<5 { clients.append(try await pool.client()) }
        var sandboxes: [String] = []
        for index in 0..<10 { sandboxes.append(try await clients[index % 5].provision()) }
        let outputs = try await withThrowingTaskGroup(of: (Int, String).self) { group in
            for call in 0..<50 {
                let client = clients[call % 5]
                let sandbox = sandboxes[call % 10]
                group.addTask {
                    let result = try await client.execute(
                        sandbox: sandbox, callID: "c\(call)", name: "bash",
                        input: ["command": .string("sleep 0.$((RANDOM % 3)); echo \(call) > out-\(call).txt; cat out-\(call).txt")])
                    return (call, result.output)
                }
            }
            return try await group.reduce(into: [Int: String]()) { $0[$1.0] = $1.1 }
        }
        #expect(outputs.count == 50)
        for call in 0..<50 { #expect(outputs[call] == "\(call)\n", "call \(call)") }
        clients.forEach { $0.close() }
        #expect(await pool.stop() == 0)
    }

    @Test func sigtermDrainsKillsWhatOutlivesTheGraceAndLeavesNothingBehind() async throws {
        let pool = try await RunningPool.start(["--grace", "1"])
        let client = try await pool.client()
        let sandbox = try await client.provision()
        let quick = Task { try await client.execute(sandbox: sandbox, callID: "quick", name: "bash", input: ["command": "sleep 0.3; echo finished"]) }
        let slow = Task { try await client.execute(sandbox: sandbox, callID: "slow", name: "bash", input: ["command": "sleep 1000"]) }
        try await Task.sleep(for: .milliseconds(100))
        #expect(!EscapeTests.processes(mentioning: pool.workspacePrefix).isEmpty)
        let started = ContinuousClock.now
        pool.daemon.signal(SIGTERM)
        let status = await pool.daemon.wait(timeout: 10)
        #expect(status == 0)
        #expect(ContinuousClock.now - started < .seconds(5), "exited within the 1 s grace and a margin")
        // The call that fit in the grace finished normally; the other was killed, not left running.
        #expect(try await quick.value.output == "finished\n")
        _ = try? await slow.value
        #expect(EscapeTests.processes(mentioning: pool.workspacePrefix).isEmpty)
        #expect(!FileManager.default.fileExists(atPath: pool.workspaceRoot))
        #expect(pool.daemon.log.contains("\"msg\":\"stopped\""))
        client.close()
    }

    @Test func refusesToStartWithoutIsolationUnlessToldTo() async throws {
        let missing = try ChildDaemon(
            binary: TestDatabase.droverBinary.path, ["sandbox-pool", "--listen", "127.0.0.1:0"], environment: ["DROVER_POOL_TOKEN": "t", "DROVER_BWRAP": "/nonexistent/bwrap"])
        #expect(await missing.wait(timeout: 10) == 1)
        #expect(missing.log.contains("isolation_unavailable"))
        let insecure = try await RunningPool.start(["--insecure-no-isolation"], environment: ["DROVER_BWRAP": "/nonexistent/bwrap"])
        #expect(insecure.daemon.log.contains("INSECURE"))
        let client = try await insecure.client()
        let sandbox = try await client.provision()
        #expect(try await client.execute(sandbox: sandbox, callID: "1", name: "bash", input: ["command": "echo plain"]).output == "plain\n")
        client.close()
        #expect(await insecure.stop() == 0)
    }

    @Test func noTokenNoStart() async throws {
        let daemon = try ChildDaemon(binary: TestDatabase.droverBinary.path, ["sandbox-pool", "--listen", "127.0.0.1:0"], environment: ["DROVER_POOL_TOKEN": ""])
        #expect(await daemon.wait(timeout: 10) == 2)
        #expect(daemon.log.contains("token is required"))
    }
}
