import CDroverSys
import DroverIO
import DroverCore
import Foundation
import Synchronization

/// A sandbox's session files: uploaded files mounted read-only where the session's resources say
/// (`/mnt/session/uploads/<file_id>` by default), and `/mnt/session/outputs`, the folder whose
/// files the harness collects as the session's output files after each turn.
///
/// Both live in the sandbox's home, inside its disk quota: `session/uploads/<file_id>` (owned by
/// the pool, mode 0444, bound read-only, so the sandbox cannot change them whatever it runs) and
/// `session/outputs` (the sandbox's own). Uploads arrive in chunks (`put`), written to a part
/// file and renamed into place when the last chunk is in, so a call never sees half a file.
final class SessionFiles: Sendable {
    /// The largest output file handed back in one reply (base64 in a reply line).
    static let maxOutputBytes = 32 << 20

    typealias Failure = PoolProtocol.Failure

    let uploads: String
    let outputs: String
    /// Memory stores' folders, one per store (`memory/<store id>`).
    let memory: String
    let owner: (uid: UInt32, gid: UInt32)?
    /// Mounted uploads: file id → mount path.
    private let mounted = Mutex<[String: String]>([:])
    /// Mounted memory stores: store id → mount path and whether read-only.
    private let stores = Mutex<[String: (mountPath: String, readOnly: Bool)]>([:])
    /// Per read-write store, each memory as it was mounted or last written back: path → its
    /// content hash in the store (the write-back's precondition) and bytes. Kept here, with the
    /// sandbox, rather than in the harness, so that a harness taking over a session whose holder
    /// died writes back what the agent changed since (`memoryChanges`).
    private let bases = Mutex<[String: [String: MemoryBase]]>([:])

    struct MemoryBase: Sendable {
        var sha256: String?
        var bytes: [UInt8]
    }
    /// Files a store's folder hands back at most (`memoryFiles`), and the bytes of one memory.
    static let maxMemoryFiles = 10_000
    static let maxMemoryBytes = 102_400

    init(home: String, owner: (uid: UInt32, gid: UInt32)?) throws {
        let session = home + "/session"
        uploads = session + "/uploads"
        outputs = session + "/outputs"
        memory = session + "/memory"
        self.owner = owner
        for folder in [session, uploads, outputs, memory] {
            try retryingEINTR("mkdir \(folder)") { mkdir(folder, folder == outputs ? 0o700 : 0o755) }
        }
        if let owner { try retryingEINTR("chown") { chown(outputs, owner.uid, owner.gid) } }
    }

    /// What `bubblewrap` binds for every call: each upload read-only at its mount path, then the
    /// outputs folder writable.
    var binds: [String] {
        var argv: [String] = []
        for (fileID, mountPath) in mounted.withLock({ $0 }).sorted(by: { $0.value < $1.value }) {
            argv += ["--ro-bind", uploads + "/" + fileID, mountPath]
        }
        for (storeID, mount) in stores.withLock({ $0 }).sorted(by: { $0.value.mountPath < $1.value.mountPath }) {
            argv += [mount.readOnly ? "--ro-bind" : "--bind", memory + "/" + storeID, mount.mountPath]
        }
        return argv + ["--bind", outputs, SessionFilePath.outputs]
    }

