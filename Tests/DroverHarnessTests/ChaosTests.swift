import DroverCore
import DroverIO
import DroverTestSupport
import Foundation
import Testing

/// The bounded chaos run: `drover chaos` as a real process, 60 sessions, under kills, a pause, a
/// pool crash and a Postgres restart. `make test` runs it alone, after the other suites, because
/// it restarts the server.
@Suite(.enabled(if: ProcessInfo.processInfo.environment["DROVER_PG_RESTART"] != nil, "needs DROVER_PG_RESTART"))
struct ChaosTests {
    @Test func sixtySessionsSurviveKillsAPauseAPoolCrashAndAPostgresRestart() async throws {
        let chaos = try ChildDaemon(binary: TestDatabase.droverBinary.path, ["chaos", "--sessions", "60", "--timeout", "150"])
        let status = await chaos.wait(timeout: 170)
        print(chaos.log)
        #expect(status == 0)
        #expect(chaos.log.contains("chaos: passed"))
        #expect(chaos.log.contains("verify: 66 sessions"), "60 sessions and 6 hostile ones")
        #expect(chaos.log.contains("Postgres restarted (status 0)"))
        #expect(chaos.log.contains("SIGKILL sandbox pool"))
        // The hostile phase (issue #20): every daemon survived and nothing got through.
        #expect(chaos.log.contains("hostile: ") && chaos.log.contains("FIFO writes refused") && chaos.log.contains("; 0 breaches"))
    }
}
