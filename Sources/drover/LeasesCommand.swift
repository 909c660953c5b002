import DroverStore
import Foundation

struct LeasesCommand: Command {
    static let name = "leases"
    static let summary = "show which harness holds which session"
    static let help = """
        usage: drover leases [--watch] [--interval SECONDS] [--json]

        Lists held leases: session, status, owner harness, epoch, held for, heartbeat age and time
        until expiry, measured by the database's clock (the drover.leases view). Expired leases
        are marked EXPIRED (in red on a terminal).

          --watch             redraw every --interval seconds (default 1) until Ctrl-C
          --json              one JSON object per lease per line
        """
    static let options: Set<String> = ["interval"]
    static let flags: Set<String> = ["watch", "json"]

    static func run(_ arguments: Arguments) async throws {
        let interval = try arguments.double("interval") ?? 1
        let pool = try Environment.pool(maxConnections: 1)
        defer { pool.close() }
        repeat {
            let leases = try await LeaseView.all(in: pool)
            if arguments.has("json") {
                leases.forEach { Output.line(Render.json($0)) }
            } else {
                let header = arguments.has("watch") ? Terminal.clear + "drover leases, every \(interval) s (Ctrl-C to stop)\n" : ""
                Output.line(header + (leases.isEmpty ? "no leases held" : Render.leaseTable(leases, colour: Terminal.isColour)))
            }
            if arguments.has("watch") { try await Task.sleep(for: .seconds(interval)) }
        } while arguments.has("watch")
    }
}
