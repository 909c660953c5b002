import DroverCLI
import DroverPostgres
import Foundation

/// A view command's `--watch`: shows what `render` returns once, or every `--interval` seconds
/// (default 1) until Ctrl-C, redrawn under a title; one database connection throughout.
enum Watching {
    static func run(_ arguments: Arguments, title: String, _ render: (ConnectionPool) async throws -> String) async throws {
        let interval = try arguments.double("interval") ?? 1
        let pool = try Environment.pool(maxConnections: 1)
        defer { pool.close() }
        let watch = arguments.has("watch")
        repeat {
            let text = try await render(pool)
            let header = watch && !arguments.has("json") ? Terminal.clear + "\(title), every \(interval) s (Ctrl-C to stop)\n" : ""
            if !text.isEmpty { Output.line(header + text) }
            if watch { try await Task.sleep(for: .seconds(interval)) }
        } while watch
    }
}
