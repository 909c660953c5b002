import DroverCLI
import CDroverSys
import DroverCore
import DroverIO
import DroverTestSupport
import DroverPostgres
import DroverStore
import Foundation
import Synchronization

/// `drover bench api`: a real `drover api` process on a scratch database, driven over loopback
/// HTTP/1.1 keep-alive connections.
struct BenchAPICommand: Command {
    static let name = "bench api"
    static let summary = "benchmark the HTTP API: requests/s and commit→stream latency"
    static let help = """
        usage: drover bench api [--seconds S] [--clients N] [--samples N] [--api-binary PATH] [--json]

        In a scratch database on the DATABASE_URL server, with a `drover api` process:
          events_send_per_s         POST /v1/sessions/{id}/events (one user.message), --clients
                                    keep-alive connections on one event loop, each on its own
                                    session
          sessions_retrieve_per_s   GET /v1/sessions/{id}, likewise
          retrieve_10_events_p50_ms, retrieve_100000_events_p50_ms, retrieve_ratio_100000_to_10
                                    GET /v1/sessions/{id} on a session of 10 events and one of
                                    100,000 (a third of them model calls), interleaved
          stream_latency_user_*     a user event committed (send_event returned) → received by a
                                    streaming client, p50/p99, with 1 and with 1,000 streams open
                                    on the session (every stream's receipt is a sample; the
                                    readers are one event loop); Postgres's notification wakes
                                    the API's poller
          stream_latency_harness_*  the same for an event a harness's group commit appends (one
                                    notification after each commit, as harnesses do by default)
          stream_latency_agent_*    the same for an event a lease holder appends (append_event),
                                    which notifies no one: the poller finds it on its 20 ms round

          --seconds S   seconds per throughput run (default 5)
          --clients N   concurrent connections for throughput (default 16)
          --samples N   events sent for each latency run (default 200)
          --api-binary PATH
                        the `drover` whose `api` is measured (default this one): another build
                        measured by the same load generator, for a side-by-side comparison
          --json        one JSON object instead of a table
        """
    static let options: Set<String> = ["seconds", "clients", "samples", "api-binary"]
    static let flags: Set<String> = ["json"]

