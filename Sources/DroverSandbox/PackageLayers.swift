import DroverCore
import DroverIO
import Foundation
import Synchronization

/// A prepared set of packages, mounted into a sandbox at `PackageInstaller.mount`: read-only in
/// every sandbox of the environment; writable only in the build sandbox that installs it.
struct PackageLayer: Sendable {
    var path: String
    var packages: PackageSet
    var writable = false

    /// bubblewrap's arguments: the layer, and for the build what apt reads of the host (its
    /// sources and keys, dpkg's status, which says what the host has already).
    var binds: [String] {
        guard writable else { return ["--ro-bind", path, PackageInstaller.mount] }
        return ["--bind", path, PackageInstaller.mount]
            + ["/etc/apt", "/var/lib/dpkg", "/etc/dpkg"].flatMap { ["--ro-bind-try", $0, $0] }
    }
}

/// The pool's package layers: one folder per package set and source (`PackageInstaller.key`),
/// installed once, by the first provision that needs it, and mounted by every later one. A second
/// session of the environment (or any environment listing the same packages) starts without
/// installing anything. Provisions that need a layer being built wait for that one build; a
/// failed build is not kept, so the next provision tries again. A layer is built in a folder of
/// its own and renamed into place when complete, so a pool killed mid-install leaves no half
/// layer behind (`--package-cache` keeps them across restarts).
final class PackageLayers: Sendable {
    typealias Failure = PoolProtocol.Failure

    let root: String
    let installer: PackageInstaller
    /// The registries' hosts (`PackageInstaller.hosts`), read at every networked provision.
    let hosts: [String]
    /// Seconds one install may take.
    let timeout: Double
    private let log: Log
    /// Making, moving and removing layer folders (a failed install's can be large): blocking
    /// work, off Swift's cooperative threads.
    private let files = BlockingPool(name: "drover.pool.layers", threads: 1)
    private let builds = Mutex<[String: [CheckedContinuation<Result<String, Failure>, Never>]]>([:])
    private let counts = Mutex((built: 0, reused: 0))

    init(root: String, installer: PackageInstaller, timeout: Double, log: Log) throws {
        self.root = root
        self.installer = installer
        hosts = installer.hosts
        self.timeout = timeout
        self.log = log
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        // Sandboxes run as other uids and must reach their layer, but may not list the cache.
        chmod(root, 0o711)
        // What a pool killed mid-install left: never a layer, always safe to remove.
        for name in (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? [] where name.contains(".partial-") {
            try? FileManager.default.removeItem(atPath: root + "/" + name)
        }
    }

    /// Layers installed and reused since start (`stats`).
    var stats: JSONValue {
        let (built, reused) = counts.withLock { $0 }
        return ["built": .number(Double(built)), "reused": .number(Double(reused))]
    }

    /// The layer of `packages`: the one on disk, or the one being built, or a new one built by
    /// `install` (given the folder to fill and the script; it answers the failure to report).
    func layer(for packages: PackageSet, install: @Sendable (String, String) async -> Failure?) async throws(Failure) -> PackageLayer {
        let key = installer.key(packages)
        let folder = root + "/" + key
        if FileManager.default.fileExists(atPath: folder) {
            counts.withLock { $0.reused += 1 }
            return PackageLayer(path: folder, packages: packages)
        }
        enum Role { case build, wait }
        let role = builds.withLock { builds -> Role in
            if builds[key] != nil { return .wait }
            builds[key] = []
            return .build
        }
        let outcome: Result<String, Failure>
        switch role {
        case .wait:
            outcome = await withCheckedContinuation { continuation in
                let waiting = builds.withLock { builds -> Bool in
                    guard builds[key] != nil else { return false }
                    builds[key]!.append(continuation)
                    return true
                }
                // The build ended between the two looks: its layer is there, or it failed.
                if !waiting {
                    continuation.resume(returning: FileManager.default.fileExists(atPath: folder)
                        ? .success(folder) : .failure(Failure(.packagesFailed, "the environment's packages could not be installed; try again")))
                }
            }
            if case .success = outcome { counts.withLock { $0.reused += 1 } }
        case .build:
            outcome = await build(packages, key: key, folder: folder, install: install)
            let waiting = builds.withLock { $0.removeValue(forKey: key) } ?? []
            for continuation in waiting { continuation.resume(returning: outcome) }
        }
        return try outcome.map { PackageLayer(path: $0, packages: packages) }.get()
    }

    private func build(_ packages: PackageSet, key: String, folder: String, install: @Sendable (String, String) async -> Failure?) async -> Result<String, Failure> {
        let partial = folder + ".partial-" + SandboxPool.randomHex()
        let started = ContinuousClock.now
        log.info("installing packages", ("layer", .string(key)), ("packages", packages.json))
        do {
            try await files.run {
                try FileManager.default.createDirectory(atPath: partial, withIntermediateDirectories: false)
                chmod(partial, 0o755)
            }
        } catch {
            return .failure(Failure(.internal, "cannot make the package layer's folder: \(error)"))
        }
        if let failure = await install(partial, installer.script(packages)) {
            _ = try? await files.run { try FileManager.default.removeItem(atPath: partial) }
            log.warning("packages not installed", ("layer", .string(key)), ("error", .string(failure.message)))
            return .failure(failure)
        }
        let moved = (try? await files.run { () -> Int32 in
            guard rename(partial, folder) == 0 else {
                let code = errno
                try? FileManager.default.removeItem(atPath: partial)
                return code
            }
            return 0
        }) ?? EIO
        guard moved == 0 else { return .failure(Failure(.internal, "cannot move the package layer into place: errno \(moved)")) }
        counts.withLock { $0.built += 1 }
        log.info("packages installed", ("layer", .string(key)), ("seconds", .number((ContinuousClock.now - started) / .seconds(1))))
        return .success(folder)
    }
}
