import DroverIO
import Foundation
import Synchronization
import Testing

@testable import DroverSandbox

/// Issue #27 (2, 8): the egress relay over real sockets (socketpairs standing in for the sandbox's
/// connection and the upstream's). It relayed over blocking sockets, so a peer that stopped
/// reading deadlocked the other direction; after a full close POLLHUP spun a core; and relays
/// outlived their call, polling forever. It now runs on the proxy's event loop.
@Suite struct EgressRelayTests {
    /// A relay on an event loop of its own, as the proxy runs it.
    final class Relay: Sendable {
        let finished = Atomic<Bool>(false)
        /// CPU seconds the loop's thread used while the relay ran.
        let cpu = Mutex<Double>(0)
        let loop: EventLoop
        private let relay = Mutex<EgressRelay?>(nil)

        init(client: Int32, upstream: Int32) throws {
            loop = try EventLoop(name: "test.egress")
            loop.start()
            loop.execute { [self] in
                let started = Self.threadCPU()
                let relay = EgressRelay(loop: loop, client: Socket(fd: client), upstream: .plain(Socket(fd: upstream)), toClient: [], toUpstream: []) { _ in
                    self.cpu.withLock { $0 = Self.threadCPU() - started }
                    self.finished.store(true, ordering: .relaxed)
                }
                self.relay.withLock { $0 = relay }
                relay.start()
            }
        }

        /// The call ended.
        func stop() { loop.execute { [self] in relay.withLock { $0 }?.stop() } }

        static func threadCPU() -> Double {
            var time = timespec()
            clock_gettime(CLOCK_THREAD_CPUTIME_ID, &time)
            return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
        }

        func waitUntilFinished(_ seconds: Double) async -> Bool {
            let end = ContinuousClock.now + .seconds(seconds)
            while !finished.load(ordering: .relaxed) && ContinuousClock.now < end { try? await Task.sleep(for: .milliseconds(20)) }
            return finished.load(ordering: .relaxed)
        }
    }

    static func pair() -> (Int32, Int32) {
        var fds: [Int32] = [0, 0]
        socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds)
        return (fds[0], fds[1])
    }

    /// Reads what arrives on `fd` within `seconds`.
    static func read(_ fd: Int32, seconds: Double) -> String {
        var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&entry, 1, Int32(seconds * 1000)) == 1 else { return "" }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
        return count > 0 ? String(decoding: buffer[0..<count], as: UTF8.self) : ""
    }

    @Test func aPeerThatStopsReadingHoldsUpOnlyItsOwnDirection() async throws {
        let (sandbox, relayClient) = Self.pair()
        let (server, relayUpstream) = Self.pair()
        defer { [sandbox, server].forEach { close($0) } }
        let relay = try Relay(client: relayClient, upstream: relayUpstream)
        // The sandbox sends far more than the buffers hold to a server that never reads it.
        _ = fcntl(sandbox, F_SETFL, fcntl(sandbox, F_GETFL) | O_NONBLOCK)
        let chunk = [UInt8](repeating: 120, count: 65_536)
        for _ in 0..<256 { _ = chunk.withUnsafeBytes { send(sandbox, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) } }
        // The server's answer still reaches the sandbox.
        _ = "answer".withCString { send(server, $0, 6, Int32(MSG_NOSIGNAL)) }
        #expect(Self.read(sandbox, seconds: 5) == "answer", "the stalled direction held up the other one")
        relay.stop()
        #expect(await relay.waitUntilFinished(5))
        await relay.loop.stop()
    }

    @Test func bothEndsClosingEndTheRelayWithEveryByteDelivered() async throws {
        let (sandbox, relayClient) = Self.pair()
        let (server, relayUpstream) = Self.pair()
        defer { [sandbox, server].forEach { close($0) } }
        let relay = try Relay(client: relayClient, upstream: relayUpstream)
        _ = "request".withCString { send(sandbox, $0, 7, Int32(MSG_NOSIGNAL)) }
        shutdown(sandbox, Int32(SHUT_WR))
        // The server sees the request, then the end of it (the sandbox's half-close, passed on).
        #expect(Self.read(server, seconds: 5) == "request")
        #expect(Self.read(server, seconds: 5) == "")
        _ = "answer".withCString { send(server, $0, 6, Int32(MSG_NOSIGNAL)) }
        shutdown(server, Int32(SHUT_WR))
        #expect(Self.read(sandbox, seconds: 5) == "answer")
        #expect(await relay.waitUntilFinished(5), "both sides ended but the relay did not")
        await relay.loop.stop()
    }

    @Test func aClosedSideNeitherSpinsNorKeepsTheRelayAfterItsCall() async throws {
        let (sandbox, relayClient) = Self.pair()
        let (server, relayUpstream) = Self.pair()
        defer { close(server) }
        let relay = try Relay(client: relayClient, upstream: relayUpstream)
        // The sandbox closes both ways; the server stays open and silent.
        close(sandbox)
        try await Task.sleep(for: .milliseconds(1500))
        let finishedEarly = relay.finished.load(ordering: .relaxed)
        #expect(!finishedEarly, "the upstream may still answer")
        // The call ends: the relay ends with it.
        relay.stop()
        #expect(await relay.waitUntilFinished(3), "the relay outlived its call")
        // Waiting 1.5 s on a closed socket cost no CPU to speak of (a hang-up spin costs all of it).
        let cpu = relay.cpu.withLock { $0 }
        #expect(cpu < 0.3, "\(cpu) s of CPU")
        await relay.loop.stop()
    }
}
