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
/// (`drover_spawn`) in the child before it execs bubblewrap, which joins the sandbox's control
/// group there too; bubblewrap loads the seccomp filter (`SeccompFilter`) last, before exec.
public struct Isolation: Sendable {
    public enum Mode: Sendable, Equatable {
        case bubblewrap
        /// Plain child processes in the workspace: for development only; logged loudly.
        case none
    }

    public let mode: Mode
    let bwrap: String
    let isRoot: Bool
    /// The seccomp program bubblewrap loads before it runs a sandboxed command (`SeccompFilter`);
    /// nil with `.none`, or when started with `--no-seccomp`.
    let seccomp: [UInt8]?

    /// A pool's copy of the few `/etc` entries sandboxes see (`sharingEtc`), bound as one mount
    /// instead of one each: bubblewrap reads the whole mount table at each of its mounts.
    private(set) var etc: String?

    /// What of the host's `/etc` a sandbox sees: the dynamic linker's cache, the time zone and the
    /// `alternatives` links that name programs in `/usr`. Networked calls also see the CA roots.
    static let etcEntries = ["alternatives", "ld.so.cache", "localtime"]

    /// Where more of the host's `/etc` is bound for some calls (a networked call's CA roots, a
    /// package build's apt sources and dpkg's configuration, `PackageLayers`): empty folders in
    /// the copy, since bubblewrap cannot make a mountpoint in a read-only `/etc`.
    static let etcMountpoints = ["ssl", "ca-certificates", "apt", "dpkg"]

    /// Where the workspace appears inside the sandbox.
    public static let workspaceMount = "/workspace"

