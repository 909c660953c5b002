import DroverIO
import Foundation

/// Control groups that bound a sandbox as a whole: `memory_mb` over all its processes together
/// (RLIMIT_AS counts one process at a time, so three processes could each take the limit), and
/// `processes` over the sandbox, whatever uid its processes run as.
///
/// One group per pool below this process's own group (`drover-<pool>`), one per sandbox below
/// that. Every process of a call joins its sandbox's group between fork and exec (the launcher
/// writes to the `cgroup.procs` descriptors this keeps open), so nothing runs outside it.
final class SandboxCgroups: Sendable {
    let layout: CgroupLayout
    /// The pool's folders: v1 memory and pids, or the v2 one.
    let poolFolders: [String]

    /// Makes the pool's groups. Throws, saying why, when this host gives no usable control group.
    init(layout: CgroupLayout, poolID: String) throws {
        self.layout = layout
        let name = "drover-" + String(poolID.map { $0.isLetter || $0.isNumber || $0 == "-" ? $0 : "_" })
        switch layout {
        case .unavailable(let reason):
            throw IsolationError(reason)
        case .v1(let memory, let pids):
            Self.sweepStale(in: [memory, pids])
            poolFolders = [memory + "/" + name, pids + "/" + name]
            for folder in poolFolders { try Self.makeFolder(folder) }
        case .v2(let own):
            Self.sweepStale(in: [own])
            // v2 lets only leaf groups hold processes once controllers are delegated: the daemon
            // moves into a leaf of its own, then enables memory and pids below its group.
            try Self.enableControllers(in: own, movingSelfTo: own + "/" + name + "-daemon")
            let folder = own + "/" + name
            try Self.makeFolder(folder)
            try Self.write("+memory +pids", to: folder + "/cgroup.subtree_control")
            poolFolders = [folder]
        }
    }

    /// Reads the host's layout and makes the pool's groups; the reason when it cannot.
    static func prepare(poolID: String) -> Result<SandboxCgroups, IsolationError> {
        let mountinfo = KernelFile.read("/proc/self/mountinfo") ?? ""
        let own = KernelFile.read("/proc/self/cgroup") ?? ""
        let layout = CgroupLayout.plan(mountinfo: mountinfo, selfCgroup: own) {
            try? String(contentsOfFile: $0 + "/cgroup.controllers", encoding: .utf8)
        }
        do {
            return .success(try SandboxCgroups(layout: layout, poolID: poolID))
        } catch let error as IsolationError {
            return .failure(error)
        } catch {
            return .failure(IsolationError("cannot make control groups: \(error)"))
        }
    }

    var version: String {
        if case .v2 = layout { return "v2" }
        return "v1"
    }

    /// A group for one sandbox with its limits set.
    func make(sandbox: String, memoryMB: Int, processes: Int) throws -> SandboxCgroup {
        let folders = poolFolders.map { $0 + "/" + sandbox }
        for folder in folders { try Self.makeFolder(folder) }
        do {
            // Limits first, so that nothing ever runs in the group without them.
            try setLimits(folders, memoryMB: memoryMB, processes: processes)
            // v1: a thread of the daemon's waits in the groups to start the sandbox's processes.
            var home: [String]?
            if case .v1(let memory, let pids) = layout { home = [memory, pids] }
            return try SandboxCgroup(folders: folders, version: version, spawnerHome: home)
        } catch {
            folders.forEach { rmdir($0) }
            throw error
        }
    }

    /// Sets a sandbox group's limits (a warm sandbox's, when the provision asks for others).
    func setLimits(_ folders: [String], memoryMB: Int, processes: Int) throws {
        let bytes = String(UInt64(memoryMB) << 20)
        switch layout {
        case .v1:
            // memsw must stay >= the memory limit: raise it first when growing, after when shrinking.
            let memsw = folders[0] + "/memory.memsw.limit_in_bytes"
            try? Self.write(bytes, to: memsw)
            try Self.write(bytes, to: folders[0] + "/memory.limit_in_bytes")
            // With swap accounting, swap counts too (no file without it; then there is no swap to count).
            try? Self.write(bytes, to: memsw)
            try Self.write(String(processes), to: folders[1] + "/pids.max")
        case .v2:
            try Self.write(bytes, to: folders[0] + "/memory.max")
            try? Self.write("0", to: folders[0] + "/memory.swap.max")
            try Self.write(String(processes), to: folders[0] + "/pids.max")
        case .unavailable:
            break
        }
    }

