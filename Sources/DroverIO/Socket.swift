import DroverCore
import CDroverSys
import Foundation
import Synchronization

/// A connected TCP socket: blocking reads on the owner's thread, whole-line writes from any thread
/// (serialised, looping on partial writes, `MSG_NOSIGNAL` so a closed peer is an error, not SIGPIPE).
public final class Socket: Sendable {
    public let fd: Int32
    private let writeLock = Mutex(false)
    /// Whether the descriptor was closed, for `shutdown`, which must not wait for a blocked send.
    private let released = Mutex(false)

    public init(fd: Int32) {
        self.fd = fd
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    /// Connects to `host:port` (IPv4 dotted quad or "localhost"), from the local address `source`
    /// when one is given (load generators and tests play several clients from loopback addresses).
    public static func connect(host: String, port: UInt16, from source: String? = nil) throws -> Socket {
        let fd = try retryingEINTR("socket") { socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
        if let source {
            var local = try SocketAddress.ipv4(host: source, port: 0)
            let bound = withUnsafePointer(to: &local) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard bound == 0 else {
                let error = SystemError(errno: errno, call: "bind \(source)")
                Glibc.close(fd)
                throw error
            }
        }
        var address = try SocketAddress.ipv4(host: host, port: port)
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else {
            let error = SystemError(errno: errno, call: "connect \(host):\(port)")
            Glibc.close(fd)
            throw error
        }
        return Socket(fd: fd)
    }

    /// Connects to exactly `address` (one the `AddressRule` passed), waiting at most `timeout`
    /// seconds; the socket is blocking once connected.
    public static func connect(to address: IPAddress, port: Int, timeout: Double) throws -> Socket {
        var (storage, length) = SocketAddress.ip(address, port: port)
        let family = address.isV4 ? AF_INET : AF_INET6
        let fd = try retryingEINTR("socket") {
            socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        }
        let started = withUnsafePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, length) } }
        if started != 0 {
            guard errno == EINPROGRESS else {
                let error = SystemError(errno: errno, call: "connect \(address):\(port)")
                Glibc.close(fd)
                throw error
            }
            var entry = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            let ready = poll(&entry, 1, Int32(timeout * 1000))
            var failure: Int32 = 0
            var size = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &failure, &size)
            guard ready == 1, failure == 0 else {
                Glibc.close(fd)
                throw SystemError(errno: ready == 1 ? failure : ETIMEDOUT, call: "connect \(address):\(port)")
            }
        }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
        return Socket(fd: fd)
    }

    /// The peer's address without its port (`127.0.0.1`, `::1`), or `?`.
    public var peerAddress: String {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let ok = withUnsafeMutablePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fd, $0, &length) } } == 0
        guard ok else { return "?" }
        return withUnsafePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { IPAddress(sockaddr: $0) } }?.description ?? "?"
    }

    /// Turns TCP keepalive on: a peer that vanished (a partition, a dead host) is noticed after
    /// `idle` seconds of silence plus `count` unanswered probes `interval` seconds apart.
    public func enableKeepalive(idle: Int32 = 10, interval: Int32 = 5, count: Int32 = 3) {
        var on: Int32 = 1
        var (idle, interval, count) = (idle, interval, count)
        setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, socklen_t(MemoryLayout<Int32>.size))
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_KEEPIDLE, &idle, socklen_t(MemoryLayout<Int32>.size))
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_KEEPINTVL, &interval, socklen_t(MemoryLayout<Int32>.size))
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_KEEPCNT, &count, socklen_t(MemoryLayout<Int32>.size))
    }

    /// Bounds each blocking `read` to `seconds` (it then throws `SystemError` with `EAGAIN`);
    /// nil waits as long as it takes.
    public func setReadTimeout(_ seconds: Double?) {
        var value = timeval(tv_sec: Int(seconds ?? 0), tv_usec: Int(((seconds ?? 0) - Double(Int(seconds ?? 0))) * 1e6))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &value, socklen_t(MemoryLayout<timeval>.size))
    }

    /// Bounds how long a send may block on a peer that does not read (nil: forever); past it the
    /// send fails, so a stuck client costs its own connection only.
    public func setSendTimeout(_ seconds: Double?) {
        var value = timeval(tv_sec: Int(seconds ?? 0), tv_usec: Int(((seconds ?? 0) - Double(Int(seconds ?? 0))) * 1e6))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &value, socklen_t(MemoryLayout<timeval>.size))
    }

    /// Sets the kernel's send buffer (SO_SNDBUF) for this socket.
    public func setSendBuffer(_ bytes: Int) {
        var value = Int32(bytes)
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &value, socklen_t(MemoryLayout<Int32>.size))
    }

    /// Sets the kernel's receive buffer (SO_RCVBUF) for this socket.
    public func setReceiveBuffer(_ bytes: Int) {
        var value = Int32(bytes)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &value, socklen_t(MemoryLayout<Int32>.size))
    }

    /// What a read under a read timeout (`setReadTimeout`) gave.
    public enum Received: Sendable, Equatable {
        case bytes(Int)
        /// The timeout passed with nothing to read: the caller checks its deadlines and reads again.
        case timedOut
        /// End of stream, or the connection failed.
        case closed
    }

    /// Reads what is available, telling a read timeout apart from the end of the connection.
    public func receive(into buffer: inout [UInt8]) -> Received {
        do {
            let count = try read(into: &buffer)
            return count > 0 ? .bytes(count) : .closed
        } catch let error as SystemError where error.errno == EAGAIN || error.errno == EWOULDBLOCK {
            return .timedOut
        } catch {
            return .closed
        }
    }

    /// Reads what is available (blocking); 0 at end of stream.
    public func read(into buffer: inout [UInt8]) throws -> Int {
        try buffer.withUnsafeMutableBytes { raw in
            try retryingEINTR("read") { Glibc.read(fd, raw.baseAddress, raw.count) }
        }
    }

    /// Writes raw bytes, whole.
    public func send(bytes: [UInt8]) throws {
        try writeLock.withLock { closed in
            guard !closed else { throw SystemError(errno: EPIPE, call: "send") }
            var sent = 0
            while sent < bytes.count {
                let count = bytes[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                if count < 0 && errno == EINTR { continue }
                guard count > 0 else { throw SystemError(errno: errno, call: "send") }
                sent += count
            }
        }
    }

    /// Writes `line` and a newline, whole, even when other threads write too.
    public func send(line: String) throws {
        var bytes = Array(line.utf8)
        bytes.append(UInt8(ascii: "\n"))
        try send(bytes: bytes)
    }

    /// After an answer that refuses a request the client may still be sending (413, 431, 400):
    /// ends our side, then reads and drops what still arrives for up to `seconds` or `limit`
    /// bytes, so that closing with unread data does not make the kernel reset the connection
    /// (a reset can reach the client before the answer, which it then never sees).
    public func lingeringClose(seconds: Double = 2, limit: Int = 1 << 20) {
        Glibc.shutdown(fd, Int32(SHUT_WR))
        setReadTimeout(0.25)
        var buffer = [UInt8](repeating: 0, count: 65_536)
        var dropped = 0
        let end = ContinuousClock.now + .seconds(seconds)
        while dropped < limit && ContinuousClock.now < end {
            switch receive(into: &buffer) {
            case .bytes(let count): dropped += count
            case .timedOut: continue
            case .closed: return
            }
        }
    }

    /// Ends both directions; a blocked reader wakes with end of stream.
    /// Ends the connection both ways (a reader wakes with end of stream). A no-op once closed:
    /// the descriptor's number may by then belong to another connection of this process, which a
    /// late shutdown would cut (seen: a test's Postgres connection, another pool client).
    public func shutdown() {
        released.withLock { closed in
            guard !closed else { return }
            Glibc.shutdown(fd, Int32(SHUT_RDWR))
        }
    }

    public func close() {
        writeLock.withLock { closed in
            guard !closed else { return }
            closed = true
            released.withLock { released in
                released = true
                Glibc.close(fd)
            }
        }
    }
}

