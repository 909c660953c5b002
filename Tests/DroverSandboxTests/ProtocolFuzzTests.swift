import DroverCore
import DroverSandbox
import DroverTestSupport
import Foundation
import Testing

/// Thousands of random and mutated lines at a real daemon: every one gets a well-formed reply and
/// the daemon keeps serving. The seed is printed so that a failure can be replayed.
@Suite struct ProtocolFuzzTests {
    static let lines = 10_000

    @Test func randomAndMutatedLinesNeverBreakTheDaemon() async throws {
        let seed = UInt64(ProcessInfo.processInfo.environment["DROVER_FUZZ_SEED"] ?? "") ?? UInt64.random(in: 0...UInt64.max)
        print("protocol fuzz seed: \(seed) (replay with DROVER_FUZZ_SEED=\(seed))")
        var random = SeededRandom(seed: seed)
        let pool = try await RunningPool.start(["--capacity", "4", "--max-line", "65536"])
        let client = try await pool.client()
        var iterator = client.unmatched.makeAsyncIterator()
        var codes: [String: Int] = [:]
        for index in 0..<Self.lines {
            let line = Self.line(&random, index: index)
            client.sendRaw(line)
            guard let reply = await iterator.next() else {
                Issue.record("the connection closed after line \(index) (seed \(seed))")
                break
            }
            guard case .object(let members) = reply, members["result"] != nil || members["error"]?["code"]?.stringValue != nil else {
                Issue.record("malformed reply \(reply.text) to line \(index) (seed \(seed))")
                continue
            }
            if let code = members["error"]?["code"]?.stringValue { codes[code, default: 0] += 1 }
            // Every so often, a normal request on the same connection still works.
            if index % 1000 == 999 { #expect(try await client.request("ping")["pong"]?.boolValue == true) }
        }
        print("protocol fuzz error codes: \(codes.sorted { $0.key < $1.key })")
        #expect(codes.keys.allSatisfy { Self.stableCodes.contains($0) }, "\(codes)")
        #expect(pool.daemon.isRunning)
        #expect(try await client.request("stats")["pool"]?.stringValue != nil)
        client.close()
        #expect(await pool.stop() == 0)
    }

    static let stableCodes: Set<String> = [
        "bad_json", "bad_request", "unknown_op", "unknown_tool", "no_such_sandbox", "sandbox_gone", "capacity", "line_too_long",
        "path_outside_sandbox", "file_not_found", "is_a_directory", "no_match", "not_unique", "too_large", "setup_failed",
        "unauthorized",
    ]

    static let templates: [String] = [
        #"{"id":1,"op":"ping"}"#, #"{"id":2,"op":"list"}"#, #"{"id":3,"op":"stats"}"#,
        #"{"id":4,"op":"destroy","sandbox":"sb_x"}"#,
        #"{"id":5,"op":"execute","sandbox":"sb_x","call_id":"c","name":"read","input":{"path":"a"}}"#,
        #"{"id":6,"op":"provision","resources":{"timeout_s":5,"memory_mb":64}}"#,
        #"{"id":7,"op":"hello","version":1,"token":"nope"}"#,
    ]

    /// One line, never blank and never containing a newline (each gets exactly one reply).
    static func line(_ random: inout SeededRandom, index: Int) -> [UInt8] {
        let id = "\"f\(index)\""
        var bytes: [UInt8]
        switch Int.random(in: 0..<9, using: &random) {
        case 0:
            bytes = (0..<Int.random(in: 1...200, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
        case 1:
            let template = Array(templates.randomElement(using: &random)!.utf8)
            bytes = Array(template.prefix(Int.random(in: 1..<template.count, using: &random)))
        case 2:
            var template = Array(templates.randomElement(using: &random)!.utf8)
            for _ in 0..<Int.random(in: 1...4, using: &random) {
                template[Int.random(in: 0..<template.count, using: &random)] = UInt8.random(in: 32...126, using: &random)
            }
            bytes = template
        case 3:
            let depth = Int.random(in: 10...2000, using: &random)
            bytes = Array("{\"id\":\(id),\"op\":\"ping\",\"x\":\(String(repeating: "[", count: depth))\(String(repeating: "]", count: depth))}".utf8)
        case 4:
            let value = ["1e999", "-1e999", "123456789012345678901234567890", "0.0000000000001", "null", "true", "\"\"", "[]", "{}"]
                .randomElement(using: &random)!
            let field = ["id", "op", "sandbox", "call_id", "name", "input", "resources", "version"].randomElement(using: &random)!
            bytes = Array("{\"id\":\(id),\"op\":\"execute\",\"sandbox\":\"sb\",\"call_id\":\"c\",\"name\":\"bash\",\"\(field)\":\(value)}".utf8)
        case 5:
            let op = ["provision", "execute", "destroy", "list", "stats", "ping", "hello", "", "EXECUTE", "\\u0000"].randomElement(using: &random)!
            let extra = [",\"resources\":\"lots\"", ",\"resources\":{\"processes\":-1}", ",\"resources\":{\"network\":\"host\"}",
                         ",\"sandbox\":7", ",\"input\":[]", ",\"name\":\"rm\"", ""].randomElement(using: &random)!
            bytes = Array("{\"id\":\(id),\"op\":\"\(op)\"\(extra)}".utf8)
        case 6:
            bytes = Array(repeating: UInt8(ascii: "a"), count: Int.random(in: 65_537...66_000, using: &random))
        case 7:
            bytes = Array("{\"id\":\(id),\"op\":\"execute\",\"sandbox\":\"sb_nope\",\"call_id\":\"\(index)\",\"name\":\"bash\",\"input\":{\"command\":\"true\"}}".utf8)
        default:
            bytes = Array("\"just a string\"".utf8) + [UInt8.random(in: 33...126, using: &random)]
        }
        bytes = bytes.map { $0 == UInt8(ascii: "\n") || $0 == UInt8(ascii: "\r") ? UInt8(ascii: "?") : $0 }
        if bytes.allSatisfy({ $0 == 32 || $0 == 9 }) { bytes.append(UInt8(ascii: "x")) }
        return bytes
    }
}
