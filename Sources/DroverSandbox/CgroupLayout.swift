/// Where this process's memory and pids control groups are, read from `/proc/self/mountinfo` and
/// `/proc/self/cgroup`. Pure: the pool decides with it, `SandboxCgroups` acts on it.
///
/// cgroup v2 (one unified hierarchy; the default on current distributions and Kubernetes) wins
/// when it has both controllers; otherwise v1 hierarchies that carry `memory` and `pids` (hybrid
/// hosts mount an empty v2 hierarchy beside v1 ones, as this build machine does). Sandbox groups go
/// below the process's own group, so whatever limits its container has still hold over them.
public enum CgroupLayout: Sendable, Equatable {
    /// Folders in which to make per-pool groups: the unified hierarchy's own group.
    case v2(own: String)
    /// The memory and pids hierarchies' own groups.
    case v1(memory: String, pids: String)
    case unavailable(reason: String)

    /// `controllersOfV2` reads a v2 folder's `cgroup.controllers` (nil when unreadable).
    public static func plan(mountinfo: String, selfCgroup: String, controllersOfV2: (String) -> String?) -> CgroupLayout {
        struct Mount {
            var root: String
            var point: String
            var type: String
            var options: [Substring]
        }
        let mounts = mountinfo.split(separator: "\n").compactMap { line -> Mount? in
            // id parent major:minor root mountpoint options [optional…] - fstype source superoptions
            let halves = line.components(separatedBy: " - ")
            guard halves.count == 2 else { return nil }
            let left = halves[0].split(separator: " ")
            let right = halves[1].split(separator: " ")
            guard left.count >= 5, right.count >= 3 else { return nil }
            return Mount(
                root: unescape(String(left[3])), point: unescape(String(left[4])), type: String(right[0]),
                options: right[2].split(separator: ","))
        }
        var ownV1: [String: String] = [:]
        var ownV2: String?
        for line in selfCgroup.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count == 3 else { continue }
            if parts[0] == "0" && parts[1].isEmpty {
                ownV2 = String(parts[2])
            } else {
                for controller in parts[1].split(separator: ",") { ownV1[String(controller)] = String(parts[2]) }
            }
        }
        /// The folder of `path` (as /proc/self/cgroup names it) under a mount of its hierarchy.
        func folder(_ mount: Mount, _ path: String) -> String {
            var relative = path
            if mount.root != "/" && relative.hasPrefix(mount.root) { relative.removeFirst(mount.root.count) }
            let joined = mount.point + (relative.hasPrefix("/") || relative.isEmpty ? relative : "/" + relative)
            return joined.hasSuffix("/") && joined.count > 1 ? String(joined.dropLast()) : joined
        }
        if let path = ownV2, let mount = mounts.first(where: { $0.type == "cgroup2" }) {
            let own = folder(mount, path)
            let controllers = Set((controllersOfV2(own) ?? "").split(whereSeparator: { $0 == " " || $0 == "\n" }))
            if controllers.contains("memory") && controllers.contains("pids") { return .v2(own: own) }
        }
        func v1(_ controller: Substring) -> String? {
            guard let mount = mounts.first(where: { $0.type == "cgroup" && $0.options.contains(controller) }),
                let path = ownV1[String(controller)]
            else { return nil }
            return folder(mount, path)
        }
        if let memory = v1("memory"), let pids = v1("pids") { return .v1(memory: memory, pids: pids) }
        return .unavailable(reason: "no cgroup v2 hierarchy with the memory and pids controllers, and no v1 memory and pids hierarchies")
    }

    /// mountinfo escapes space, tab, newline and backslash as octal.
    private static func unescape(_ field: String) -> String {
        guard field.contains("\\") else { return field }
        var out = ""
        var chars = Array(field)[...]
        while let char = chars.popFirst() {
            if char == "\\", chars.count >= 3, let code = UInt8(String(chars.prefix(3)), radix: 8) {
                out.append(Character(Unicode.Scalar(code)))
                chars.removeFirst(3)
            } else {
                out.append(char)
            }
        }
        return out
    }
}
