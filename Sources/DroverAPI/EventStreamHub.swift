import DroverCore
import DroverPostgres
import DroverStore
import Foundation
import Synchronization

/// Feeds every event stream of one API process from one poller: each tick, one query reads the
/// last seq of every streamed session, and one read (a page) per position that streams of a
/// session that moved are at fetches what follows it for all of them. Each stream remembers the
/// last seq it was given, so catch-up (`Last-Event-ID`) and live delivery are the same path:
/// nothing is skipped, nothing repeated.
///
/// A stream's buffer is bounded. A full one takes nothing more and keeps its position, so a long
/// backlog is caught up a page per tick as its reader takes it (it used to be read whole in one
/// tick, overflow, and reconnect forever while every other stream waited); a client that takes
/// nothing for `stallLimit` seconds with a full buffer is cut off, and no other stream waits for it.
public final class EventStreamHub: Sendable {
    /// One open stream.
    public final class Subscriber: Sendable {
        public struct Message: Sendable {
            public var seq: Int64
            public var id: String
            public var type: String
            public var json: String
            /// The message as the stream sends it (`event`, `id`, `data`), made once per event
            /// and shared by every stream that sends it.
            public let sse: [UInt8]

            public init(seq: Int64, id: String, type: String, json: String) {
                self.seq = seq
                self.id = id
                self.type = type
                self.json = json
                sse = Array("event: \(type)\nid: \(id)\ndata: \(json)\n\n".utf8)
            }

            /// An `event_start`'s previewed type (`agent.message`, `agent.thinking`); empty otherwise.
            public var previewed = ""

            /// A preview (`event_start`, `event_delta`): no position of its own, so no SSE `id`
            /// (a reconnect resumes from the last event, never from a preview). `id` here is the
            /// previewed event's.
            init(preview type: String, of id: String, previewed: String, json: String) {
                seq = -1
                self.id = id
                self.type = type
                self.previewed = previewed
                self.json = json
                sse = Array("event: \(type)\ndata: \(json)\n\n".utf8)
            }
        }

        let session: String
        /// The event types this stream previews (`event_deltas`): `agent.message`, `agent.thinking`.
        let previews: Set<String>
        private struct State {
            var lastSeq: Int64
            /// Previewed events this stream has been sent a start for, and those it has been sent
            /// whole (a preview arriving after its event is dropped); the latest few of each.
            var previewed: [String] = []
            var concluded: [String] = []
            var queue: [Message] = []
            var bytes = 0
            /// Since when the buffer has had no room for the next message.
            var fullSince: ContinuousClock.Instant?
            var overflowed = false
            var closed = false
            /// The session is gone: what is queued is the stream's last (`session.deleted`).
            var ended = false
        }
        private let state: Mutex<State>
        let maxBytes: Int
        let stallLimit: Duration
        /// Called (on the poller's task) when messages arrive or the stream overflows: the server's
        /// event loop then takes them (`take`), or cuts the connection.
        ///
        /// Held in a box (`Boxed`): a closure kept in a `Mutex` and read back through `withLock`'s `inout`
        /// is re-abstracted in place at every read, each read wrapping it in one more thunk (seen:
        /// the poller's deliveries slowing without end under 1,000 streams).
        private let onReady = Mutex<Boxed<@Sendable () -> Void>?>(nil)

        public func whenReady(_ action: @escaping @Sendable () -> Void) { onReady.withLock { $0 = Boxed(action) } }

        init(session: String, after seq: Int64, maxBytes: Int, stallLimit: Duration, previews: Set<String> = []) {
            self.session = session
            self.previews = previews
            self.maxBytes = maxBytes
            self.stallLimit = stallLimit
            state = Mutex(State(lastSeq: seq))
        }

        var lastSeq: Int64 { state.withLock { $0.lastSeq } }

        /// Appends what is newer than what this stream has, while its buffer has room (one message
        /// larger than the buffer goes alone); overflows when the client has taken nothing for
        /// `stallLimit` with a full buffer.
        func deliver(_ messages: [Message], now: ContinuousClock.Instant = .now) {
            let signal = state.withLock { state -> Bool in
                guard !state.overflowed, !state.closed else { return false }
                var added = false
                var full = false
                for message in messages where message.seq > state.lastSeq {
                    let size = message.sse.count
                    if state.bytes + size > maxBytes && !state.queue.isEmpty {
                        full = true
                        break
                    }
                    state.queue.append(message)
                    state.bytes += size
                    state.lastSeq = message.seq
                    added = true
                    if previews.contains(message.type) { Self.remember(message.id, in: &state.concluded) }
                }
                if full {
                    let since = state.fullSince ?? now
                    state.fullSince = since
                    if now - since >= stallLimit {
                        state.overflowed = true
                        state.queue = []
                        state.bytes = 0
                    }
                }
                return added || state.overflowed
            }
            if signal { onReady.withLock { $0 }?.value() }
        }

