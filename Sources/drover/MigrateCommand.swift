import DroverCLI
import DroverStore
import Foundation

struct MigrateCommand: Command {
    static let name = "migrate"
    static let summary = "apply pending SQL migrations"
    static let help = """
        usage: drover migrate [--dir DIR]

        Applies the numbered SQL files in migrations/ that are not yet applied, in order, each in its
        own transaction, recorded in drover.schema_migrations. Safe to run concurrently (an advisory
        lock serialises runs) and again (a no-op when nothing is pending).

          --dir DIR   the migrations folder (default: $DROVER_MIGRATIONS_DIR, ./migrations, or the
                      one beside the executable)
        """
    static let options: Set<String> = ["dir"]

    static func run(_ arguments: Arguments) async throws {
        guard let directory = arguments.value("dir").map({ URL(fileURLWithPath: $0) }) ?? Migration.defaultDirectory() else {
            throw UsageError("no migrations folder found; pass --dir")
        }
        let migrations = try Migration.load(from: directory)
        let pool = try Environment.pool(maxConnections: 1)
        defer { pool.close() }
        let applied = try await Migrator(pool: pool).migrate(migrations) { migration in
            Output.line("applying \(String(format: "%04d", migration.version))_\(migration.name)")
        }
        Output.line(applied.isEmpty
            ? "schema is up to date (\(migrations.count) migrations)"
            : "applied \(applied.count) of \(migrations.count) migrations")
    }
}