    static func run(_ arguments: Arguments) async throws {
        let seconds = try arguments.double("seconds") ?? 5
        let clients = try arguments.int("clients") ?? 16
        let samples = try arguments.int("samples") ?? 200
        let database = try await BenchDatabase.create()
        let sql = ConnectionPool(conninfo: database.conninfo, maxConnections: 2)
        let binary = arguments.value("api-binary") ?? DroverBinary.path
        // The load generator is one client address with hundreds of streams (and the last run's
        // still closing): the per-client share is lifted to the whole cap.
        let api = try ChildDaemon(binary: binary, ["api", "--listen", "127.0.0.1:0", "--grace", "1", "--db-connections", "16",
                                                   "--max-connections-per-client", "1024"],
                                  environment: ["DATABASE_URL": database.conninfo])
        var results: [BenchResult] = []
        func stop() async {
            api.signal(SIGTERM)
            _ = await api.wait(timeout: 10)
            sql.close()
        }
        try await BenchDatabase.run(database, stop: stop) {
            guard let address = try await api.waitForLog("listening")["address"]?.stringValue else { throw DroverError(.invalidArgument, "no address") }
            let tenants = TenantStore(pool: sql)
            let key = try await tenants.createKey(org: "bench", operator_: false).secret
            // The bench measures the server, not the default per-organisation limits.
            try await tenants.setLimits(org: "bench", createsPerMinute: 1_000_000, requestsPerMinute: 100_000_000)
            let setup = try HTTPConnection.connect(address)
            defer { setup.close() }
            let headers = [("x-api-key", key)]
            func post(_ path: String, _ body: String) throws -> JSONValue {
                guard let answer = try setup.request("POST", path, headers: headers, body: body), answer.status == 200 else {
                    throw DroverError(.invalidArgument, "\(path) failed")
                }
                return try JSONValue.parse(answer.body)
            }
            let agent = try post("/v1/agents", #"{"name":"bench","model":"m"}"#)["id"]?.stringValue ?? ""
            let env = try post("/v1/environments", #"{"name":"bench"}"#)["id"]?.stringValue ?? ""
            let sessions = try (0..<clients).map { _ in
                try post("/v1/sessions", #"{"agent":"\#(agent)","environment_id":"\#(env)"}"#)["id"]?.stringValue ?? ""
            }
            let message = #"{"events":[{"type":"user.message","content":[{"type":"text","text":"hello"}]}]}"#
            @Sendable func request(_ method: String, _ path: String, body: String? = nil) -> [UInt8] {
                var text = "\(method) \(path) HTTP/1.1\r\nhost: drover\r\nx-api-key: \(key)\r\n"
                if let body { text += "content-type: application/json\r\ncontent-length: \(body.utf8.count)\r\n" }
                return Array((text + "\r\n" + (body ?? "")).utf8)
            }
            let send = try await throughput(address, clients: clients, seconds: seconds) { index in
                request("POST", "/v1/sessions/\(sessions[index])/events", body: message)
            }
            results.append(BenchResult(name: "events_send_per_s", value: send, unit: "requests/s"))
            Progress.say(String(format: "events.send: %.0f requests/s", send))
            let retrieve = try await throughput(address, clients: clients, seconds: seconds) { index in
                request("GET", "/v1/sessions/\(sessions[index])")
            }
            results.append(BenchResult(name: "sessions_retrieve_per_s", value: retrieve, unit: "requests/s"))
            Progress.say(String(format: "sessions.retrieve: %.0f requests/s", retrieve))

            // A retrieve's time by the length of the session's log: 10 events against 100,000 (a
            // third of them model calls, whose usage the render sums), after one render of each
            // (the first catches the kept sums up), interleaved.
            var sessionsByLength: [String] = []
            for length in [10, 100_000] {
                let session = try post("/v1/sessions", #"{"agent":"\#(agent)","environment_id":"\#(env)"}"#)["id"]?.stringValue ?? ""
                Progress.say("writing \(length) events into a session")
                try await sql.query(Self.fillLogSQL, [session, length])
                // The render counts the log's usage: the long log is really read.
                let first = try setup.request("GET", "/v1/sessions/\(session)", headers: headers).map { try JSONValue.parse($0.body) }
                guard first?["usage"]?["input_tokens"]?.intValue == length / 3 * 10 else {
                    throw DroverError(.invalidArgument, "the render's usage does not count the log: \(first?.text ?? "no answer")")
                }
                sessionsByLength.append(session)
            }
            var shortLog = Latencies()
            var longLog = Latencies()
            func retrieveOnce(_ session: String) throws {
                let answer = try setup.request("GET", "/v1/sessions/\(session)", headers: headers)
                guard answer?.status == 200 else { throw DroverError(.invalidArgument, "retrieve failed: \(answer?.status ?? 0)") }
            }
            for _ in 0..<samples {
                try await shortLog.measure { try retrieveOnce(sessionsByLength[0]) }
                try await longLog.measure { try retrieveOnce(sessionsByLength[1]) }
            }
            let (short, long) = (shortLog.percentile(50), longLog.percentile(50))
            results.append(BenchResult(name: "retrieve_10_events_p50_ms", value: short, unit: "ms"))
            results.append(BenchResult(name: "retrieve_100000_events_p50_ms", value: long, unit: "ms"))
            results.append(BenchResult(name: "retrieve_ratio_100000_to_10", value: long / short, unit: "x (flat: about 1)"))
            Progress.say(String(format: "retrieve p50: %.3f ms at 10 events, %.3f ms at 100,000", short, long))
            for writer in [Writer.user, .harness, .agent] {
                for streams in [1, 1000] {
                    let session = try post("/v1/sessions", #"{"agent":"\#(agent)","environment_id":"\#(env)"}"#)["id"]?.stringValue ?? ""
                    let latency = try await streamLatency(
                        address, key: key, session: session, streams: streams, samples: samples, writer: writer, sql: sql)
                    let name = "stream_latency_\(writer.rawValue)_\(streams)"
                    results.append(BenchResult(name: name + "_p50_ms", value: latency.percentile(50), unit: "ms"))
                    results.append(BenchResult(name: name + "_p99_ms", value: latency.percentile(99), unit: "ms"))
                    Progress.say(String(format: "%@ events, %d stream(s): commit → client p50 %.2f ms, p99 %.2f ms", writer.rawValue, streams,
                                        latency.percentile(50), latency.percentile(99)))
                }
            }
        }
        BenchReport.print("drover bench api", results, json: arguments.has("json"), extra: [
            ("benchmark", "api"), ("cores", String(ProcessInfo.processInfo.activeProcessorCount)), ("clients", String(clients)),
            ("seconds", String(seconds)), ("samples", String(samples)), ("api_binary", binary),
        ])
    }

    /// Appends `$2` events to session `$1` as a log that long would hold them: a third model
    /// calls with their usage, the rest the agent's messages.
    static let fillLogSQL = """
        WITH appended AS (
            INSERT INTO drover.events (session_id, seq, type, payload)
            SELECT $1, s.last_seq + g,
                   CASE WHEN g % 3 = 0 THEN 'span.model_request_end' ELSE 'agent.message' END,
                   CASE WHEN g % 3 = 0
                        THEN '{"model_usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0}}'
                        ELSE '{"content": [{"type": "text", "text": "x"}]}' END::jsonb
              FROM drover.sessions s, generate_series(1, $2::int) g WHERE s.id = $1
            RETURNING 1)
        UPDATE drover.sessions SET last_seq = last_seq + (SELECT count(*) FROM appended) WHERE id = $1
        """

    /// Requests per second over `clients` keep-alive connections, each sending its next request
    /// (`request(index)`: the bytes) when the answer to the last one is whole. The connections are
    /// one event loop, as the server is (until 2026-12-04 they were a thread each, and on 2 cores
    /// the load generator's own scheduling capped the rate well below the server's: 3,000–3,600
    /// retrieves/s against 4,437 from a single-threaded epoll client).
    static func throughput(_ address: String, clients: Int, seconds: Double, _ request: @escaping @Sendable (Int) -> [UInt8]) async throws -> Double {
        let loop = try EventLoop(name: "bench.requests")
        loop.start()
        let connections = try (0..<clients).map { _ in try HTTPConnection.connect(address) }
        final class Tally: Sendable {
            let answered = Mutex(0)
            let failed = Mutex(0)
            let done = Mutex(0)
        }
        let tally = Tally()
        let end = DispatchTime.now().uptimeNanoseconds + UInt64(seconds * 1e9)
        for (index, connection) in connections.enumerated() {
            let fd = connection.socket.fd
            let bytes = request(index)
            final class Reader: @unchecked Sendable {
                var pending: [UInt8] = []
                var buffer = [UInt8](repeating: 0, count: 65_536)
            }
            let reader = Reader()
            loop.execute {
                _ = drover_set_nonblocking(fd)
                func finish() {
                    loop.unregister(fd)
                    tally.done.withLock { $0 += 1 }
                }
                loop.register(fd, [.readable, .peerClosed]) { _ in
                    while true {
                        let count = reader.buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
                        guard count > 0 else {
                            if count == 0 || (errno != EAGAIN && errno != EINTR) {
                                tally.failed.withLock { $0 += 1 }
                                finish()
                            }
                            return
                        }
                        reader.pending += reader.buffer[0..<count]
                        // Whole answers: a head, then content-length bytes.
                        while let head = HTTPRequestParser.find([13, 10, 13, 10], in: reader.pending[...]) {
                            // drover api spells the header in lower case; the load generator must stay cheap.
                            let length = HTTPRequestParser.find(Self.contentLength, in: reader.pending[..<head]).map { at in
                                reader.pending[(at + Self.contentLength.count)..<head].prefix { $0 != 13 }
                                    .reduce(0) { $1 >= 48 && $1 <= 57 ? $0 * 10 + Int($1 - 48) : $0 }
                            } ?? 0
                            guard reader.pending.count >= head + 4 + length else { break }
                            let ok = reader.pending.starts(with: Self.ok200)
                            reader.pending.removeFirst(head + 4 + length)
                            if ok { tally.answered.withLock { $0 += 1 } } else { tally.failed.withLock { $0 += 1 } }
                            guard DispatchTime.now().uptimeNanoseconds < end else { return finish() }
                            let sent = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                            guard sent == bytes.count else {
                                tally.failed.withLock { $0 += 1 }
                                return finish()
                            }
                        }
                    }
                }
                // The first request (a request this small goes out whole on an idle socket).
                _ = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            }
        }
        while tally.done.withLock({ $0 }) < clients { try await Task.sleep(for: .milliseconds(10)) }
        await loop.stop()
        connections.forEach { $0.close() }
        guard tally.failed.withLock({ $0 }) == 0 else { throw DroverError(.invalidArgument, "requests failed during the run") }
        return Double(tally.answered.withLock { $0 }) / seconds
    }

    /// Who writes the probe events: a user (`send_event`), a lease holder one by one
    /// (`append_event`, which notifies no one: streams find it on the poller's round, as they
    /// found a harness's events before harnesses notified by default), or a harness's group
    /// commit (one notification after each commit).
    enum Writer: String {
        case user
        case agent
        case harness
    }

    static let probeMarker = Array("\"text\": \"probe-".utf8)
    static let contentLength = Array("\r\ncontent-length:".utf8)
    static let ok200 = Array("HTTP/1.1 200 ".utf8)

    /// The streams' connections, which their event loop stops watching before they close (their
    /// numbers may be reused).
    final class OpenStreams: Sendable {
        let connections = Mutex<[HTTPConnection]>([])

        /// Unregisters and closes every stream on the loop's own thread, then ends the loop.
        func close(on loop: EventLoop) async {
            let all = connections.withLock { $0 }
            loop.execute {
                for connection in all {
                    loop.unregister(connection.socket.fd)
                    connection.close()
                }
            }
            await loop.stop()
        }
    }

    /// Commit → receipt, for every stream and event. The readers are one event loop, as the server
    /// is: a thread per stream on the client would make the load generator's scheduling the
    /// measurement (1,000 threads on 2 cores).
    static func streamLatency(
        _ address: String, key: String, session: String, streams: Int, samples: Int, writer: Writer, sql: ConnectionPool
    ) async throws -> Latencies {
        let loop = try EventLoop(name: "bench.streams")
        loop.start()
        let open = OpenStreams()
        do {
            let latencies = try await streamLatency(
                address, key: key, session: session, streams: streams, samples: samples, writer: writer, sql: sql, loop: loop, open: open)
            await open.close(on: loop)
            return latencies
        } catch {
            await open.close(on: loop)
            throw error
        }
    }

    private static func streamLatency(
        _ address: String, key: String, session: String, streams: Int, samples: Int, writer: Writer, sql: ConnectionPool,
        loop: EventLoop, open: OpenStreams
    ) async throws -> Latencies {
        final class Receipts: Sendable {
            /// Per event text: the times streams received it.
            let times = Mutex<[String: [UInt64]]>([:])
            let opened = Mutex(0)
            let refused = Mutex(0)
        }
        let receipts = Receipts()
        for _ in 0..<streams {
            let connection = try HTTPConnection.connect(address, timeout: 60)
            try connection.send("GET /v1/sessions/\(session)/events/stream HTTP/1.1\r\nhost: drover\r\nx-api-key: \(key)\r\n\r\n")
            open.connections.withLock { $0.append(connection) }
            final class Reader: @unchecked Sendable {
                var pending: [UInt8] = []
                var headSeen = false
            }
            let reader = Reader()
            let fd = connection.socket.fd
            loop.execute {
                _ = drover_set_nonblocking(fd)
                loop.register(fd, [.readable, .peerClosed]) { _ in
                    var buffer = [UInt8](repeating: 0, count: 65_536)
                    while true {
                        let count = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
                        guard count > 0 else {
                            if count == 0 || (errno != EAGAIN && errno != EINTR) { loop.unregister(fd) }
                            return
                        }
                        let now = DispatchTime.now().uptimeNanoseconds
                        reader.pending += buffer[0..<count]
                        if !reader.headSeen, let end = HTTPRequestParser.find([13, 10, 13, 10], in: reader.pending[...]) {
                            // A refused stream (503 past a connection cap) must not pass for an open one.
                            let statusLine = String(decoding: reader.pending.prefix { $0 != 13 }, as: UTF8.self)
                            reader.pending.removeFirst(end + 4)
                            reader.headSeen = true
                            receipts.opened.withLock { $0 += 1 }
                            if !statusLine.contains(" 200 ") { receipts.refused.withLock { $0 += 1 } }
                        }
                        guard reader.headSeen else { continue }
                        var consumed = 0
                        while let end = HTTPRequestParser.find([10, 10], in: reader.pending[consumed...]) {
                            if let at = HTTPRequestParser.find(Self.probeMarker, in: reader.pending[consumed..<end]) {
                                let label = String(decoding: reader.pending[(at + Self.probeMarker.count)..<end].prefix { $0 != 34 }, as: UTF8.self)
                                receipts.times.withLock { $0[label, default: []].append(now) }
                            }
                            consumed = end + 2
                        }
                        reader.pending.removeFirst(consumed)
                    }
                }
            }
        }
        while receipts.opened.withLock({ $0 }) < streams { try await Task.sleep(for: .milliseconds(10)) }
        let refused = receipts.refused.withLock { $0 }
        guard refused == 0 else { throw DroverError(.invalidArgument, "\(refused) of \(streams) streams were refused") }
        try await Task.sleep(for: .milliseconds(200))
        var epoch: Int64 = 0
        if writer != .user {
            // A lease to write under: a message queues the session, the claim takes it.
            _ = try await sql.query("SELECT seq FROM drover.send_event($1, 'user.message', '{\"content\":[]}')", [session])
            // (The throughput runs left other sessions queued: claim them all, keep this one's lease.)
            epoch = try await sql.query("SELECT lease_epoch FROM drover.claim('bench', 1000, 600000) WHERE session_id = $1", [session])[0].decode(0)
            try await Task.sleep(for: .milliseconds(100))
        }
        var committed: [String: UInt64] = [:]
        let committer = GroupCommitter(pool: sql)
        for index in 0..<samples {
            let label = String(index)
            let payload = #"{"content":[{"type":"text","text":"probe-\#(label)"}]}"#
            switch writer {
            case .user: _ = try await sql.query("SELECT seq FROM drover.send_event($1, 'user.message', $2)", [session, payload])
            case .agent: _ = try await sql.query("SELECT seq FROM drover.append_event($1, 'bench', $2, 'agent.message', $3)", [session, epoch, payload])
            case .harness:
                let lease = Lease(sessionID: SessionID(rawValue: session), owner: HarnessID(rawValue: "bench"), epoch: epoch, expiresAt: Date(), lastSeq: 0)
                try await committer.append(lease, type: .agentMessage, payload: payload)
            }
            committed[label] = DispatchTime.now().uptimeNanoseconds
            try await Task.sleep(for: .milliseconds(5))
        }
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline && receipts.times.withLock({ $0.values.reduce(0) { $0 + $1.count } }) < samples * streams {
            try await Task.sleep(for: .milliseconds(20))
        }
        var latencies = Latencies()
        for (label, times) in receipts.times.withLock({ $0 }) {
            guard let sent = committed[label] else { continue }
            for time in times { latencies.record(Double(Int64(time) - Int64(sent)) / 1e9) }
        }
        guard latencies.samples.count == samples * streams else {
            throw DroverError(.invalidArgument, "streams received \(latencies.samples.count) of \(samples * streams) events")
        }
        return latencies
    }
}