    /// Writes memories into a store's folder and mounts it at `mountPath` (read-only or not) for
    /// every call from now on. `reset` empties the folder first (a store is sent whole, in as many
    /// requests as its size needs, the first with `reset`). The files belong to the sandbox's
    /// user, so a read-write store can be changed by what runs in it; a read-only one is bound
    /// read-only, which no process in the sandbox can undo.
    func putMemory(storeID: String, mountPath: String, readOnly: Bool, files: [(path: String, bytes: [UInt8], sha256: String?)], reset: Bool) throws(Failure) {
        guard storeID.hasPrefix("memstore_"), storeID.count <= 80,
              storeID.utf8.allSatisfy({ $0 == 95 || (48...57).contains($0) || (97...122).contains($0) }) else {
            throw Failure(.badRequest, "memory_store_id must be a memory store id (memstore_…)")
        }
        guard mountPath.hasPrefix("/mnt/memory/"), !mountPath.dropFirst("/mnt/memory/".count).contains("/"),
              mountPath.count > "/mnt/memory/".count, !mountPath.hasSuffix("/."), !mountPath.hasSuffix("/..") else {
            throw Failure(.badRequest, "mount_path must be /mnt/memory/<name>")
        }
        let folder = memory + "/" + storeID
        mkdir(folder, 0o755)
        // Emptied, not replaced: a call still running (one a dead harness sent, that its successor
        // waits for) has the folder itself bound, and must go on writing where the pool reads.
        if reset {
            for name in (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [] {
                try? FileManager.default.removeItem(atPath: folder + "/" + name)
            }
        }
        if let owner { chown(folder, owner.uid, owner.gid) }
        // What runs in a read-write store may have made links in it: every step below is taken from
        // the folder's own descriptor and never follows one (a link where a folder or file should be
        // is refused), so no write of the pool's lands outside the store.
        let root = Glibc.open(folder, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard root >= 0 else { throw Failure(.internal, "cannot open memory folder: \(String(cString: strerror(errno)))") }
        defer { close(root) }
        for file in files {
            let segments = file.path.split(separator: "/", omittingEmptySubsequences: false).dropFirst().map(String.init)
            guard file.path.hasPrefix("/"), !segments.isEmpty, segments.allSatisfy({ !$0.isEmpty && $0 != "." && $0 != ".." }),
                  !file.path.utf8.contains(0), file.bytes.count <= Self.maxMemoryBytes else {
                throw Failure(.badRequest, "a memory path is /segments (no empty, . or ..) and its content at most \(Self.maxMemoryBytes) bytes")
            }
            var directory = dup(root)
            defer { close(directory) }
            for segment in segments.dropLast() {
                if mkdirat(directory, segment, 0o755) == 0, let owner { fchownat(directory, segment, owner.uid, owner.gid, Int32(AT_SYMLINK_NOFOLLOW)) }
                let next = openat(directory, segment, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                guard next >= 0 else { throw Failure(.pathOutsideSandbox, "memory \(file.path): \(segment) is not a folder") }
                close(directory)
                directory = next
            }
            let fd = openat(directory, segments.last!, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0o644)
            guard fd >= 0 else { throw Failure(.internal, "cannot write memory \(file.path): \(String(cString: strerror(errno)))") }
            defer { close(fd) }
            guard FileWriting.writeAll(fd, file.bytes) == nil else {
                throw Failure(.tooLarge, "cannot write memory \(file.path): the sandbox's disk quota (disk_mb) is full")
            }
            if let owner { fchown(fd, owner.uid, owner.gid) }
        }
        stores.withLock { $0[storeID] = (mountPath, readOnly) }
        bases.withLock { bases in
            if reset || readOnly { bases[storeID] = nil }
            guard !readOnly else { return }
            for file in files { bases[storeID, default: [:]][file.path] = MemoryBase(sha256: file.sha256, bytes: file.bytes) }
        }
    }

    /// Records a memory as written back (nil: deleted), so the next `memoryChanges` compares with it.
    func memorySynced(storeID: String, path: String, _ base: MemoryBase?) throws(Failure) {
        guard stores.withLock({ $0[storeID] })?.readOnly == false else { throw Failure(.fileNotFound, "memory store \(storeID) is not mounted read-write in this sandbox") }
        bases.withLock { $0[storeID, default: [:]][path] = base }
    }

    /// What changed in a read-write store's folder since it was mounted or last written back:
    /// files new or with other bytes (with the content hash they were mounted with, if any), and
    /// mounted memories whose file is gone.
    func memoryChanges(storeID: String) throws(Failure) -> JSONValue {
        guard stores.withLock({ $0[storeID] })?.readOnly == false else { throw Failure(.fileNotFound, "memory store \(storeID) is not mounted read-write in this sandbox") }
        let (current, truncated) = memoryFiles(storeID: storeID)
        let base = bases.withLock { $0[storeID] ?? [:] }
        var changes: [JSONValue] = []
        for file in current {
            let before = base[file.path]
            if let bytes = file.bytes, before?.bytes == bytes { continue }
            var change: [String: JSONValue] = ["path": .string(file.path), "base_sha256": before.flatMap(\.sha256).map(JSONValue.string) ?? .null]
            if let bytes = file.bytes { change["data_base64"] = .string(Data(bytes).base64EncodedString()) } else { change["too_large"] = true }
            changes.append(.object(change))
        }
        let present = Set(current.map(\.path))
        // A folder cut short by the file limit says nothing of the files beyond it.
        let removed: [JSONValue] = truncated ? [] : base.keys.sorted().filter { !present.contains($0) }.map { path in
            ["path": .string(path), "base_sha256": base[path]?.sha256.map(JSONValue.string) ?? .null]
        }
        return ["changes": .array(changes), "removed": .array(removed), "truncated": .bool(truncated)]
    }

    /// A mounted store's files as they are now: path (from the store's root) and bytes, regular
    /// files only; one larger than a memory may be is listed with `too_large` and no content.
    /// The walk goes from descriptor to descriptor and never follows a link, so nothing the
    /// sandbox arranges makes the pool read a file outside the store.
    private func memoryFiles(storeID: String) -> (files: [(path: String, bytes: [UInt8]?)], truncated: Bool) {
        var found: [(path: String, bytes: [UInt8]?)] = []
        var tooMany = false
        func walk(_ directory: Int32, _ relative: String, depth: Int) {
            guard depth <= 20, let listing = fdopendir(dup(directory)) else { return }
            defer { closedir(listing) }
            var names: [String] = []
            while let entry = readdir(listing) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
                if name != "." && name != ".." { names.append(name) }
            }
            for name in names.sorted() {
                guard found.count < Self.maxMemoryFiles else {
                    tooMany = true
                    return
                }
                let fd = openat(directory, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
                guard fd >= 0 else { continue }
                defer { close(fd) }
                var info = stat()
                guard fstat(fd, &info) == 0 else { continue }
                switch info.st_mode & S_IFMT {
                case S_IFDIR: walk(fd, relative + "/" + name, depth: depth + 1)
                case S_IFREG:
                    guard Int(info.st_size) <= Self.maxMemoryBytes else {
                        found.append((relative + "/" + name, nil))
                        continue
                    }
                    found.append((relative + "/" + name, Self.contents(fd, size: Int(info.st_size))))
                default: continue
                }
            }
        }
        let root = Glibc.open(memory + "/" + storeID, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard root >= 0 else { return ([], false) }
        defer { close(root) }
        walk(root, "", depth: 0)
        return (found, tooMany)
    }

    /// The mounted uploads and the output files, with their sizes.
    var listing: JSONValue {
        let files = mounted.withLock { $0 }.sorted { $0.key < $1.key }.map { fileID, mountPath -> JSONValue in
            ["file_id": .string(fileID), "mount_path": .string(mountPath), "size_bytes": .number(Double(Self.size(uploads + "/" + fileID) ?? 0))]
        }
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: outputs)) ?? []).sorted()
        let outputs = names.compactMap { name -> JSONValue? in
            var info = stat()
            guard lstat(self.outputs + "/" + name, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { return nil }
            return ["name": .string(name), "size_bytes": .number(Double(info.st_size)),
                    "modified_ns": .number(Double(info.st_mtim.tv_sec) * 1e9 + Double(info.st_mtim.tv_nsec))]
        }
        return ["files": .array(files), "outputs": .array(outputs)]
    }

    /// Writes a chunk of upload `fileID` at `offset`; with `last`, the file takes its place at
    /// `mountPath` for every call from now on.
    func put(fileID: String, mountPath: String, offset: Int, bytes: [UInt8], last: Bool) throws(Failure) {
        try Self.checkID(fileID)
        try Self.checkMountPath(mountPath)
        let part = uploads + "/" + fileID + ".part"
        let fd = Glibc.open(part, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW | (offset == 0 ? O_TRUNC : 0), 0o644)
        guard fd >= 0 else { throw Failure(.internal, "cannot write \(fileID): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        if let failed = FileWriting.writeAll(fd, bytes, at: offset) {
            let reason = failed == ENOSPC ? "the sandbox's disk quota (disk_mb) is full" : String(cString: strerror(failed))
            throw Failure(.tooLarge, "cannot write \(fileID): \(reason)")
        }
        guard last else { return }
        fchmod(fd, 0o444)
        guard rename(part, uploads + "/" + fileID) == 0 else { throw Failure(.internal, "cannot place \(fileID): \(String(cString: strerror(errno)))") }
        mounted.withLock { $0[fileID] = mountPath }
    }

    func remove(fileID: String) throws(Failure) {
        try Self.checkID(fileID)
        mounted.withLock { _ = $0.removeValue(forKey: fileID) }
        unlink(uploads + "/" + fileID)
        unlink(uploads + "/" + fileID + ".part")
    }

    /// An output file's bytes. Names are single path components; a link or anything but a
    /// regular file is refused, so the sandbox cannot make the pool read elsewhere.
    func output(_ name: String) throws(Failure) -> [UInt8] {
        guard !name.isEmpty, name != ".", name != "..", !name.contains("/"), !name.utf8.contains(0) else {
            throw Failure(.badRequest, "an output name is one path component")
        }
        let fd = Glibc.open(outputs + "/" + name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)
        guard fd >= 0 else { throw Failure(.fileNotFound, "no output \(name)") }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { throw Failure(.notARegularFile, "output \(name) is not a regular file") }
        guard Int(info.st_size) <= Self.maxOutputBytes else { throw Failure(.tooLarge, "output \(name) is larger than \(Self.maxOutputBytes) bytes") }
        return Self.contents(fd, size: Int(info.st_size))
    }

    /// Up to `size` bytes of an open regular file, however many reads it takes.
    private static func contents(_ fd: Int32, size: Int) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: size)
        var done = 0
        while done < bytes.count {
            let count = bytes[done...].withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { break }
            done += count
        }
        return Array(bytes[..<done])
    }

    private static func size(_ path: String) -> Int? {
        var info = stat()
        guard lstat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { return nil }
        return Int(info.st_size)
    }

    static func checkID(_ fileID: String) throws(Failure) {
        guard SessionFilePath.isFileID(fileID) else { throw Failure(.badRequest, "file_id must be a file id (file_…)") }
    }

    static func checkMountPath(_ path: String) throws(Failure) {
        guard SessionFilePath.isMountPath(path) else {
            throw Failure(.badRequest, "mount_path must be an absolute path under /mnt/ (not \(SessionFilePath.outputs))")
        }
    }
}
