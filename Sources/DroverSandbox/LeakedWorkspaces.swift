import DroverIO
import Foundation

/// Workspaces a dead pool left mounted. A pool killed outright (SIGKILL, OOM) cannot unmount its
/// sandboxes' tmpfs quotas: they would hold their memory for good, and every mount namespace made
/// afterwards (one per sandboxed call) would copy them, slowing each call. A starting pool
/// finds them by their owner uid, which names the uid range (`UidRange`) of the pool that made
/// them, and takes back those whose range no live pool holds.
enum LeakedWorkspaces {
    struct Mount: Equatable, Sendable {
        var path: String
        /// The uid range slot of the pool that made it.
        var slot: Int
    }

    /// The workspace mounts in `/proc/self/mountinfo` text: tmpfs mounted on a `ws_…` folder,
    /// owned by a uid in one of the ranges `base + slot * size`, and the tmpfs they sit under
    /// (`Workspace.mountParent`), whose source names its range's first uid. Workspaces come
    /// before the mount they sit under. Pure.
    static func find(mountinfo: String, base: UInt32, size: UInt32, slots: Int) -> [Mount] {
        let found = mountinfo.split(separator: "\n").compactMap { line -> Mount? in
            let halves = line.components(separatedBy: " - ")
            guard halves.count == 2 else { return nil }
            let fields = halves[0].split(separator: " ")
            let tail = halves[1].split(separator: " ")
            guard fields.count >= 5, tail.count >= 3, tail[0] == "tmpfs" else { return nil }
            let path = String(fields[4]).replacingOccurrences(of: "\\040", with: " ")
            let uid: UInt32?
            if tail[1].hasPrefix(Workspace.parentSourcePrefix) {
                uid = UInt32(tail[1].dropFirst(Workspace.parentSourcePrefix.count))
            } else if path.split(separator: "/").last?.hasPrefix(Workspace.folderPrefix) == true {
                uid = tail[2].split(separator: ",").first(where: { $0.hasPrefix("uid=") }).flatMap { UInt32($0.dropFirst(4)) }
            } else {
                uid = nil
            }
            guard let uid, uid >= base else { return nil }
            let slot = Int((uid - base) / size)
            return slot < slots ? Mount(path: path, slot: slot) : nil
        }
        // Longer paths first (a workspace before the mount it sits under), else in the table's order.
        return found.enumerated().sorted { first, second in
            first.element.path.count != second.element.path.count
                ? first.element.path.count > second.element.path.count : first.offset < second.offset
        }.map(\.element)
    }

    static func mountinfo() -> String { KernelFile.read("/proc/self/mountinfo") ?? "" }

    /// Unmounts and removes what dead pools left (those of `own`, the slot this pool now holds,
    /// included: its last holder is gone). Returns how many.
    static func sweep(own: UidRange, base: UInt32, size: UInt32) -> Int {
        guard geteuid() == 0 else { return 0 }
        var swept = 0
        for mount in find(mountinfo: mountinfo(), base: base, size: size, slots: UidRange.slots) {
            guard mount.slot == own.slot || UidRange.isFree(base: base, slot: mount.slot, folder: own.folder) else { continue }
            guard umount2(mount.path, Int32(MNT_DETACH)) == 0 else { continue }
            try? FileManager.default.removeItem(atPath: mount.path)
            swept += 1
        }
        return swept
    }
}
