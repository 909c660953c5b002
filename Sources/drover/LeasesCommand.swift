import DroverCLI
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
        try await Watching.run(arguments, title: "drover leases") { pool in
            let leases = try await LeaseView.all(in: pool)
            return arguments.has("json")
                ? leases.map(Render.json).joined(separator: "\n")
                : leases.isEmpty ? "no leases held" : Render.leaseTable(leases, colour: Terminal.isColour)
        }
    }
}
