import Foundation

/// A range of uids for one pool's sandboxes, taken exclusively among the pools on this host.
///
/// Each of `slots` ranges has a lock file; a pool holds the first it can `flock` for its whole
/// life (the kernel drops the lock when the process dies, however it dies). Deriving the range
/// from the pid, as before, gave two pools whose pids were equal modulo the slot count the same
/// uids: one pool's sandboxes could then enter the other's workspaces.
final class UidRange: Sendable {
    let first: UInt32
    let slot: Int
    private let fd: Int32

    /// Where the lock files live: a folder every pool of the host must share, whatever container
    /// it runs in (`--uid-locks`; deployments mount the host's `/run/drover`). It used to be `/tmp`,
    /// which each container has its own of: two pool containers on one host then both took the
    /// first range and shared uids.
    static let defaultLockFolder = "/run/drover"
    static var lockFolder: String { ProcessInfo.processInfo.environment["DROVER_UID_LOCKS"] ?? defaultLockFolder }

    static let slots = 64

    static func lockPath(base: UInt32, slot: Int, folder: String = UidRange.lockFolder) -> String {
        folder + "/drover-pool-uids-\(base)-\(slot).lock"
    }

    /// Whether no live pool holds `slot` (its lock can be taken; it is released at once).
    static func isFree(base: UInt32, slot: Int, folder: String = UidRange.lockFolder) -> Bool {
        let fd = open(lockPath(base: base, slot: slot, folder: folder), O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return flock(fd, LOCK_EX | LOCK_NB) == 0
    }

    let folder: String

    init(base: UInt32, size: UInt32, slots: Int = UidRange.slots, folder: String = UidRange.lockFolder) throws {
        self.folder = folder
        do {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        } catch {
            throw IsolationError("cannot make the uid lock folder \(folder): \(error)")
        }
        for slot in 0..<slots {
            let path = Self.lockPath(base: base, slot: slot, folder: folder)
            let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw IsolationError("cannot open \(path): \(String(cString: strerror(errno)))") }
            if flock(fd, LOCK_EX | LOCK_NB) == 0 {
                self.fd = fd
                self.slot = slot
                self.first = base + UInt32(slot) * size
                return
            }
            close(fd)
        }
        throw IsolationError("all \(slots) uid ranges are taken by other pools on this host")
    }

    deinit { close(fd) }
}
