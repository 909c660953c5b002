import CLibPQ
import DroverCore
import Foundation
import Synchronization

/// A notification from `LISTEN`, or a marker: after the listener (re)connected (notifications
/// sent while it was away are lost, so consumers should look for work at once), or when its
/// connection was lost (with it, anything the connection held, such as a session-level lock).
public struct PostgresNotification: Sendable, Equatable {
    public var channel: String
    public var payload: String
    /// True for the synthetic marker sent after each (re)connect.
    public var isReconnect: Bool
    /// True for the synthetic marker sent when a live connection was lost.
    public var isDisconnect: Bool

    public init(channel: String, payload: String, isReconnect: Bool = false, isDisconnect: Bool = false) {
        self.channel = channel
        self.payload = payload
        self.isReconnect = isReconnect
        self.isDisconnect = isDisconnect
    }
}

/// Listens on channels with a dedicated connection and a dedicated thread that waits in `poll()`
/// on the connection's socket, never on Swift's cooperative pool. Reconnects with backoff.
///
/// Consumers either iterate `notifications` or call `wait(timeout:)`, a doorbell that returns when
/// anything arrived since the previous call or when the timeout passes.
public final class PostgresListener: Sendable {
    public let notifications: AsyncStream<PostgresNotification>
    private let continuation: AsyncStream<PostgresNotification>.Continuation
    private let conninfo: String
    private let channels: [String]
    /// Statements run after every (re)connect, before the listener counts as connected.
    private let onConnect: [String]
    /// Sees each notification first, on the listener's thread; one it takes (true) neither rings
    /// nor reaches `notifications`. Notifications of one connection arrive in commit order, so
    /// what it takes is handled before anything committed after it wakes a waiter.
    private let intercept: (@Sendable (PostgresNotification) -> Bool)?

    private let stopped = Mutex(false)
    private let doorbell = Doorbell()
    private let connected = Mutex(false)

    /// Channel names must be plain identifiers; they are spliced into `LISTEN`, which takes no
    /// parameters. `onConnect` statements (no parameters) run after every (re)connect: a harness
    /// takes its liveness lock there, so that the lock lives exactly as long as this connection.
    public init(conninfo: String, channels: [String], onConnect: [String] = [], intercept: (@Sendable (PostgresNotification) -> Bool)? = nil) throws {
        for channel in channels where !Self.isPlainIdentifier(channel) {
            throw PostgresError(.server, message: "channel name must match [a-z_][a-z0-9_]*")
        }
        self.conninfo = conninfo
        self.channels = channels
        self.onConnect = onConnect
        self.intercept = intercept
        (notifications, continuation) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1024))
        let thread = Thread { [self] in self.run() }
        thread.name = "drover.listen"
        thread.start()
    }

    /// Whether the listener holds a live connection with its LISTENs in place.
    public var isConnected: Bool { connected.withLock { $0 } }

    /// Stops the thread and finishes the stream.
    public func stop() {
        stopped.withLock { $0 = true }
    }

    /// Waits until a notification (or a reconnect) arrives, `timeout` seconds pass, or the
    /// calling task is cancelled. Returns true when woken by a notification.
    public func wait(timeout: Double) async -> Bool {
        await doorbell.wait(timeout: timeout)
    }

    private func ring(_ notification: PostgresNotification) {
        if let intercept, intercept(notification) { return }
        continuation.yield(notification)
        doorbell.ring()
    }

    private static func isPlainIdentifier(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, first == "_" || ("a"..."z").contains(first) else { return false }
        return name.unicodeScalars.allSatisfy { $0 == "_" || ("a"..."z").contains($0) || ("0"..."9").contains($0) }
    }

    // MARK: - The listener thread

    private func run() {
        var backoff = Backoff()
        var conn: OpaquePointer?
        defer {
            if let conn { PQfinish(conn) }
            connected.withLock { $0 = false }
            continuation.finish()
        }
        while !stopped.withLock({ $0 }) {
            guard let live = conn else {
                conn = openAndListen()
                if conn == nil {
                    Thread.sleep(forTimeInterval: backoff.next())
                } else {
                    backoff.reset()
                    connected.withLock { $0 = true }
                    ring(PostgresNotification(channel: "", payload: "", isReconnect: true))
                }
                continue
            }
            var pollfd = pollfd(fd: PQsocket(live), events: Int16(POLLIN), revents: 0)
            let ready = poll(&pollfd, 1, 200)
            if ready < 0 && errno != EINTR { dropConnection(&conn); continue }
            if ready > 0 {
                if PQconsumeInput(live) == 0 { dropConnection(&conn); continue }
                while let notify = PQnotifies(live) {
                    let channel = String(cString: notify.pointee.relname)
                    let payload = String(cString: notify.pointee.extra)
                    PQfreemem(notify)
                    ring(PostgresNotification(channel: channel, payload: payload))
                }
            }
            if PQstatus(live) != CONNECTION_OK { dropConnection(&conn) }
        }
    }

    private func dropConnection(_ conn: inout OpaquePointer?) {
        if let live = conn { PQfinish(live) }
        conn = nil
        connected.withLock { $0 = false }
        ring(PostgresNotification(channel: "", payload: "", isDisconnect: true))
    }

    private func openAndListen() -> OpaquePointer? {
        guard let conn = PQconnectdb(conninfo) else { return nil }
        guard PQstatus(conn) == CONNECTION_OK else {
            PQfinish(conn)
            return nil
        }
        PQsetNoticeProcessor(conn, { _, _ in }, nil)
        for statement in channels.map({ "LISTEN \($0)" }) + onConnect {
            guard let result = PQexec(conn, statement) else {
                PQfinish(conn)
                return nil
            }
            let ok = PQresultStatus(result) == PGRES_COMMAND_OK || PQresultStatus(result) == PGRES_TUPLES_OK
            PQclear(result)
            if !ok {
                PQfinish(conn)
                return nil
            }
        }
        return conn
    }
}
