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

/// Listens on channels with a dedicated connection on the process's shared event loop (`EventLoop.shared()`),
/// never a thread of its own. Reconnects with backoff.
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
    /// Sees each notification first, on the loop; one it takes (true) neither rings nor reaches
    /// `notifications`. Notifications of one connection arrive in commit order, so what it takes
    /// is handled before anything committed after it wakes a waiter.
    private let intercept: (@Sendable (PostgresNotification) -> Bool)?

    private struct State {
        var stopped = false
        var connection: PostgresConnection?
    }
    private let state = Mutex(State())
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
        Task { [self] in await run() }
    }

    /// Whether the listener holds a live connection with its LISTENs in place.
    public var isConnected: Bool { connected.withLock { $0 } }

    /// Closes the connection and finishes the stream.
    public func stop() {
        state.withLock { state in
            state.stopped = true
            return state.connection
        }?.close()
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

    /// Connects, listens, waits for the connection to end, and again, until stopped.
    private func run() async {
        var backoff = Backoff()
        defer { continuation.finish() }
        while !state.withLock({ $0.stopped }) {
            guard let connection = await openAndListen() else {
                try? await Task.sleep(for: .seconds(backoff.next()))
                continue
            }
            backoff.reset()
            connected.withLock { $0 = true }
            ring(PostgresNotification(channel: "", payload: "", isReconnect: true))
            await connection.waitUntilClosed()
            connected.withLock { $0 = false }
            if state.withLock({ $0.stopped }) { break }
            ring(PostgresNotification(channel: "", payload: "", isDisconnect: true))
        }
    }

    private func openAndListen() async -> PostgresConnection? {
        guard let connection = try? await PostgresConnection.connect(conninfo) else { return nil }
        let kept = state.withLock { state -> Bool in
            guard !state.stopped else { return false }
            state.connection = connection
            return true
        }
        guard kept else {
            connection.close()
            return nil
        }
        await connection.listen { [self] in ring($0) }
        do {
            for statement in channels.map({ "LISTEN \($0)" }) + onConnect { try await connection.execute(script: statement) }
        } catch {
            connection.close()
            return nil
        }
        return connection
    }
}
