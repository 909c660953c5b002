import DroverAPI
import DroverCore
import DroverIO
import DroverSandbox
import DroverTestSupport
import Foundation
import Synchronization
import Testing

/// The one lifecycle: services run in order and stop in reverse order, on a signal or on request;
/// several daemons share one process.
@Suite struct ServiceGroupTests {
    final class Journal: Sendable {
        let lines = Mutex<[String]>([])
        func note(_ line: String) { lines.withLock { $0.append(line) } }
    }

    struct Recorder: Service {
        let name: String
        let journal: Journal
        var fails = false

        func run(until stop: ShutdownTrigger) async throws -> Int32 {
            journal.note("start \(name)")
            if fails { throw DroverError(.invalidArgument, "\(name) failed") }
            _ = await stop.wait()
            journal.note("stop \(name)")
            return 0
        }
    }

    @Test func servicesStopInReverseOrderAndOneFailureStopsTheRest() async throws {
        let journal = Journal()
        let log = Log(component: "test", minimum: .error)
        let group = ServiceGroup([Recorder(name: "db", journal: journal), Recorder(name: "api", journal: journal)], handlesSignals: false, log: log)
        let running = Task { try await group.run() }
        while journal.lines.withLock({ $0.count }) < 2 { try? await Task.sleep(for: .milliseconds(5)) }
        group.shutdown()
        #expect(try await running.value == 0)
        #expect(journal.lines.withLock { Array($0.suffix(2)) } == ["stop api", "stop db"])

        let failing = Journal()
        let broken = ServiceGroup(
            [Recorder(name: "a", journal: failing), Recorder(name: "b", journal: failing, fails: true)], handlesSignals: false, log: log)
        await #expect(throws: DroverError.self, "a failed service fails the group") { try await broken.run() }
        #expect(failing.lines.withLock { $0.contains("stop a") }, "and stops the others")
    }

    /// A free port below the kernel's ephemeral range (32768 and up): no other test's daemon,
    /// which binds port 0, can be given it between this probe and the bind that follows (one was,
    /// once, and the test then talked to another test's pool).
    static func freePort() throws -> UInt16 {
        for _ in 0..<100 {
            let port = UInt16.random(in: 20_000..<30_000)
            if let probe = try? Listener(host: "127.0.0.1", port: port) {
                probe.shutdown()
                return port
            }
        }
        throw DroverError(.invalidArgument, "no free port between 20000 and 30000")
    }

    /// The API and a sandbox pool in this test's own process, started and stopped as one group.
    @Test func theAPIAndAPoolRunInOneProcess() async throws {
        try await TestDatabase.with { db in
            var api = APIDaemon.Config(databaseURL: db.conninfo)
            api.port = try Self.freePort()
            api.grace = 1
            api.databaseConnections = 2
            var pool = PoolDaemon.Config(token: "in-process-token")
            pool.port = try Self.freePort()
            pool.warm = 0
            pool.grace = 1
            let group = ServiceGroup([PoolDaemon(config: pool), APIDaemon(config: api)], handlesSignals: false, log: Log(component: "test"))
            let running = Task { try await group.run() }
            var client: PoolClient?
            var answered = false
            let deadline = ContinuousClock.now + .seconds(20)
            while (client == nil || !answered) && ContinuousClock.now < deadline {
                if client == nil { client = try? await PoolClient.connect("127.0.0.1:\(pool.port)", token: "in-process-token") }
                if !answered, let http = try? RawHTTP.connect("127.0.0.1:\(api.port)") {
                    try? http.send("/v1/agents".request("GET", key: "wrong"))
                    answered = (try? http.response())??.status == 401
                    http.close()
                }
                if client == nil || !answered { try await Task.sleep(for: .milliseconds(50)) }
            }
            #expect(answered, "the API answered")
            #expect(try await client?.request("ping")["pong"] == true, "the pool answered")
            // Read from /proc while the parallel suite opens and closes sockets by the hundred: a
            // snapshot can miss ours, so a few reads (CI-like runs missed it once in a few).
            var listening = false
            for _ in 0..<20 where !listening {
                listening = Self.listens(onPort: Int(api.port)) && Self.listens(onPort: Int(pool.port))
                if !listening { try await Task.sleep(for: .milliseconds(100)) }
            }
            #expect(listening, "this process listens while they run")
            client?.close()
            group.shutdown()
            #expect(try await running.value == 0)
            // Whether this process still listens on the ports: a connect could reach another test's
            // daemon that was given the freed port meanwhile (CI saw that once).
            #expect(!Self.listens(onPort: Int(api.port)), "the API stopped listening")
            #expect(!Self.listens(onPort: Int(pool.port)), "the pool stopped")
        }
    }

    /// Whether a socket of this process listens on `port` (IPv4 or IPv6): the listening sockets in
    /// /proc/net/tcp{,6} whose inode is one of this process's descriptors.
    static func listens(onPort port: Int) -> Bool {
        let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        let ours = Set(fds.compactMap { try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/" + $0) }
            .filter { $0.hasPrefix("socket:[") }.map { String($0.dropFirst(8).dropLast()) })
        let hexPort = String(format: "%04X", port)
        for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
            let lines = ((try? String(contentsOfFile: table, encoding: .utf8)) ?? "").split(separator: "\n").dropFirst()
            for line in lines {
                let fields = line.split(separator: " ")
                guard fields.count > 9, fields[1].hasSuffix(":" + hexPort), fields[3] == "0A" else { continue }
                if ours.contains(String(fields[9])) { return true }
            }
        }
        return false
    }
}