extension Socket {
    /// Reads what a non-blocking socket has now, handing each chunk to `received` while `more()`
    /// holds (an event loop's connections: `HTTPServer`, the pool's server). False when the
    /// connection ended (end of stream, or it failed): the caller closes it; true when the socket
    /// is dry for now, or `more()` stopped the reading.
    public func readAvailable(while more: () -> Bool, _ received: (ArraySlice<UInt8>) -> Void) -> Bool {
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while more() {
            let count = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if count > 0 {
                received(buffer[0..<count])
            } else if count == 0 {
                return false
            } else if errno != EINTR {
                return errno == EAGAIN || errno == EWOULDBLOCK
            }
        }
        return true
    }
}

/// A listening TCP socket.
public final class Listener: Sendable {
    public let fd: Int32
    private enum State { case open, shutDown, closed }
    private let state = Mutex(State.open)
    /// The bound address, with the real port when 0 was asked for.
    public let host: String
    public let port: UInt16

    public init(host: String, port: UInt16) throws {
        let fd = try retryingEINTR("socket") { socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = try SocketAddress.ipv4(host: host, port: port)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 256) == 0 else {
            let error = SystemError(errno: errno, call: "bind/listen \(host):\(port)")
            Glibc.close(fd)
            throw error
        }
        var actual = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &actual) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        self.fd = fd
        self.host = host
        self.port = UInt16(bigEndian: actual.sin_port)
    }

    /// Takes over a listening socket made elsewhere (a sandbox's, in its own network namespace).
    public init(adopting fd: Int32, host: String, port: UInt16) {
        self.fd = fd
        self.host = host
        self.port = port
    }

    /// Blocks until a connection arrives; nil once the listener is shut down.
    public func accept() -> Socket? {
        while true {
            let client = drover_accept_cloexec(fd)
            if client >= 0 { return Socket(fd: client) }
            if errno == EINTR || errno == ECONNABORTED || errno == EMFILE || errno == ENFILE {
                if errno == EMFILE || errno == ENFILE { usleep(10_000) }
                continue
            }
            return nil
        }
    }

    /// Stops accepting: a thread blocked in `accept` returns nil. The descriptor stays open until
    /// `close` (the accepting thread's, once it has left `accept`): closing it here let a thread
    /// still about to call `accept4` accept on whatever listener next got the number, serving a
    /// new sandbox under an old one's policy and tokens. Safe to call more than once.
    public func shutdown() {
        self.state.withLock { state in
            guard state == .open else { return }
            state = .shutDown
            Glibc.shutdown(fd, Int32(SHUT_RDWR))
        }
    }

    /// Releases the descriptor, once; only when no thread can still be in `accept` on it.
    public func close() {
        self.state.withLock { state in
            guard state != .closed else { return }
            if state == .open { Glibc.shutdown(fd, Int32(SHUT_RDWR)) }
            state = .closed
            Glibc.close(fd)
        }
    }

    deinit { close() }
}

