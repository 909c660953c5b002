import DroverIO
import DroverTLS
import Foundation

/// One relayed connection of the egress proxy, driven by the proxy's event loop: bytes read from
/// one side wait in that direction's buffer until the other side takes them, and that side is
/// not read again until they have gone, so a peer that stops reading holds up its own direction
/// only and memory stays at one buffer per direction. A side with nothing wanted of it is out of
/// the loop's set (a fully closed socket would report hang-up at once, forever: a spinning core).
///
/// Side 0 is the sandbox's connection (plain), side 1 the upstream (plain, or TLS to a
/// repository's remote, whose reads drain what the TLS layer holds before waiting again).
/// Loop-confined.
final class EgressRelay: @unchecked Sendable {
    private let loop: EventLoop
    private let client: Socket
    private let upstream: Upstream
    /// Bytes waiting to be written to each side, and how far they have gone.
    private var toWrite: [[UInt8]] = [[], []]
    private var written = [0, 0]
    /// Each side has ended its stream (read returned end of file or failed).
    private var ended = [false, false]
    /// Each side has been told the other ended (its write half shut).
    private var shut = [false, false]
    /// What the loop watches on each side (nil: not registered).
    private var watching: [EventLoop.Events?] = [nil, nil]
    private var buffer = [UInt8](repeating: 0, count: 65_536)
    private(set) var moved = (up: 0, down: 0)
    private var finished = false
    private let done: (EgressRelay) -> Void

    /// `toClient` and `toUpstream`: what each side is sent first (the proxy's answer to a
    /// CONNECT, the rewritten request and what followed its head). `done` runs once, on the loop,
    /// when both sides have ended, either failed, or `stop` was called; both are closed by then.
    init(loop: EventLoop, client: Socket, upstream: Upstream, toClient: [UInt8], toUpstream: [UInt8], done: @escaping (EgressRelay) -> Void) {
        self.loop = loop
        self.client = client
        self.upstream = upstream
        self.done = done
        toWrite = [toClient, toUpstream]
        for fd in [client.fd, upstream.fd] { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
    }

    func start() { progress() }

    /// Ends the relay now (its call ended).
    func stop() { finish() }

    private func fd(_ side: Int) -> Int32 { side == 0 ? client.fd : upstream.fd }

    /// Moves every byte that can move now, then watches what is wanted next.
    private func progress() {
        var movedAny = true
        while movedAny && !finished {
            movedAny = false
            for side in 0..<2 where !finished {
                if flush(side) { movedAny = true }
                if read(side) { movedAny = true }
            }
        }
        guard !finished else { return }
        if ended[0] && ended[1] && toWrite[0].isEmpty && toWrite[1].isEmpty { return finish() }
        for side in 0..<2 { watch(side) }
    }

    /// Writes what waits for `side`; true when bytes went.
    private func flush(_ side: Int) -> Bool {
        guard !toWrite[side].isEmpty else { return false }
        let count: Int? = side == 0
            ? Upstream.plainWrite(client.fd, toWrite[side], offset: written[side], end: toWrite[side].count)
            : upstream.write(toWrite[side], offset: written[side], end: toWrite[side].count)
        guard let count else {
            finish()
            return false
        }
        written[side] += count
        if side == 1 { moved.up += count } else { moved.down += count }
        if written[side] == toWrite[side].count {
            toWrite[side] = []
            written[side] = 0
            shutIfEnded(side)
        }
        return count > 0
    }

    /// Reads from `side` when the other side's buffer is free; true when bytes came.
    private func read(_ side: Int) -> Bool {
        guard !ended[side], toWrite[1 - side].isEmpty else { return false }
        let result = side == 0 ? Upstream.plainRead(client.fd, into: &buffer) : upstream.read(into: &buffer)
        switch result {
        case .bytes(let count):
            toWrite[1 - side] = Array(buffer[0..<count])
            return true
        case .wouldBlock:
            return false
        case .closed:
            ended[side] = true
            shutIfEnded(1 - side)
            return false
        }
    }

    /// Once `side`'s peer has ended and everything it sent has reached `side`, `side` hears of it.
    private func shutIfEnded(_ side: Int) {
        guard ended[1 - side], toWrite[side].isEmpty, !shut[side] else { return }
        shut[side] = true
        if side == 0 { Upstream.plainShutdownWrite(client.fd) } else { upstream.shutdownWrite() }
    }

    private func watch(_ side: Int) {
        var wanted: EventLoop.Events = []
        if !ended[side] && toWrite[1 - side].isEmpty { wanted.insert(.readable) }
        if !toWrite[side].isEmpty { wanted.insert(.writable) }
        guard wanted != watching[side] else { return }
        if wanted.isEmpty {
            loop.unregister(fd(side))
            watching[side] = nil
        } else if watching[side] == nil {
            loop.register(fd(side), wanted) { [unowned self] _ in progress() }
            watching[side] = wanted
        } else {
            loop.modify(fd(side), wanted)
            watching[side] = wanted
        }
    }

    private func finish() {
        guard !finished else { return }
        finished = true
        for side in 0..<2 where watching[side] != nil { loop.unregister(fd(side)) }
        watching = [nil, nil]
        client.close()
        upstream.close()
        done(self)
    }
}