    /// Removes the pool's groups (sandbox groups first); at shutdown, after every process died.
    func removeAll() {
        for folder in poolFolders {
            let children = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
            for child in children where child.hasPrefix("sb_") { rmdir(folder + "/" + child) }
            rmdir(folder)
        }
    }

    /// Removes the groups of pools that died without removing them (SIGKILL): `drover-pool_…`
    /// folders whose pool's pid (the id's second-to-last part) no longer runs. A group that still
    /// holds a process is left as it is (rmdir refuses).
    static func sweepStale(in parents: [String]) {
        for parent in parents {
            for entry in (try? FileManager.default.contentsOfDirectory(atPath: parent)) ?? [] where entry.hasPrefix("drover-pool_") {
                let parts = entry.split(separator: "_")
                guard parts.count >= 3, let pid = pid_t(parts[parts.count - 2]), pid != getpid() else { continue }
                guard kill(pid, 0) != 0 && errno == ESRCH else { continue }
                let folder = parent + "/" + entry
                for child in (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [] where child.hasPrefix("sb_") {
                    rmdir(folder + "/" + child)
                }
                rmdir(folder)
            }
        }
    }

    static func makeFolder(_ path: String) throws {
        guard mkdir(path, 0o755) == 0 || errno == EEXIST else { throw SystemError(errno: errno, call: "mkdir \(path)") }
    }

    static func write(_ text: String, to path: String) throws {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SystemError(errno: errno, call: "open \(path)") }
        defer { close(fd) }
        let written = text.withCString { Glibc.write(fd, $0, strlen($0)) }
        guard written >= 0 else { throw SystemError(errno: errno, call: "write \(path)") }
    }

    private static func enableControllers(in own: String, movingSelfTo leaf: String) throws {
        let control = own + "/cgroup.subtree_control"
        let enabled = (try? String(contentsOfFile: control, encoding: .utf8)) ?? ""
        if enabled.contains("memory") && enabled.contains("pids") { return }
        do {
            try write("+memory +pids", to: control)
        } catch let error as SystemError where error.errno == EBUSY {
            // The group holds processes (this one): move into a leaf, then enable.
            try makeFolder(leaf)
            try write(String(getpid()), to: leaf + "/cgroup.procs")
            try write("+memory +pids", to: control)
        }
    }
}

/// One sandbox's control group(s): on v1 with a spawner thread inside them, on v2 with
/// `cgroup.procs` held open for the launcher to join at each spawn.
final class SandboxCgroup: Sendable {
    let folders: [String]
    let procsFDs: [Int32]
    let version: String
    /// Starts the sandbox's processes from inside its groups (v1).
    let spawner: SandboxSpawner?

    init(folders: [String], version: String, spawnerHome: [String]?) throws {
        var fds: [Int32] = []
        for folder in folders {
            let fd = open(folder + "/cgroup.procs", O_WRONLY | O_CLOEXEC)
            guard fd >= 0 else {
                let failure = SystemError(errno: errno, call: "open \(folder)/cgroup.procs")
                fds.forEach { close($0) }
                throw failure
            }
            fds.append(fd)
        }
        self.folders = folders
        self.procsFDs = fds
        self.version = version
        do {
            spawner = try spawnerHome.map { try SandboxSpawner(joining: folders, home: $0) }
        } catch {
            fds.forEach { close($0) }
            throw error
        }
    }

    deinit { procsFDs.forEach { close($0) } }

    /// Times the kernel's OOM killer acted in this group (nil when the kernel does not say).
    var oomKills: Int? {
        let file = version == "v2" ? folders[0] + "/memory.events" : folders[0] + "/memory.oom_control"
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("oom_kill ") {
            return Int(line.dropFirst("oom_kill ".count))
        }
        return nil
    }

    /// Kills every process in the group, then removes it; gives up after `timeout` seconds (the
    /// group then stays, empty of anything but processes the kernel has not reaped yet).
    func remove(timeout: Double = 2) {
        spawner?.stop()
        let deadline = ContinuousClock.now + .seconds(timeout)
        for folder in folders {
            while rmdir(folder) != 0 && errno == EBUSY && ContinuousClock.now < deadline {
                if version == "v2", (try? SandboxCgroups.write("1", to: folder + "/cgroup.kill")) != nil {
                    usleep(2_000)
                    continue
                }
                let pids = ((try? String(contentsOfFile: folder + "/cgroup.procs", encoding: .utf8)) ?? "").split(separator: "\n")
                for pid in pids.compactMap({ pid_t($0) }) { kill(pid, SIGKILL) }
                usleep(2_000)
            }
        }
    }
}
