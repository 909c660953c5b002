import CDroverSys
import Foundation

/// How sandboxed commands are started.
///
/// With bubblewrap: new user, pid, network, ipc, uts, mount and cgroup namespaces; the system's
/// `/usr` read-only, a private `/tmp`, the sandbox's workspace at `/workspace`, an empty
/// environment plus PATH/HOME, `--die-with-parent` and `--new-session`; everything but `/workspace`
/// and `/tmp` is read-only. When the daemon runs as
/// root each sandbox also runs as a uid of its own (root is exempt from RLIMIT_NPROC, and distinct
/// uids keep one sandbox out of another's workspace). rlimits are set by the launcher
/// (`drover_spawn`) in the child before it execs bubblewrap.
public struct Isolation: Sendable {
    public enum Mode: Sendable, Equatable {
        case bubblewrap
        /// Plain child processes in the workspace: for development only; logged loudly.
        case none
    }

    public let mode: Mode
    let bwrap: String
    let isRoot: Bool

    /// Where the workspace appears inside the sandbox.
    public static let workspaceMount = "/workspace"

    /// Finds the programs it needs; with `.bubblewrap`, checks that a sandbox really starts.
    public init(mode: Mode) throws {
        self.mode = mode
        func find(_ name: String) -> String? {
            ["/usr/bin/", "/bin/", "/usr/sbin/", "/usr/local/bin/"].map { $0 + name }
                .first { FileManager.default.isExecutableFile(atPath: $0) }
        }
        isRoot = geteuid() == 0
        if mode == .bubblewrap {
            // DROVER_BWRAP names a bubblewrap binary explicitly (a packaged path, or a test's).
            let configured = ProcessInfo.processInfo.environment["DROVER_BWRAP"].flatMap { $0.isEmpty ? nil : $0 }
            guard let bwrap = configured.map({ FileManager.default.isExecutableFile(atPath: $0) ? $0 : nil }) ?? find("bwrap") else {
                throw IsolationError("bubblewrap (bwrap) is not installed; install the bubblewrap package, or start with --insecure-no-isolation")
            }
            self.bwrap = bwrap
        } else {
            bwrap = ""
        }
    }

    /// How to start `command` (argv, no shell involved) in a sandbox: bubblewrap's command line,
    /// the uid to drop to, and the rlimits, which the launcher sets in the child before exec.
    func launch(_ command: [String], workspace: String, uid: UInt32, resources: SandboxResources) -> Launch {
        let limits: [(Int32, UInt64)] = [
            (Int32(RLIMIT_CPU.rawValue), UInt64(resources.cpuSeconds)),
            (Int32(RLIMIT_AS.rawValue), UInt64(resources.memoryMB) << 20),
            (Int32(RLIMIT_FSIZE.rawValue), UInt64(resources.diskMB) << 20),
            (drover_rlimit_nproc, UInt64(resources.processes)),
            (Int32(RLIMIT_CORE.rawValue), 0),
        ]
        switch mode {
        case .bubblewrap:
            let argv = [
                bwrap, "--unshare-all", "--unshare-user", "--die-with-parent", "--new-session", "--hostname", "sandbox",
                "--ro-bind", "/usr", "/usr",
                "--symlink", "usr/bin", "/bin", "--symlink", "usr/sbin", "/sbin",
                "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
                "--ro-bind-try", "/etc/alternatives", "/etc/alternatives",
                "--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache",
                "--ro-bind-try", "/etc/localtime", "/etc/localtime",
                "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp",
                "--bind", workspace, Self.workspaceMount, "--chdir", Self.workspaceMount,
                // bwrap builds the root on a tmpfs; make it read-only so only /workspace and /tmp take writes.
                "--remount-ro", "/",
                "--clearenv", "--setenv", "PATH", "/usr/local/bin:/usr/bin:/bin",
                "--setenv", "HOME", Self.workspaceMount, "--setenv", "TMPDIR", "/tmp", "--setenv", "LANG", "C.UTF-8",
                "--disable-userns", "--",
            ] + command
            // As root, drop to the sandbox's own uid (root is exempt from RLIMIT_NPROC).
            return Launch(argv: argv, ids: isRoot ? (uid, uid) : nil, limits: limits)
        case .none:
            let argv = ["/usr/bin/env", "-i", "PATH=/usr/local/bin:/usr/bin:/bin", "HOME=\(workspace)", "LANG=C.UTF-8"] + command
            return Launch(argv: argv, ids: nil, limits: limits)
        }
    }

    /// The environment bubblewrap starts with (it clears it again for the sandbox).
    static let spawnEnvironment = ["PATH=/usr/bin:/bin"]

    /// Translates a path as the sandbox sees it (`/workspace/x`) for commands run in `.none` mode.
    func commandPath(_ relative: String, workspace: String) -> String {
        let base = mode == .bubblewrap ? Self.workspaceMount : workspace
        return relative.isEmpty ? base : base + "/" + relative
    }
}

/// A process to start: its command line, the uid/gid to drop to, and rlimits (RLIMIT_*, value).
struct Launch: Sendable {
    var argv: [String]
    var ids: (uid: UInt32, gid: UInt32)?
    var limits: [(Int32, UInt64)]
}

/// The daemon cannot isolate sandboxes as asked.
public struct IsolationError: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}
