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
    static let outputsMount = "/mnt/session/outputs"
    /// The largest output file handed back in one reply (base64 in a reply line).
    static let maxOutputBytes = 32 << 20

    typealias Failure = PoolProtocol.Failure

    let uploads: String
    let outputs: String
    /// Mounted uploads: file id → mount path.
    private let mounted = Mutex<[String: String]>([:])

    init(home: String, owner: (uid: UInt32, gid: UInt32)?) throws {
        let session = home + "/session"
        uploads = session + "/uploads"
        outputs = session + "/outputs"
        for folder in [session, uploads, outputs] {
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
        return argv + ["--bind", outputs, Self.outputsMount]
    }

    /// The mounted uploads and the output files, with their sizes.
    var listing: JSONValue {
        let files = mounted.withLock { $0 }.sorted { $0.key < $1.key }.map { fileID, mountPath -> JSONValue in
            ["file_id": .string(fileID), "mount_path": .string(mountPath), "size_bytes": .number(Double(Self.size(uploads + "/" + fileID) ?? 0))]
        }
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: outputs)) ?? []).sorted()
        let outputs = names.compactMap { name -> JSONValue? in
            guard let size = Self.size(self.outputs + "/" + name) else { return nil }
            return ["name": .string(name), "size_bytes": .number(Double(size))]
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
        var written = 0
        while written < bytes.count {
            let count = bytes[written...].withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, off_t(offset + written)) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else {
                let reason = errno == ENOSPC ? "the sandbox's disk quota (disk_mb) is full" : String(cString: strerror(errno))
                throw Failure(.tooLarge, "cannot write \(fileID): \(reason)")
            }
            written += count
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
        var bytes = [UInt8](repeating: 0, count: Int(info.st_size))
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
        guard fileID.hasPrefix("file_"), fileID.count <= 64,
              fileID.utf8.allSatisfy({ $0 == 95 || (48...57).contains($0) || (97...122).contains($0) }) else {
            throw Failure(.badRequest, "file_id must be a file id (file_…)")
        }
    }

    /// Under `/mnt/`, not the outputs folder, without empty, `.` or `..` segments.
    static func checkMountPath(_ path: String) throws(Failure) {
        let segments = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
        guard path.hasPrefix("/mnt/"), path.utf8.count <= 1_024, segments.count >= 2,
              segments.allSatisfy({ !$0.isEmpty && $0 != "." && $0 != ".." }), !path.utf8.contains(where: { $0 < 0x20 }),
              path != outputsMount, !path.hasPrefix(outputsMount + "/") else {
            throw Failure(.badRequest, "mount_path must be an absolute path under /mnt/ (not \(outputsMount))")
        }
    }
}