    /// Finds the programs it needs; with `.bubblewrap`, checks that a sandbox really starts.
    public init(mode: Mode, seccomp: Bool = true) throws {
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
            self.seccomp = seccomp ? try SeccompFilter.program() : nil
        } else {
            bwrap = ""
            self.seccomp = nil
        }
    }

    /// How to start `command` (argv, no shell involved) in a sandbox: bubblewrap's command line,
    /// the uid to drop to, the rlimits (set by the launcher in the child before exec), the
    /// control group to join and the seccomp program to hand bubblewrap.
    ///
    /// With a control group, memory is bounded per sandbox there and RLIMIT_AS is not set (it
    /// counts address space, which runtimes such as Go's and the JVM reserve far beyond use).
    /// Whether sandboxes can be given a network of their own (a namespace made before
    /// bubblewrap starts, which takes root).
    var networking: Bool { mode == .bubblewrap && isRoot }

    /// With `networked`, the call gets a network namespace of its own whose only listener is the
    /// pool's egress proxy (`EgressProxy`), and the proxy variables point at it.
    ///
    /// With a package `layer`, the layer is mounted at `PackageInstaller.mount` and the calls'
    /// PATH and search paths lead into it.
    func launch(_ command: [String], workspace: Workspace, uid: UInt32, resources: SandboxResources, cgroup: SandboxCgroup?,
                networked: Bool = false, layer: PackageLayer? = nil) -> Launch {
        var limits: [(Int32, UInt64)] = [
            (Int32(RLIMIT_CPU.rawValue), UInt64(resources.cpuSeconds)),
            (Int32(RLIMIT_FSIZE.rawValue), UInt64(resources.diskMB) << 20),
            (drover_rlimit_nproc, UInt64(resources.processes)),
            (Int32(RLIMIT_CORE.rawValue), 0),
        ]
        if cgroup == nil { limits.append((Int32(RLIMIT_AS.rawValue), UInt64(resources.memoryMB) << 20)) }
        switch mode {
        case .bubblewrap:
            // A workspace that is a mount of its own is all the launcher keeps of the pool's
            // workspaces, and it appears at their parent's path (`Workspace.mountParent`).
            let narrow = workspace.parent.map { (parent: $0, home: workspace.home) }
            func seen(_ path: String) -> String {
                guard let narrow, path == narrow.home || path.hasPrefix(narrow.home + "/") else { return path }
                return narrow.parent + path.dropFirst(narrow.home.count)
            }
            // /tmp: the sandbox's own folder inside its quota, else a tmpfs capped at disk_mb.
            let tmp = workspace.tmp.map { ["--bind", seen($0), "/tmp"] } ?? ["--size", String(resources.diskMB << 20), "--tmpfs", "/tmp"]
            var argv = [
                bwrap, "--unshare-all", "--unshare-user",
            ]
            // A networked call keeps the namespace the launcher made, whose only way out is the proxy.
            if networked { argv.append("--share-net") }
            argv += [
                "--die-with-parent", "--new-session", "--hostname", "sandbox",
                "--ro-bind", "/usr", "/usr",
                "--symlink", "usr/bin", "/bin", "--symlink", "usr/sbin", "/sbin",
                "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
            ]
            argv += etc.map { ["--ro-bind", $0, "/etc"] } ?? Self.etcEntries.flatMap { ["--ro-bind-try", "/etc/" + $0, "/etc/" + $0] }
            argv += ["--proc", "/proc", "--dev", "/dev"]
            argv += tmp
            // The session's uploaded files (read-only) and its outputs folder.
            argv += workspace.files.binds.map(seen)
            if let layer { argv += layer.binds }
            // The public CA roots, for TLS through the proxy's tunnels.
            if networked { argv += ["/etc/ssl", "/etc/ca-certificates"].flatMap { ["--ro-bind-try", $0, $0] } }
            argv += [
                "--bind", seen(workspace.path), Self.workspaceMount, "--chdir", Self.workspaceMount,
                // bwrap builds the root on a tmpfs; make it read-only so only /workspace and /tmp take writes.
                "--remount-ro", "/",
                "--clearenv",
            ]
            let variables = layer.map { PackageInstaller.environment($0.packages) } ?? [("PATH", "/usr/local/bin:/usr/bin:/bin")]
            for (name, value) in variables { argv += ["--setenv", name, value] }
            argv += [
                "--setenv", "HOME", Self.workspaceMount, "--setenv", "TMPDIR", "/tmp", "--setenv", "LANG", "C.UTF-8",
            ]
            // No nested user namespaces: the seccomp filter refuses every unshare and every clone
            // with a namespace flag, so bubblewrap's own guard, which costs each call a user
            // namespace more, is needed only without it.
            if seccomp == nil { argv.append("--disable-userns") }
            if networked {
                let proxy = "http://127.0.0.1:\(SandboxNetwork.proxyPort)"
                for name in ["http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"] { argv += ["--setenv", name, proxy] }
                argv += ["--setenv", "GIT_TERMINAL_PROMPT", "0"]
            }
            // The launcher hands the program over as descriptor 3.
            if seccomp != nil { argv += ["--seccomp", "3"] }
            argv += ["--"] + command
            // As root, drop to the sandbox's own uid (root is exempt from RLIMIT_NPROC).
            return Launch(
                argv: argv, ids: isRoot ? (uid, uid) : nil, limits: limits, seccomp: seccomp, cgroup: cgroup, networked: networked, narrow: narrow)
        case .none:
            let argv = ["/usr/bin/env", "-i", "PATH=/usr/local/bin:/usr/bin:/bin", "HOME=\(workspace.path)", "LANG=C.UTF-8"] + command
            return Launch(argv: argv, ids: nil, limits: limits, seccomp: nil, cgroup: cgroup)
        }
    }

    /// The same isolation with `/etc` from a copy made in `folder` (one mount per call instead of
    /// three). The copy is taken when the pool starts: a pool restart picks up the host's
    /// changes. Unchanged if the copy cannot be made.
    func sharingEtc(in folder: String) -> Isolation {
        guard mode == .bubblewrap else { return self }
        let files = FileManager.default
        do {
            try files.createDirectory(atPath: folder, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o755])
            for entry in Self.etcEntries where (try? files.attributesOfItem(atPath: "/etc/" + entry)) != nil {
                // Symbolic links stay links (into /usr, which every sandbox sees).
                try files.copyItem(atPath: "/etc/" + entry, toPath: folder + "/" + entry)
            }
            for mountpoint in Self.etcMountpoints { try files.createDirectory(atPath: folder + "/" + mountpoint, withIntermediateDirectories: false) }
        } catch {
            try? files.removeItem(atPath: folder)
            return self
        }
        var shared = self
        shared.etc = folder
        return shared
    }

    /// The environment bubblewrap starts with (it clears it again for the sandbox).
    static let spawnEnvironment = ["PATH=/usr/bin:/bin"]

    /// Translates a path as the sandbox sees it (`/workspace/x`) for commands run in `.none` mode.
    func commandPath(_ relative: String, workspace: String) -> String {
        let base = mode == .bubblewrap ? Self.workspaceMount : workspace
        return relative.isEmpty ? base : base + "/" + relative
    }
}

/// A process to start: its command line, the uid/gid to drop to, rlimits (RLIMIT_*, value), the
/// seccomp program to pass as descriptor 3 and the control group to join.
struct Launch: Sendable {
    var argv: [String]
    var ids: (uid: UInt32, gid: UInt32)?
    var limits: [(Int32, UInt64)]
    var seccomp: [UInt8]?
    var cgroup: SandboxCgroup?
    /// A network namespace of its own, made by the launcher before bubblewrap starts; its
    /// listening socket comes back to the pool (`ProcessRunner.Started.proxyListener`).
    var networked = false
    /// The launcher's mount namespace keeps only this workspace of the pool's (at `parent`'s
    /// path): `drover_spawn_options.narrow_parent`.
    var narrow: (parent: String, home: String)? = nil
}

/// The daemon cannot isolate sandboxes as asked.
public struct IsolationError: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}
