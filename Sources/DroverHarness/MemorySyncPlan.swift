/// What to write back after a turn for one mounted memory store: the store's folder as the
/// sandbox left it, against what was mounted (or last written back). Pure: `SessionRunner` reads
/// the folder and performs the changes.
///
/// A file that is new is created, one whose bytes changed is updated with the content hash it
/// was mounted with as the precondition (so a memory someone else changed meanwhile is not
/// overwritten: the write is refused and skipped), and a mounted memory whose file is gone is
/// deleted under the same precondition. Files that cannot be memories (not UTF-8, too large)
/// are left out and reported.
enum MemorySyncPlan {
    /// A memory as mounted: its content hash in the store (the precondition) and its bytes.
    struct Mounted: Sendable, Equatable {
        var sha256: String
        var bytes: [UInt8]
    }

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

    static func plan(mounted: [String: Mounted], current: [(path: String, bytes: [UInt8]?)]) -> Plan {
        var plan = Plan()
        var seen = Set<String>()
        for file in current.sorted(by: { $0.path < $1.path }) {
            seen.insert(file.path)
            guard let bytes = file.bytes, let content = String(validating: bytes, as: UTF8.self) else {
                plan.skipped.append(file.path)
                continue
            }
            if let before = mounted[file.path] {
                if before.bytes != bytes { plan.changes.append(.update(path: file.path, content: content, expectedSHA256: before.sha256)) }
            } else {
                plan.changes.append(.create(path: file.path, content: content))
            }
        }
        for (path, before) in mounted.sorted(by: { $0.key < $1.key }) where !seen.contains(path) {
            plan.changes.append(.delete(path: path, expectedSHA256: before.sha256))
        }
        return plan
    }
}
