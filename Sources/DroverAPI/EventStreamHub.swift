import DroverCore
import DroverPostgres
import DroverStore
import Foundation
import Synchronization

/// Feeds every event stream of one API process from one poller: each tick, one query reads the
/// last seq of every streamed session, and one read per session that moved fetches the new
/// events for all its streams. Each stream remembers the last seq it was given, so catch-up
/// (`Last-Event-ID`) and live delivery are the same path: nothing is skipped, nothing repeated.
///
/// A stream's buffer is bounded; a client that stops reading fills it and is cut off, and no
/// other stream waits for it (delivery only appends to buffers).
public final class EventStreamHub: Sendable {
    /// One open stream.
    public final class Subscriber: Sendable {
        public struct Message: Sendable {
            public var seq: Int64
            public var id: String
            public var type: String
            public var json: String
        }

        let session: String
        private struct State {
            var lastSeq: Int64
            var queue: [Message] = []
            var bytes = 0
            var overflowed = false
            var closed = false
        }
        private let state: Mutex<State>
        private let ready = DispatchSemaphore(value: 0)
        let maxBytes: Int
        /// Called once when the stream overflows: the server closes the connection at once, even
        /// while a write to the client is blocked.
        private let onOverflow = Mutex<(@Sendable () -> Void)?>(nil)

        public func whenOverflowing(_ action: @escaping @Sendable () -> Void) { onOverflow.withLock { $0 = action } }

        init(session: String, after seq: Int64, maxBytes: Int) {
            self.session = session
            self.maxBytes = maxBytes
            state = Mutex(State(lastSeq: seq))
        }

        var lastSeq: Int64 { state.withLock { $0.lastSeq } }

        /// Appends what is newer than what this stream has; overflows (and stops taking) when the
        /// client lets too much pile up.
        func deliver(_ messages: [Message]) {
            let (signal, overflowed) = state.withLock { state -> (Bool, Bool) in
                guard !state.overflowed, !state.closed else { return (false, false) }
                var added = false
                for message in messages where message.seq > state.lastSeq {
                    state.queue.append(message)
                    state.bytes += message.json.utf8.count
                    state.lastSeq = message.seq
                    added = true
                }
                if state.bytes > maxBytes {
                    state.overflowed = true
                    state.queue = []
                    state.bytes = 0
                }
                return (added || state.overflowed, state.overflowed)
            }
            if overflowed { onOverflow.withLock { $0 }?() }
            if signal { ready.signal() }
        }

        public enum Next: Sendable {
            case messages([Message])
            case idle
            case overflowed
        }

        /// Waits up to `timeout` seconds for messages (blocking: call it on the connection's own thread).
        public func next(timeout: Double) -> Next {
            let taken = state.withLock { state -> Next? in
                if state.overflowed { return .overflowed }
                guard !state.queue.isEmpty else { return nil }
                defer {
                    state.queue = []
                    state.bytes = 0
                }
                return .messages(state.queue)
            }
            if let taken { return taken }
            _ = ready.wait(timeout: .now() + timeout)
            return state.withLock { state -> Next in
                if state.overflowed { return .overflowed }
                guard !state.queue.isEmpty else { return .idle }
                defer {
                    state.queue = []
                    state.bytes = 0
                }
                return .messages(state.queue)
            }
        }

        func close() { state.withLock { $0.closed = true } }

        /// Wakes a stream waiting for events (the server is draining).
        func wake() { ready.signal() }
    }

    let store: TenantStore
    let interval: Double
    let maxBytesPerStream: Int
    let log: Log
    private let subscribers = Mutex<[ObjectIdentifier: Subscriber]>([:])

    public init(store: TenantStore, interval: Double = 0.02, maxBytesPerStream: Int = 8 << 20, log: Log) {
        self.store = store
        self.interval = interval
        self.maxBytesPerStream = maxBytesPerStream
        self.log = log
    }

    public func subscribe(session: String, after seq: Int64) -> Subscriber {
        let subscriber = Subscriber(session: session, after: seq, maxBytes: maxBytesPerStream)
        subscribers.withLock { $0[ObjectIdentifier(subscriber)] = subscriber }
        return subscriber
    }

    public func unsubscribe(_ subscriber: Subscriber) {
        subscriber.close()
        subscribers.withLock { _ = $0.removeValue(forKey: ObjectIdentifier(subscriber)) }
    }

    public var streamCount: Int { subscribers.withLock { $0.count } }

    /// Wakes every stream, so that a draining server can end them now rather than at their next ping.
    public func wakeAll() { subscribers.withLock { Array($0.values) }.forEach { $0.wake() } }

    /// Polls until cancelled: at once when `listener` rings (a user event was sent: Postgres
    /// notifies `drover_user_event` or `drover_runnable`), else every `interval` (events the
    /// harnesses write; see docs/api.md for why those send no notification).
    public func run(listener: PostgresListener?) async {
        while !Task.isCancelled {
            let started = ContinuousClock.now
            do {
                try await tick()
            } catch {
                log.warning("event stream poll failed", ("error", .string(String(reflecting: error))))
            }
            if let listener {
                _ = await listener.wait(timeout: interval)
                // A burst of notifications is read in rounds at least `minimumSpacing` apart, so
                // that streams get events in batches rather than one write per event each.
                let elapsed = ContinuousClock.now - started
                if elapsed < .seconds(Self.minimumSpacing) { try? await Task.sleep(for: .seconds(Self.minimumSpacing) - elapsed) }
            } else {
                try? await Task.sleep(for: .seconds(interval))
            }
        }
    }

    /// Seconds between two polls woken by notifications.
    static let minimumSpacing = 0.002

    func tick() async throws {
        let all = subscribers.withLock { Array($0.values) }
        guard !all.isEmpty else { return }
        let bySession = Dictionary(grouping: all, by: \.session)
        let last = try await store.lastSeqs(Array(bySession.keys))
        for (session, streams) in bySession {
            let from = streams.map(\.lastSeq).min() ?? 0
            guard let newest = last[session], newest > from else { continue }
            var after = from
            while after < newest {
                let rows = try await store.eventsAfter(session: session, seq: after)
                guard let tail = rows.last else { break }
                let messages = rows.map { Subscriber.Message(seq: $0.seq, id: $0.id, type: $0.type, json: $0.json) }
                for stream in streams { stream.deliver(messages) }
                after = tail.seq
            }
        }
    }
}