        /// Queues previews this stream asked for, best effort: only while its buffer has room,
        /// never one for an event it has already been sent whole, and deltas only of events
        /// whose start it was sent.
        func preview(_ messages: [Message]) {
            let signal = state.withLock { state -> Bool in
                guard !state.overflowed, !state.closed, !state.ended else { return false }
                var added = false
                for message in messages where !state.concluded.contains(message.id) {
                    if message.type == "event_start" {
                        guard previews.contains(message.previewed) else { continue }
                        Self.remember(message.id, in: &state.previewed)
                    } else if !state.previewed.contains(message.id) {
                        continue
                    }
                    guard state.bytes + message.sse.count <= maxBytes else { break }
                    state.queue.append(message)
                    state.bytes += message.sse.count
                    added = true
                }
                return added
            }
            if signal { onReady.withLock { $0 }?.value() }
        }

        private static func remember(_ id: String, in list: inout [String]) {
            list.append(id)
            if list.count > 64 { list.removeFirst(list.count - 64) }
        }

        /// Ends the stream with `message` (the session was deleted): queued whatever the buffer
        /// holds, and nothing more is delivered.
        func end(with message: Message) {
            let signal = state.withLock { state -> Bool in
                guard !state.overflowed, !state.closed, !state.ended else { return false }
                state.queue.append(message)
                state.ended = true
                return true
            }
            if signal { onReady.withLock { $0 }?.value() }
        }

        public enum Taken: Sendable {
            case messages([Message])
            case nothing
            case overflowed
            /// The stream's last messages: send them, then close.
            case ended([Message])
        }

        /// What has arrived since the last take (never blocks).
        public func take() -> Taken {
            state.withLock { state -> Taken in
                if state.overflowed { return .overflowed }
                if state.ended {
                    defer { state.queue = [] }
                    return .ended(state.queue)
                }
                guard !state.queue.isEmpty else { return .nothing }
                defer {
                    state.queue = []
                    state.bytes = 0
                    state.fullSince = nil
                }
                return .messages(state.queue)
            }
        }

        func close() {
            state.withLock { $0.closed = true }
            onReady.withLock { $0 = nil }
        }
    }

    let store: TenantStore
    let interval: Double
    let maxBytesPerStream: Int
    /// How long a stream's buffer may stay full with the client taking nothing before it is cut off.
    let stallLimit: Duration
    let log: Log
    private let subscribers = Mutex<[ObjectIdentifier: Subscriber]>([:])

    public init(store: TenantStore, interval: Double = 0.02, maxBytesPerStream: Int = 8 << 20, stallLimit: Duration = .seconds(5), log: Log) {
        self.store = store
        self.interval = interval
        self.maxBytesPerStream = maxBytesPerStream
        self.stallLimit = stallLimit
        self.log = log
    }

    public func subscribe(session: String, after seq: Int64, previews: Set<String> = []) -> Subscriber {
        let subscriber = Subscriber(session: session, after: seq, maxBytes: maxBytesPerStream, stallLimit: stallLimit, previews: previews)
        subscribers.withLock { $0[ObjectIdentifier(subscriber)] = subscriber }
        return subscriber
    }

    public func unsubscribe(_ subscriber: Subscriber) {
        subscriber.close()
        subscribers.withLock { _ = $0.removeValue(forKey: ObjectIdentifier(subscriber)) }
    }

    public var streamCount: Int { subscribers.withLock { $0.count } }

    /// The sessions streamed with previews now (the harnesses are told so every refresh).
    public var previewedSessions: Set<String> {
        subscribers.withLock { Set($0.values.filter { !$0.previews.isEmpty }.map(\.session)) }
    }

    /// Hands a harness's previews (`{"session", "items": [event_start | event_delta, …]}`, as
    /// notified on `LeaseQueue.previewsChannel`) to the session's streams that asked for them.
    public func preview(_ payload: String) {
        guard let note = try? JSONValue.parse(payload), let session = note["session"]?.stringValue, case .array(let items)? = note["items"] else {
            return
        }
        let streams = subscribers.withLock { $0.values.filter { $0.session == session && !$0.previews.isEmpty } }
        guard !streams.isEmpty else { return }
        let messages = items.compactMap { item -> Subscriber.Message? in
            guard let type = item["type"]?.stringValue, let id = item["event"]?["id"]?.stringValue ?? item["event_id"]?.stringValue else { return nil }
            return Subscriber.Message(preview: type, of: id, previewed: item["event"]?["type"]?.stringValue ?? "", json: item.text)
        }
        for stream in streams { stream.preview(messages) }
    }

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
            guard let newest = last[session] else {
                // Deleted (a stream opens only on a session that exists): say so, and end.
                let id = "sevt_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
                let json: JSONValue = ["type": "session.deleted", "id": .string(id), "processed_at": .string(RFC3339.string(Date()))]
                let message = Subscriber.Message(seq: .max, id: id, type: "session.deleted", json: json.text)
                for stream in streams { stream.end(with: message) }
                continue
            }
            // One page per position per tick: live streams (all at the newest position, as a rule)
            // share one read, and a stream far behind never holds them up.
            for (after, group) in Dictionary(grouping: streams.filter { $0.lastSeq < newest }, by: \.lastSeq) {
                let rows = try await store.eventsAfter(session: session, seq: after)
                let messages = rows.map { Subscriber.Message(seq: $0.seq, id: $0.id, type: $0.type, json: $0.json) }
                for stream in group { stream.deliver(messages) }
            }
        }
    }
}
