/// Where a session stands in the queue.
///
/// `queued` sessions have user events no harness has taken yet; `running` ones are leased; `idle`
/// ones wait for the user; `terminated` ones accept nothing more.
public enum SessionStatus: String, Sendable, Codable, CaseIterable {
    case idle
    case queued
    case running
    case terminated
}