enum SocketAddress {
    /// `address:port` as the `sockaddr_in` or `sockaddr_in6` it is, in a `sockaddr_storage`.
    static func ip(_ address: IPAddress, port: Int) -> (sockaddr_storage, socklen_t) {
        func stored<T>(_ value: T) -> (sockaddr_storage, socklen_t) {
            var storage = sockaddr_storage()
            withUnsafeMutableBytes(of: &storage) { raw in withUnsafeBytes(of: value) { raw.copyMemory(from: $0) } }
            return (storage, socklen_t(MemoryLayout<T>.size))
        }
        if address.isV4 {
            var inet = sockaddr_in()
            inet.sin_family = sa_family_t(AF_INET)
            inet.sin_port = UInt16(port).bigEndian
            withUnsafeMutableBytes(of: &inet.sin_addr) { $0.copyBytes(from: address.bytes) }
            return stored(inet)
        }
        var inet = sockaddr_in6()
        inet.sin6_family = sa_family_t(AF_INET6)
        inet.sin6_port = UInt16(port).bigEndian
        withUnsafeMutableBytes(of: &inet.sin6_addr) { $0.copyBytes(from: address.bytes) }
        return stored(inet)
    }

    static func ipv4(host: String, port: UInt16) throws -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        let literal = host == "localhost" ? "127.0.0.1" : host
        guard inet_pton(AF_INET, literal, &address.sin_addr) == 1 else {
            throw SystemError(errno: EINVAL, call: "address \(host) (an IPv4 address is expected)")
        }
        return address
    }
}

/// Splits `host:port`.
public func parseHostPort(_ text: String) -> (host: String, port: UInt16)? {
    guard let colon = text.lastIndex(of: ":"), let port = UInt16(text[text.index(after: colon)...]) else { return nil }
    return (String(text[..<colon]), port)
}

extension Socket {
    /// Connects to `host:port` without blocking a thread: the connect goes on in the kernel while
    /// `loop` waits for the socket to become writable, for at most `timeout`. The socket is left
    /// non-blocking, for the loop that serves it.
    public static func connect(host: String, port: UInt16, on loop: EventLoop, timeout: Duration) async throws -> Socket {
        var address = try SocketAddress.ipv4(host: host, port: port)
        let fd = try retryingEINTR("socket") { socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
        _ = drover_set_nonblocking(fd)
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if result == 0 { return Socket(fd: fd) }
        guard errno == EINPROGRESS else {
            let error = SystemError(errno: errno, call: "connect \(host):\(port)")
            Glibc.close(fd)
            throw error
        }
        // Loop-confined: whether the attempt has been answered (by readiness or the deadline).
        final class Attempt: @unchecked Sendable { var settled = false }
        let attempt = Attempt()
        return try await withCheckedThrowingContinuation { continuation in
            loop.execute {
                func settle(_ outcome: Result<Socket, any Error>) {
                    guard !attempt.settled else { return }
                    attempt.settled = true
                    loop.unregister(fd)
                    if case .failure = outcome { Glibc.close(fd) }
                    continuation.resume(with: outcome)
                }
                loop.register(fd, .writable) { _ in
                    var failure: Int32 = 0
                    var length = socklen_t(MemoryLayout<Int32>.size)
                    getsockopt(fd, SOL_SOCKET, SO_ERROR, &failure, &length)
                    settle(failure == 0 ? .success(Socket(fd: fd)) : .failure(SystemError(errno: failure, call: "connect \(host):\(port)")))
                }
                loop.schedule(after: timeout) { settle(.failure(SystemError(errno: ETIMEDOUT, call: "connect \(host):\(port)"))) }
            }
        }
    }
}
