/// What to write back for one mounted read-write memory store, from what changed in its folder
/// since it was mounted or last written back (the pool keeps that base and tells the changes,
/// `PoolClient.memoryChanges`). Pure: `SessionRunner` performs the changes.
///
/// A new file is created; a changed one is updated with the content hash it was mounted with as
/// the precondition (so a memory someone else changed meanwhile is not overwritten: the write is
/// refused and skipped); a mounted memory whose file is gone is deleted under the same
/// precondition. Files that cannot be memories (not UTF-8, too large) are left out and reported.
enum MemorySyncPlan {
    enum Change: Sendable, Equatable {
        case create(path: String, content: String)
        case update(path: String, content: String, expectedSHA256: String)
        case delete(path: String, expectedSHA256: String)
    }

    struct Plan: Sendable, Equatable {
        var changes: [Change] = []
        /// Paths of files that cannot be memories (`nil` bytes: too large; or not UTF-8).
        var skipped: [String] = []
    }

    static func plan(changed: [(path: String, bytes: [UInt8]?, baseSHA256: String?)], removed: [(path: String, baseSHA256: String?)]) -> Plan {
        var plan = Plan()
        for file in changed.sorted(by: { $0.path < $1.path }) {
            guard let bytes = file.bytes, let content = String(validating: bytes, as: UTF8.self) else {
                plan.skipped.append(file.path)
                continue
            }
            if let sha = file.baseSHA256 {
                plan.changes.append(.update(path: file.path, content: content, expectedSHA256: sha))
            } else {
                plan.changes.append(.create(path: file.path, content: content))
            }
        }
        for file in removed.sorted(by: { $0.path < $1.path }) {
            guard let sha = file.baseSHA256 else { continue }
            plan.changes.append(.delete(path: file.path, expectedSHA256: sha))
        }
        return plan
    }
}
