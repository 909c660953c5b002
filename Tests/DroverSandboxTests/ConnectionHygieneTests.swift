import DroverCore
import DroverIO
import DroverSandbox
import DroverTestSupport
import Foundation
import Testing

/// Connections that never authenticate cannot hold the daemon's threads, and there is a cap.
@Suite(.serialized) struct ConnectionHygieneTests {
    /// Everything the server sends until it closes the connection, and when it closed it.
    static func readUntilClosed(_ socket: Socket) async throws -> (text: String, closedAfter: Duration) {
        let started = ContinuousClock.now
        let bytes = try await onOwnThread("test.read") { () -> [UInt8] in
            var all: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 4096)
            while let count = try? socket.read(into: &buffer), count > 0 { all += buffer[0..<count] }
            return all
        }
        return (String(decoding: bytes, as: UTF8.self), ContinuousClock.now - started)
    }

    @Test func silentAndDrippingConnectionsAreClosedAtTheHelloDeadlineAndAuthenticatedOnesStay() async throws {
        let pool = try await RunningPool.start(["--hello-deadline", "1"])
        let (host, port) = try #require(parseHostPort(pool.address))
        let silent = try Socket.connect(host: host, port: port)
        let drip = try Socket.connect(host: host, port: port)
        let client = try await pool.client()
        // A byte every 300 ms: never a whole line, never a hello.
        let dripping = Task {
            for _ in 0..<20 {
                guard (try? drip.send(bytes: [UInt8(ascii: "{")])) != nil else { return }
                try? await Task.sleep(for: .milliseconds(300))
            }
        }
        async let silentEnd = Self.readUntilClosed(silent)
        async let dripEnd = Self.readUntilClosed(drip)
        let (silentResult, dripResult) = try await (silentEnd, dripEnd)
        dripping.cancel()
        for result in [silentResult, dripResult] {
            #expect(result.closedAfter < .seconds(4), "closed after \(result.closedAfter)")
            #expect(result.text.contains("unauthorized") && result.text.contains("no successful hello"))
        }
        // The authenticated client, idle for longer than the deadline, is still served.
        try await Task.sleep(for: .milliseconds(500))
        #expect(try await client.request("ping")["pong"]?.boolValue == true)
        client.close()
        silent.close()
        drip.close()
        #expect(await pool.stop() == 0)
    }

    @Test func connectionsBeyondTheCapAreRefusedWithACode() async throws {
        let pool = try await RunningPool.start(["--max-connections", "2"])
        let (host, port) = try #require(parseHostPort(pool.address))
        let first = try await pool.client()
        let second = try await pool.client()
        let third = try Socket.connect(host: host, port: port)
        let refused = try await Self.readUntilClosed(third)
        #expect(refused.text.contains("too_many_connections"))
        #expect(try await first.request("ping")["pong"]?.boolValue == true)
        second.close()
        // A freed place is taken again.
        try await Task.sleep(for: .milliseconds(200))
        let again = try await pool.client()
        #expect(try await again.request("ping")["pong"]?.boolValue == true)
        first.close()
        again.close()
        third.close()
        #expect(await pool.stop() == 0)
    }

    /// The pool's door: 300 connections that never say hello (more than --max-connections)
    /// used to keep every harness out until the hello deadline cut them. Unauthenticated
    /// connections have a budget of their own, the oldest closed past it, so a harness that
    /// arrives during the flood is answered, with the deadline far away.
    @Test func aFloodOfSilentConnectionsNeverKeepsAHarnessOut() async throws {
        let pool = try await RunningPool.start(["--hello-deadline", "60", "--max-unauthenticated", "16"])
        let (host, port) = try #require(parseHostPort(pool.address))
        var silent: [Socket] = []
        defer { silent.forEach { $0.close() } }
        for _ in 0..<300 { silent.append(try Socket.connect(host: host, port: port)) }
        let client = try await pool.client()
        #expect(try await client.request("ping")["pong"]?.boolValue == true)
        // The first of the flood was told why it was closed.
        let evicted = try await Self.readUntilClosed(silent[0])
        #expect(evicted.text.contains("unauthorized") && evicted.text.contains("waiting to authenticate"), "\(evicted.text)")
        client.close()
        #expect(await pool.stop() == 0)
    }
}
