import DroverCore

/// The sessions a harness is running, one entry per session, each tagged with its lease epoch.
///
/// A harness can claim its own session again (its lease expired while it was stalled, and its
/// own claim loop won it back). The newer lease replaces the older entry, and the older runner
/// must stop; when the older runner finally ends, its removal must not take the newer entry
/// with it (which would leave that session without heartbeats, interrupts or drain).
struct RunnerTable<Runner>: Sendable where Runner: Sendable {
    private var entries: [SessionID: (epoch: Int64, runner: Runner)] = [:]

    var count: Int { entries.count }
    var isEmpty: Bool { entries.isEmpty }
    var runners: [Runner] { entries.values.map(\.runner) }

    subscript(session: SessionID) -> Runner? { entries[session]?.runner }

    /// Adds the runner of a newly claimed lease; returns the runner it replaces (an older lease of
    /// the same session), which the caller stops.
    mutating func insert(_ runner: Runner, session: SessionID, epoch: Int64) -> Runner? {
        let replaced = entries[session]
        if let replaced, replaced.epoch > epoch { return runner }
        entries[session] = (epoch, runner)
        return replaced?.runner
    }

    /// Removes the entry only if it is still the one for `epoch`.
    mutating func remove(session: SessionID, epoch: Int64) {
        if entries[session]?.epoch == epoch { entries.removeValue(forKey: session) }
    }
}
