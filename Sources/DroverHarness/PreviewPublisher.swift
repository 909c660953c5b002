import DroverCore
import DroverModel
import DroverPostgres
import DroverStore
import Foundation
import Synchronization

/// Streams previews of what a model call is producing (`event_start`, `event_delta`) to the API
/// streams that asked for them (`events.stream(event_deltas=…)`), through Postgres: a
/// notification on `LeaseQueue.previewsChannel`, nothing stored, nothing waited for by the turn.
///
/// Only sessions someone watches are previewed: an API replica notifies
/// `LeaseQueue.previewWatchChannel` with the session's id when such a stream opens and every `APIDaemon` refresh while it stays
/// open; a session not heard of for `watchTTL` is not previewed, so a session nobody streams
/// costs nothing. A call's fragments leave in batches, at most one notification per
/// `flushInterval` (or more when a batch exceeds a notification's size).
final class PreviewPublisher: Sendable {
    static let watchTTL: Duration = .seconds(60)
    static let flushInterval: Duration = .milliseconds(40)
    /// A notification's payload is at most 8,000 bytes; a batch is cut well below.
    static let maxPayload = 7_000

    private let pool: ConnectionPool
    private let watched = Mutex<[String: ContinuousClock.Instant]>([:])

    init(pool: ConnectionPool) { self.pool = pool }

    /// An API replica streams `session` with previews.
    func watch(_ session: String, now: ContinuousClock.Instant = .now) {
        watched.withLock { watched in
            watched[session] = now + Self.watchTTL
            if watched.count > 1_000 { watched = watched.filter { $0.value > now } }
        }
    }

    /// The previews of one model call of `session`, or nil when nobody watches it.
    func preview(session: String, now: ContinuousClock.Instant = .now) -> ModelCallPreview? {
        guard let until = watched.withLock({ $0[session] }), until > now else { return nil }
        return ModelCallPreview(session: session, publisher: self)
    }

    func send(_ payload: String) async {
        _ = try? await pool.query("SELECT pg_notify($1, $2)", [LeaseQueue.previewsChannel, payload])
    }
}

/// One model call's previews: each text and thinking block gets its event's id when it starts
/// (the `agent.message` or `agent.thinking` written at the end carries it), text fragments are
/// gathered and sent in batches. Fed on the transfer thread; `finish` sends what is left before
/// the call's events are written, so a stream sees a preview before its event.
final class ModelCallPreview: Sendable {
    let session: String
    private let publisher: PreviewPublisher
    private struct State {
        var ids: [Int: UUID] = [:]
        /// Items not sent yet, in order (a block's fragments gathered into its last item).
        var pending: [Item] = []
        var flushScheduled = false
    }

    enum Item: Equatable {
        case start(id: UUID, type: String)
        case text(id: UUID, String)
    }

    private let state = Mutex(State())

    init(session: String, publisher: PreviewPublisher) {
        self.session = session
        self.publisher = publisher
    }

    /// The id the event of block `index` of the response is written with (nil: not previewed).
    func id(forBlock index: Int) -> UUID? { state.withLock { $0.ids[index] } }

    func observe(_ delta: ModelDelta) {
        let schedule = state.withLock { state -> Bool in
            switch delta {
            case .blockStarted(let index, let kind):
                let type: String
                switch kind {
                case .text: type = "agent.message"
                case .thinking: type = "agent.thinking"
                case .toolUse: return false
                }
                let id = state.ids[index] ?? UUID()
                state.ids[index] = id
                state.pending.append(.start(id: id, type: type))
            case .text(let index, let fragment):
                guard let id = state.ids[index] else { return false }
                if case .text(let last, let gathered)? = state.pending.last, last == id {
                    state.pending[state.pending.count - 1] = .text(id: id, gathered + fragment)
                } else {
                    state.pending.append(.text(id: id, fragment))
                }
            }
            guard !state.flushScheduled else { return false }
            state.flushScheduled = true
            return true
        }
        if schedule {
            Task {
                try? await Task.sleep(for: PreviewPublisher.flushInterval)
                await flush()
            }
        }
    }

    /// Sends what is gathered now (the call ended).
    func finish() async { await flush() }

    private func flush() async {
        let items = state.withLock { state -> [Item] in
            defer {
                state.pending = []
                state.flushScheduled = false
            }
            return state.pending
        }
        for payload in Self.payloads(session: session, items) { await publisher.send(payload) }
    }

    /// The notifications for `items`: `{"session", "items": [event_start | event_delta, …]}`,
    /// each under `PreviewPublisher.maxPayload` bytes (a long fragment is cut into several deltas).
    static func payloads(session: String, _ items: [Item]) -> [String] {
        var events: [String] = []
        for item in items {
            switch item {
            case .start(let id, let type):
                events.append(JSONValue.object(["type": "event_start", "event": ["type": .string(type), "id": .string(Event.apiID(uuid: id.uuidString))]]).text)
            case .text(let id, let text):
                for piece in pieces(text, maxBytes: PreviewPublisher.maxPayload / 2) {
                    events.append(JSONValue.object([
                        "type": "event_delta", "event_id": .string(Event.apiID(uuid: id.uuidString)),
                        "delta": ["type": "content_delta", "index": 0, "content": ["type": "text", "text": .string(piece)]],
                    ]).text)
                }
            }
        }
        var payloads: [String] = []
        var batch: [String] = []
        var size = 0
        let head = "{\"session\":\(JSONText.quote(session)),\"items\":["
        for event in events {
            if !batch.isEmpty && head.utf8.count + size + event.utf8.count + 2 > PreviewPublisher.maxPayload {
                payloads.append(head + batch.joined(separator: ",") + "]}")
                batch = []
                size = 0
            }
            batch.append(event)
            size += event.utf8.count + 1
        }
        if !batch.isEmpty { payloads.append(head + batch.joined(separator: ",") + "]}") }
        return payloads
    }

    /// `text` in pieces of at most `maxBytes` UTF-8 bytes once escaped as JSON (at worst six
    /// bytes a byte), cut between characters.
    static func pieces(_ text: String, maxBytes: Int) -> [String] {
        let budget = max(1, maxBytes / 6)
        var pieces: [String] = []
        var current = ""
        var bytes = 0
        for character in text {
            let size = character.utf8.count
            if bytes + size > budget && !current.isEmpty {
                pieces.append(current)
                current = ""
                bytes = 0
            }
            current.append(character)
            bytes += size
        }
        if !current.isEmpty { pieces.append(current) }
        return pieces
    }
}
