import DroverCLI
import DroverCore
import DroverStore
import Foundation

struct EventsCommand: Command {
    static let name = "events"
    static let summary = "print a slice of a session's event log"
    static let help = """
        usage: drover events SESSION [--after N] [--before N] [--limit N] [--tail N] [--type T,T]
                                     [--follow] [--json]

        Prints events in seq order. Without --limit or --tail, prints the whole slice, a page at
        a time.

          --after N    only events with seq > N
          --before N   only events with seq < N (rewind before an event)
          --limit N    at most N events from the start of the slice
          --tail N     the last N events of the slice
          --type T,T   only these event types
          --follow     keep printing new events as they are appended (Ctrl-C to stop)
          --json       one JSON object per line: seq, type, payload, id, created_at, lease_epoch
        """
    static let options: Set<String> = ["after", "before", "limit", "tail", "type"]
    static let flags: Set<String> = ["follow", "json"]
    static let pageSize = 1000

    static func run(_ arguments: Arguments) async throws {
        let session = SessionID(try arguments.positional(0, "SESSION"))
        let types = arguments.value("type").map { $0.split(separator: ",").map { EventType(String($0)) } }
        let limit = try arguments.int("limit")
        let tail = try arguments.int("tail")
        let before = try arguments.int("before").map(Int64.init)
        var after = try arguments.int("after").map(Int64.init)
        let pool = try Environment.pool(maxConnections: 1)
        defer { pool.close() }
        let store = SessionStore(pool: pool)
        let json = arguments.has("json")
        func emit(_ events: [Event]) {
            for event in events { Output.line(json ? Render.json(event) : Render.eventLine(event)) }
            if let last = events.last { after = last.seq }
        }

        if tail != nil || limit != nil {
            emit(try await store.events(session, after: after, before: before, limit: limit ?? 100, tail: tail, types: types))
        } else {
            while true {
                let page = try await store.events(session, after: after, before: before, limit: pageSize, types: types)
                emit(page)
                if page.count < pageSize { break }
            }
        }
        guard arguments.has("follow") else { return }
        while true {
            let page = try await store.events(session, after: after, before: before, limit: pageSize, types: types)
            emit(page)
            if page.count < pageSize { try await Task.sleep(for: .milliseconds(200)) }
        }
    }
}
