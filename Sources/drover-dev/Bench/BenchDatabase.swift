import DroverCLI
import DroverPostgres
import DroverStore
import Foundation

/// A run's scratch database on the DATABASE_URL server, migrated; `run` drops it however the
/// run ends, after `stop` (the run's processes and connections) in both cases.
enum BenchDatabase {
    static func create(prefix: String = "drover_bench") async throws -> ScratchDatabase {
        guard let directory = Migration.defaultDirectory() else { throw UsageError("no migrations folder found") }
        return try await ScratchDatabase.create(on: try Environment.databaseURL(), prefix: prefix, migrations: try Migration.load(from: directory))
    }

    static func run<T>(_ database: ScratchDatabase, stop: () async -> Void, _ body: () async throws -> T) async throws -> T {
        do {
            let value = try await body()
            await stop()
            try await database.drop()
            return value
        } catch {
            await stop()
            try? await database.drop()
            throw error
        }
    }
}
