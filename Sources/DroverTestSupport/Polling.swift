import DroverCore
import Foundation

/// Waits for something that happens asynchronously (a registry update, a heartbeat's effect).
public enum Polling {
    /// Polls `condition` every 25 ms; throws, naming `what`, when it is not met within `timeout`.
    public static func until(_ what: String = "condition", timeout: Double = 15, _ condition: () async throws -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(timeout)
        while ContinuousClock.now < deadline {
            if try await condition() { return }
            try await Task.sleep(for: .milliseconds(25))
        }
        throw DroverError(.invalidArgument, "\(what) not met within \(timeout) s")
    }
}
