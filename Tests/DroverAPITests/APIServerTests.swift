import DroverCore
import Foundation
import DroverIO
import DroverStore
import DroverTestSupport
import Foundation
import Synchronization
import Testing
@testable import DroverAPI

typealias RawHTTP = HTTPConnection

extension String {
    func request(_ method: String, key: String, body: String? = nil, headers: [String] = []) -> String {
        var text = "\(method) \(self) HTTP/1.1\r\nHost: test\r\nx-api-key: \(key)\r\n"
        for header in headers { text += header + "\r\n" }
        if let body { text += "content-type: application/json\r\ncontent-length: \(body.utf8.count)\r\n\r\n\(body)" } else { text += "\r\n" }
        return text
    }
}

@Suite(.serialized) struct APIServerTests {
    /// A database with an organisation's key, and `drover api` on it.
    func withAPI(_ extra: [String] = [], _ body: (RunningAPI, String, TestDatabase) async throws -> Void) async throws {
        try await TestDatabase.with { db in
            let api = try await RunningAPI.start(database: db.conninfo, extra)
            do {
                try await body(api, try await api.key(org: "robust"), db)
            } catch {
                await api.stop()
                throw error
            }
            #expect(await api.stop() == 0)
        }
    }

    @Test func malformedOversizedAndSmugglingRequestsGetTheirStatusAndTheDaemonKeepsServing() async throws {
        try await withAPI(["--request-deadline", "2"]) { api, key, _ in
            let cases: [(String, Int)] = [
                ("GARBAGE\r\n\r\n", 400),
                ("GET /v1/agents HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n", 400),
                ("GET /v1/agents HTTP/1.1\r\nHost: x\r\nx-big: \(String(repeating: "a", count: 40_000))\r\n\r\n", 431),
                ("POST /v1/agents HTTP/1.1\r\nHost: x\r\nContent-Length: 9000000\r\n\r\n", 413),
                ("POST /v1/agents HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n{}", 400),
                ("GET /v1/agents HTTP/9.9\r\nHost: x\r\n\r\n", 505),
            ]
            for (text, status) in cases {
                let client = try RawHTTP.connect(api.address)
                try client.send(text)
                let answer = try client.response()
                #expect(answer?.status == status, "\(text.prefix(50).debugDescription): \(String(describing: answer))")
                #expect(answer.map { (try? JSONValue.parse($0.body))?["error"]?["type"] != nil } ?? false, "an error body")
                #expect(client.closed(within: 2), "the connection closes after a refusal")
                client.close()
            }
            // A client that sends one byte a second is cut off at the deadline, while another is served.
            let slow = try RawHTTP.connect(api.address)
            let dripping = Task.detached {
                for byte in "GET /v1/agents HTTP/1.1\r\nHost: x\r\n".utf8 {
                    guard (try? slow.socket.send(bytes: [byte])) != nil else { return }
                    try? await Task.sleep(for: .seconds(1))
                }
            }
            let fast = try RawHTTP.connect(api.address)
            let started = ContinuousClock.now
            try fast.send("/v1/agents".request("GET", key: key))
            #expect(try fast.response()?.status == 200)
            #expect(ContinuousClock.now - started < .seconds(1), "served while the slow client drips")
            let cutOff = try slow.response()
            #expect(cutOff?.status == 408, "\(String(describing: cutOff))")
            dripping.cancel()
            slow.close()
            // Keep-alive: several requests on one connection, then a clean one after all of the above.
            for _ in 0..<3 {
                try fast.send("/v1/environments".request("POST", key: key, body: #"{"name":"e"}"#))
                let created = try #require(try fast.response())
                #expect(created.status == 200 && created.headers["request-id"]?.hasPrefix("req_") == true)
            }
            fast.close()
        }
    }

    @Test func metricsCountRequestsByRouteTemplate() async throws {
        #expect(APIMetrics.route("/v1/sessions/sesn_1/events/stream?beta=true") == "/v1/sessions/{id}/events/stream")
        #expect(APIMetrics.route("/v1/agents/agent_1/versions") == "/v1/agents/{id}/versions")
        #expect(APIMetrics.route("/v1/fleet/leases") == "/v1/fleet/leases" && APIMetrics.route("/wp-admin") == "other")
        // Every served template is its own label (memory routes were once read as ids).
        #expect(APIMetrics.route("/v1/memory_stores/memstore_1/memories/mem_1") == "/v1/memory_stores/{id}/memories/{id}")
        #expect(APIMetrics.route("/v1/files/file_1/content") == "/v1/files/{id}/content")
        #expect(APIMetrics.route("/v1/dreams/drm_1/cancel") == "/v1/dreams/{id}/cancel")
        for template in APIRouter.routes.keys {
            let path = template.replacingOccurrences(of: "{id}", with: "x_1")
            #expect(APIMetrics.route(path) == template, "\(path)")
        }
        try await withAPI(["--metrics-listen", "127.0.0.1:0"]) { api, key, _ in
            let client = try RawHTTP.connect(api.address)
            defer { client.close() }
            try client.send("/v1/agents".request("GET", key: key))
            #expect(try client.response()?.status == 200)
            try client.send("/v1/sessions/sesn_missing".request("GET", key: key))
            #expect(try client.response()?.status == 404)
            let address = try #require(try await api.daemon.waitForLog("listening")["metrics"]?.stringValue)
            let (status, text) = try await PrometheusText.get(address, "/metrics")
            #expect(status == 200)
            #expect(text.contains(#"drover_api_requests_total{method="GET",route="/v1/agents",status="200"} 1"#), "\(text)")
            #expect(text.contains(#"drover_api_requests_total{method="GET",route="/v1/sessions/{id}",status="404"} 1"#))
            // Structured request lines name the session a request was about.
            let lines = api.daemon.log.split(separator: "\n").compactMap { try? JSONValue.parse(String($0)) }
            let line = try #require(lines.first { $0["msg"] == "request" && $0["session"] == "sesn_missing" })
            #expect(line["status"]?.intValue == 404 && line["request_id"]?.stringValue?.hasPrefix("req_") == true)
        }
    }

    @Test func rateLimitsHoldPerOrganisationAndIdempotencyKeysReplay() async throws {
        try await withAPI { api, key, db in
            let sql = db.pool(maxConnections: 1)
            defer { sql.close() }
            try await TenantStore(pool: sql).setLimits(org: "robust", createsPerMinute: 3, requestsPerMinute: nil)
            let client = try RawHTTP.connect(api.address)
            defer { client.close() }
            // The same Idempotency-Key and body: one agent, the first response again.
            let body = #"{"name":"once","model":"claude-sonnet-4-5"}"#
            try client.send("/v1/agents".request("POST", key: key, body: body, headers: ["Idempotency-Key: k1"]))
            let first = try #require(try client.response())
            try client.send("/v1/agents".request("POST", key: key, body: body, headers: ["Idempotency-Key: k1"]))
            let again = try #require(try client.response())
            #expect(first.status == 200 && again.status == 200 && again.headers["idempotent-replayed"] == "true")
            #expect((try JSONValue.parse(first.body))["id"] == (try JSONValue.parse(again.body))["id"])
            try client.send("/v1/agents".request("POST", key: key, body: #"{"name":"other","model":"m"}"#, headers: ["Idempotency-Key: k1"]))
            #expect(try client.response()?.status == 400, "the key with another body")
            // Three creates a minute (the replay counted too): the next is refused with retry-after.
            try client.send("/v1/environments".request("POST", key: key, body: #"{"name":"e"}"#))
            let limited = try #require(try client.response())
            #expect(limited.status == 429 && Int(limited.headers["retry-after"] ?? "") != nil, "\(limited)")
            #expect((try JSONValue.parse(limited.body))["error"]?["type"] == "rate_limit_error")
            // The limit holds across replicas: another API process on the database finds it spent.
            let replica = try await RunningAPI.start(database: db.conninfo)
            let second = try RawHTTP.connect(replica.address)
            try second.send("/v1/environments".request("POST", key: key, body: #"{"name":"e"}"#))
            #expect(try second.response()?.status == 429, "the other replica refuses too")
            second.close()
            #expect(await replica.stop() == 0)
            // Other requests are under their own limit; another organisation is not limited.
            try client.send("/v1/agents".request("GET", key: key))
            #expect(try client.response()?.status == 200)
            let otherKey = try await api.key(org: "unlimited")
            try client.send("/v1/environments".request("POST", key: otherKey, body: #"{"name":"e"}"#))
            #expect(try client.response()?.status == 200)
            // Fleet views: operator keys only.
            try client.send("/v1/fleet/queue".request("GET", key: otherKey))
            #expect(try client.response()?.status == 403)
            let operatorKey = try await api.key(org: "ops", operator_: true)
            for view in ["leases", "harnesses", "pools", "queue", "queue_history"] {
                try client.send("/v1/fleet/\(view)".request("GET", key: operatorKey))
                let answer = try #require(try client.response())
                guard case .array? = (try JSONValue.parse(answer.body))["data"] else { Issue.record("\(view): \(answer.body)"); continue }
                #expect(answer.status == 200)
            }
        }
    }

    /// Opens a stream on its own thread and collects the events it receives until told to stop.
    final class StreamReader: Sendable {
        let events = Mutex<[String]>([])
        let finished = Mutex(false)
        /// The response head arrived: the stream is subscribed.
        let opened = Mutex(false)
        let client: RawHTTP

        /// `after`: an event id to resume after (`Last-Event-ID`).
        init(_ address: String, key: String, session: String, read: Bool = true, after: String? = nil) throws {
            client = try RawHTTP.connect(address)
            // A small window (not a tiny one: TCP would then crawl through its persist timer).
            if !read { client.socket.setReceiveBuffer(65_536) }
            try client.send("/v1/sessions/\(session)/events/stream".request("GET", key: key, headers: after.map { ["Last-Event-ID: \($0)"] } ?? []))
            guard read else { return }
            let thread = Thread { [self] in
                var pending = ""
                var head: [UInt8]? = []
                var buffer = [UInt8](repeating: 0, count: 65_536)
                while let count = try? client.socket.read(into: &buffer), count > 0 {
                    var bytes = Array(buffer[0..<count])
                    if var received = head {
                        // The response head (CRLF lines) comes first; the events follow it.
                        received += bytes
                        guard let end = HTTPRequestParser.find([13, 10, 13, 10], in: received[...]) else {
                            head = received
                            continue
                        }
                        bytes = Array(received[(end + 4)...])
                        head = nil
                        opened.withLock { $0 = true }
                    }
                    pending += String(decoding: bytes, as: UTF8.self)
                    while let range = pending.range(of: "\n\n") {
                        let message = String(pending[..<range.lowerBound])
                        pending.removeSubrange(..<range.upperBound)
                        if let line = message.split(separator: "\n").first(where: { $0.hasPrefix("event: ") }) {
                            events.withLock { $0.append(String(line.dropFirst(7))) }
                        }
                    }
                }
                finished.withLock { $0 = true }
                // Closed by its reader only: closed from elsewhere, the descriptor could be reused
                // by another connection while this thread still reads it.
                client.close()
            }
            thread.start()
        }
    }

    /// A session made through the API (no harness: user events are enough to stream).
    func session(_ api: RunningAPI, key: String) throws -> (RawHTTP, String) {
        let client = try RawHTTP.connect(api.address)
        func post(_ path: String, _ body: String) throws -> JSONValue {
            try client.send(path.request("POST", key: key, body: body))
            let answer = try #require(try client.response())
            #expect(answer.status == 200, "\(path): \(answer.body)")
            return try JSONValue.parse(answer.body)
        }
        let agent = try post("/v1/agents", #"{"name":"a","model":"m"}"#)["id"]?.stringValue ?? ""
        let env = try post("/v1/environments", #"{"name":"e"}"#)["id"]?.stringValue ?? ""
        return (client, try post("/v1/sessions", #"{"agent":"\#(agent)","environment_id":"\#(env)"}"#)["id"]?.stringValue ?? "")
    }

    func send(_ client: RawHTTP, key: String, session: String, text: String) throws {
        try client.send("/v1/sessions/\(session)/events".request(
            "POST", key: key, body: #"{"events":[{"type":"user.message","content":[{"type":"text","text":"\#(text)"}]}]}"#))
        #expect(try client.response()?.status == 200)
    }

    func waitFor(_ readers: [StreamReader], count: Int) async throws -> [Int] {
        let deadline = ContinuousClock.now + .seconds(20)
        func counts() -> [Int] { readers.map { $0.events.withLock { $0.filter { $0 == "user.message" }.count } } }
        while ContinuousClock.now < deadline && counts().contains(where: { $0 < count }) { try await Task.sleep(for: .milliseconds(50)) }
        return counts()
    }

    /// 200 streams on one process, and issue #22's 1,000, from one client (its share lifted to the
    /// cap), each getting every event exactly once.
    @Test(arguments: [200, 1000])
    func streamsOnOneProcessEachGetEveryEventOnce(_ streams: Int) async throws {
        try await withAPI(["--max-connections-per-client", "1024"]) { api, key, db in
            // Stream requests count against the organisation's requests per minute (600 by default).
            let sql = db.pool(maxConnections: 1)
            try await sql.query("UPDATE drover.organizations SET requests_per_minute = 100000")
            sql.close()
            let (client, session) = try session(api, key: key)
            defer { client.close() }
            let readers = try (0..<streams).map { _ in try StreamReader(api.address, key: key, session: session) }
            // Every stream subscribed (its head arrived) before the first event: a stream opened
            // without a position starts from now.
            let opened = ContinuousClock.now + .seconds(30)
            while readers.contains(where: { !$0.opened.withLock { $0 } }) && ContinuousClock.now < opened {
                try await Task.sleep(for: .milliseconds(20))
            }
            for index in 0..<10 { try send(client, key: key, session: session, text: "message \(index)") }
            let counts = try await waitFor(readers, count: 10)
            #expect(counts.allSatisfy { $0 == 10 }, "every stream got every event once: \(Dictionary(grouping: counts, by: { $0 }).mapValues(\.count))")
            readers.forEach { $0.client.socket.shutdown() }
        }
    }

    @Test func sigtermEndsStreamsWithAFinalEventAndExitsWithinTheGrace() async throws {
        try await TestDatabase.with { db in
            let api = try await RunningAPI.start(database: db.conninfo)
            let key = try await api.key(org: "drain")
            let (client, session) = try session(api, key: key)
            defer { client.close() }
            let reader = try StreamReader(api.address, key: key, session: session)
            try await Task.sleep(for: .milliseconds(300))
            try send(client, key: key, session: session, text: "before")
            _ = try await waitFor([reader], count: 1)
            let started = ContinuousClock.now
            #expect(await api.stop() == 0)
            #expect(ContinuousClock.now - started < .seconds(5), "within the grace, not at the next ping")
            let deadline = ContinuousClock.now + .seconds(5)
            while !reader.finished.withLock({ $0 }) && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
            #expect(reader.events.withLock { $0 } == ["user.message", "error"], "the event, then a final error event, then the end")
        }
    }

    @Test func aClientThatStopsReadingIsCutOffWithoutDelayingOthers() async throws {
        try await withAPI(["--stream-buffer", "262144", "--stream-stall", "1"]) { api, key, _ in
            let (client, session) = try session(api, key: key)
            defer { client.close() }
            let reader = try StreamReader(api.address, key: key, session: session)
            let stalled = try StreamReader(api.address, key: key, session: session, read: false)
            try await Task.sleep(for: .milliseconds(300))
            // 80 events of ~40 KiB: more than the stalled stream's 256 KiB buffer and the kernel's
            // buffers hold, so it overflows; the reader reads on.
            let big = String(repeating: "x", count: 40_000)
            let started = ContinuousClock.now
            for index in 0..<80 { try send(client, key: key, session: session, text: "\(index) \(big)") }
            #expect(try await waitFor([reader], count: 80) == [80], "the reader got every event")
            #expect(ContinuousClock.now - started < .seconds(15))
            // Its buffer full for the stall limit (1 s) while it took nothing: cut off.
            try await Task.sleep(for: .seconds(2))
            #expect(stalled.client.closed(within: 10), "the reader that never read was cut off")
            #expect(api.daemon.log.contains("stream cut off"), "by its buffer overflowing, not a timeout")
            reader.client.socket.shutdown()
        }
    }

    /// Issue #27 (3): a resume whose backlog is larger than the stream's buffer used to overflow
    /// in the poller's first tick (it read the whole backlog at once), reconnect and overflow
    /// again forever, holding up every other stream meanwhile. It is caught up as it reads.
    @Test func aResumeWithABacklogLargerThanTheBufferCatchesUp() async throws {
        try await withAPI(["--stream-buffer", "262144"]) { api, key, _ in
            let (client, session) = try session(api, key: key)
            defer { client.close() }
            let big = String(repeating: "x", count: 40_000)
            for index in 0..<80 { try send(client, key: key, session: session, text: "\(index) \(big)") }
            try client.send("/v1/sessions/\(session)/events?limit=1".request("GET", key: key))
            let listed = try #require(try client.response())
            let first = try #require(try JSONValue.parse(listed.body)["data"]?[0]?["id"]?.stringValue)
            // Another session's live stream, to show it is not held up meanwhile.
            let (otherClient, other) = try self.session(api, key: key)
            defer { otherClient.close() }
            let live = try StreamReader(api.address, key: key, session: other)
            let resumed = try StreamReader(api.address, key: key, session: session, after: first)
            try await Task.sleep(for: .milliseconds(300))
            try send(otherClient, key: key, session: other, text: "live")
            #expect(try await waitFor([live], count: 1) == [1], "the live stream was held up")
            #expect(try await waitFor([resumed], count: 79) == [79], "the backlog (3 MiB through a 256 KiB buffer) arrived whole, once")
            #expect(!api.daemon.log.contains("stream cut off"), "the catching-up reader was cut off")
            resumed.client.socket.shutdown()
            live.client.socket.shutdown()
        }
    }
}
