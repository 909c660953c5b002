import CDroverSys
import DroverCore
import DroverIO
import Foundation

/// A sandbox's workspace folder on the host, and the file tools that work on it.
///
/// Paths are as the sandbox sees them: relative to `/workspace`, or absolute under it. Every open
/// goes through `openat2(RESOLVE_BENEATH)` from the workspace's own descriptor, so `..`, absolute
/// symlinks and symlinks that lead out are refused by the kernel (`path_outside_sandbox`), with no
/// window between a check and the use.
final class Workspace: Sendable {
    /// The sandbox's folder on the host: `workspace/` (its `/workspace`) and, with a disk quota,
    /// `tmp/` (its `/tmp`).
    let home: String
    /// The folder the sandbox sees as `/workspace`.
    let path: String
    /// The folder the sandbox sees as `/tmp`, when its `/tmp` is part of the quota (else each
    /// call gets a size-capped tmpfs of its own from bubblewrap).
    let tmp: String?
    let owner: (uid: UInt32, gid: UInt32)?
    /// Bytes the sandbox may write in all, when `home` is a size-capped tmpfs.
    let quotaBytes: Int?
    /// Uploaded files mounted in the sandbox and its outputs folder.
    let files: SessionFiles
    /// The mount the pool's workspaces sit under (`mountParent`), when `home` is a mount of its
    /// own under it: a call's launcher then sees `home` alone, at this path (`Isolation.launch`).
    let parent: String?
    private let rootFD: Int32

    typealias Failure = PoolProtocol.Failure

    /// Creates the folders (mode 0700, owned by `owner` when given). With `quotaBytes`, `home` is
    /// a tmpfs of that size holding both the workspace and `/tmp`, so `disk_mb` bounds their total.
    init(home: String, parent: String? = nil, owner: (uid: UInt32, gid: UInt32)?, quotaBytes: Int?) throws {
        try retryingEINTR("mkdir \(home)") { mkdir(home, 0o700) }
        if let quotaBytes {
            do {
                try Self.mountQuota(home, bytes: quotaBytes, owner: owner, remount: false)
            } catch {
                rmdir(home)
                throw error
            }
        }
        let path = home + "/workspace"
        let tmp = quotaBytes == nil ? nil : home + "/tmp"
        self.home = home
        self.path = path
        self.tmp = tmp
        self.owner = owner
        self.quotaBytes = quotaBytes
        self.parent = quotaBytes == nil ? nil : parent
        do {
            for folder in [home, path] + (tmp.map { [$0] } ?? []) {
                if folder != home { try retryingEINTR("mkdir \(folder)") { mkdir(folder, 0o700) } }
                if let owner { try retryingEINTR("chown") { chown(folder, owner.uid, owner.gid) } }
            }
            files = try SessionFiles(home: home, owner: owner)
            rootFD = try retryingEINTR("open \(path)") { Glibc.open(path, drover_o_path | O_DIRECTORY | O_CLOEXEC) }
        } catch {
            if quotaBytes != nil { umount2(home, Int32(MNT_DETACH)) }
            try? FileManager.default.removeItem(atPath: home)
            throw error
        }
    }

    deinit { close(rootFD) }

    /// Sets the quota of an unused workspace (one made warm at the default size).
    func resize(to bytes: Int) throws {
        try Self.mountQuota(home, bytes: bytes, owner: owner, remount: true)
    }

    private static func mountQuota(_ home: String, bytes: Int, owner: (uid: UInt32, gid: UInt32)?, remount: Bool) throws {
        var options = "size=\(bytes),mode=0700"
        if let owner { options += ",uid=\(owner.uid),gid=\(owner.gid)" }
        let flags = UInt(MS_NOSUID | MS_NODEV) | (remount ? UInt(MS_REMOUNT) : 0)
        try retryingEINTR("mount tmpfs on \(home)") { mount("tmpfs", home, "tmpfs", flags, options) }
    }

    /// Removes the folder and everything in it (without following symlinks).
    func remove() {
        if quotaBytes != nil {
            // The whole tmpfs goes at once, whatever it holds.
            umount2(home, Int32(MNT_DETACH))
            rmdir(home)
        } else {
            try? FileManager.default.removeItem(atPath: home)
        }
    }

    /// How a workspace's folder is named (`ws_…`), and the source of the tmpfs the pool's
    /// workspaces sit under, followed by the pool's first uid: what a starting pool finds a dead
    /// one's mounts by (`LeakedWorkspaces`).
    static let folderPrefix = "ws_"
    static let parentSourcePrefix = "drover-workspaces-"

    /// Mounts the small tmpfs the pool's workspaces sit under when each is a tmpfs of its own, and
    /// returns its path (nil if it cannot be mounted: the workspaces then sit in the pool's root).
    /// A call's launcher detaches it, and every workspace with it, in a mount namespace of its
    /// own, and keeps only its sandbox's (`drover_spawn_options.narrow_parent`): bubblewrap reads
    /// the whole mount table at each of its mounts, so without this every call would pay for
    /// every live sandbox. Its source names the pool's uid range, so that a starting pool can
    /// take back one a dead pool left (`LeakedWorkspaces`).
    static func mountParent(_ path: String, uidBase: UInt32) -> String? {
        guard mkdir(path, 0o711) == 0 || errno == EEXIST else { return nil }
        guard mount(parentSourcePrefix + String(uidBase), path, "tmpfs", UInt(MS_NOSUID | MS_NODEV), "size=16m,mode=0711") == 0 else {
            rmdir(path)
            return nil
        }
        return path
    }

    /// Whether this host lets the pool give sandboxes a disk quota (a tmpfs per sandbox needs
    /// root, or CAP_SYS_ADMIN, in the host's mount namespace). Tries one under `root`.
    static func quotasWork(under root: String) -> Bool {
        let probe = root + "/quota-probe"
        guard mkdir(probe, 0o700) == 0 else { return false }
        defer { rmdir(probe) }
        guard mount("tmpfs", probe, "tmpfs", UInt(MS_NOSUID | MS_NODEV), "size=1m,mode=0700") == 0 else { return false }
        umount2(probe, Int32(MNT_DETACH))
        return true
    }

    // MARK: - Paths

    /// The path relative to the workspace, normalised; `""` is the workspace itself.
    func relative(_ path: String) throws(Failure) -> String {
        var text = path
        if text.hasPrefix("/") {
            if text == Isolation.workspaceMount {
                return ""
            } else if text.hasPrefix(Isolation.workspaceMount + "/") {
                text.removeFirst(Isolation.workspaceMount.count + 1)
            } else {
                throw Failure(.pathOutsideSandbox, "\(path) is outside the workspace \(Isolation.workspaceMount)")
            }
        }
        var parts: [Substring] = []
        for part in text.split(separator: "/", omittingEmptySubsequences: true) {
            switch part {
            case ".": continue
            case "..":
                guard !parts.isEmpty else { throw Failure(.pathOutsideSandbox, "\(path) leads outside the workspace") }
                parts.removeLast()
            default: parts.append(part)
            }
        }
        if text.utf8.contains(0) { throw Failure(.badRequest, "a path cannot contain NUL") }
        return parts.joined(separator: "/")
    }

    /// Opens a path beneath the workspace, mapping refusals to protocol errors.
    private func open(_ relative: String, _ flags: Int32, mode: mode_t = 0o644, shown: String) throws(Failure) -> Int32 {
        var fd = drover_open_beneath(rootFD, relative.isEmpty ? "." : relative, flags, UInt32(mode))
        // openat2 answers EAGAIN when a mount or rename anywhere on the host raced its resolution
        // of `..` (the kernel asks for a retry); a busy pool mounts a workspace per sandbox all the
        // time, and file tools failed with `internal` under load.
        var attempts = 1
        while fd < 0 && (errno == EAGAIN || errno == EINTR) && attempts < 64 {
            attempts += 1
            fd = drover_open_beneath(rootFD, relative.isEmpty ? "." : relative, flags, UInt32(mode))
        }
        guard fd < 0 else { return fd }
        switch errno {
        case EXDEV, ELOOP: throw Failure(.pathOutsideSandbox, "\(shown) resolves outside the workspace")
        case ENOENT, ENOTDIR: throw Failure(.fileNotFound, "\(shown) does not exist")
        case EISDIR: throw Failure(.isADirectory, "\(shown) is a directory")
        // A FIFO opened for writing without blocking, with no reader.
        case ENXIO: throw Failure(.notARegularFile, "\(shown) is not a regular file (a FIFO, socket or device); file tools write regular files only")
        case ENOSYS: throw Failure(.internal, "the kernel lacks openat2 (Linux 5.6 or later is needed)")
        default: throw Failure(.internal, "open \(shown): \(String(cString: strerror(errno)))")
        }
    }

    // MARK: - Tools

    /// `read`: lines `offset` (1-based) … `offset + limit - 1`, numbered like `cat -n`.
    ///
    /// Streams the file: lines before `offset` are counted and dropped, and reading stops as soon
    /// as the output is full, so memory stays within one chunk plus the output whatever the file
    /// (a 900 MiB sparse file is one endless line of NULs).
    func read(_ path: String, offset: Int?, limit: Int?, maxBytes: Int) throws(Failure) -> (String, truncated: Bool) {
        let relative = try relative(path)
        let fd = try openRegular(relative, shown: path)
        defer { close(fd) }
        let first = max(1, offset ?? 1)
        let last = first - 1 + max(1, limit ?? 2000)
        var output = ""
        var number = 1              // the line being read
        var line: [UInt8] = []      // its bytes: kept only when wanted, and only while they fit
        var partial = false         // the line has bytes so far (a last line may lack its newline)
        var lineTooLong = false
        var truncated = false
        var stopped = false
        /// Ends the current line: adds it when wanted; false once nothing more is wanted.
        func endLine() -> Bool {
            defer { line.removeAll(keepingCapacity: true); partial = false; lineTooLong = false; number += 1 }
            guard number >= first else { return true }
            let text = "\(String(repeating: " ", count: max(0, 6 - String(number).count)))\(number)\t\(ToolText.render(line).text)\n"
            if lineTooLong || output.utf8.count + text.utf8.count > maxBytes {
                truncated = true
                return false
            }
            output += text
            return number < last
        }
        var buffer = [UInt8](repeating: 0, count: 65_536)
        reading: while true {
            let count = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count >= 0 else { throw Failure(.internal, "read \(path) failed") }
            if count == 0 { break }
            var start = 0
            while start < count {
                let newline = buffer[start..<count].firstIndex(of: 10)
                let end = newline ?? count
                if end > start { partial = true }
                if number >= first && !lineTooLong {
                    if end - start > maxBytes - output.utf8.count - line.count { lineTooLong = true } else { line += buffer[start..<end] }
                }
                // A wanted line the output cannot take ends the read here, wherever its newline is.
                guard newline != nil || lineTooLong else { break }
                if !endLine() {
                    // Full, or past the last wanted line: what follows is not read at all.
                    if !truncated { truncated = end + 1 < count || hasMore(fd) }
                    stopped = true
                    break reading
                }
                start = end + 1
            }
        }
        if !stopped {
            if partial { _ = endLine() }
            let lines = number - 1
            guard first <= max(lines, 1) else { throw Failure(.badRequest, "offset \(first) is past the end (\(lines) lines)") }
        }
        return (output, truncated)
    }

    /// Whether the file has another byte at the descriptor's position.
    private func hasMore(_ fd: Int32) -> Bool {
        var byte: UInt8 = 0
        return Glibc.read(fd, &byte, 1) == 1
    }

    /// `write`: creates or replaces a file, creating missing parent folders.
    func write(_ path: String, content: String, maxBytes: Int) throws(Failure) -> String {
        let relative = try relative(path)
        guard !relative.isEmpty else { throw Failure(.isADirectory, "\(path) is the workspace itself") }
        guard content.utf8.count <= maxBytes else {
            throw Failure(.tooLarge, "content is \(content.utf8.count) bytes; the limit is \(maxBytes)")
        }
        try makeParents(of: relative, shown: path)
        try store(Array(content.utf8), at: relative, shown: path)
        return "wrote \(content.utf8.count) bytes to \(path)"
    }

    /// `edit`: replaces `old` with `new`; `old` must occur exactly once unless `replaceAll`.
    func edit(_ path: String, old: String, new: String, replaceAll: Bool) throws(Failure) -> String {
        let relative = try relative(path)
        guard !old.isEmpty else { throw Failure(.badRequest, "old_string must not be empty") }
        guard old != new else { throw Failure(.badRequest, "old_string and new_string are the same") }
        let text = String(decoding: try contents(relative, shown: path, limit: Self.editLimit), as: UTF8.self)
        let occurrences = text.components(separatedBy: old).count - 1
        if occurrences == 0 { throw Failure(.noMatch, "old_string does not occur in \(path)") }
        if occurrences > 1 && !replaceAll {
            throw Failure(.notUnique, "old_string occurs \(occurrences) times in \(path); give more context or set replace_all")
        }
        let edited = replaceAll
            ? text.replacingOccurrences(of: old, with: new)
            : text.replacingCharacters(in: text.range(of: old)!, with: new)
        try store(Array(edited.utf8), at: relative, shown: path)
        return "replaced \(replaceAll ? occurrences : 1) occurrence\(replaceAll && occurrences > 1 ? "s" : "") in \(path)"
    }

    /// `glob`: files under `base` whose path relative to it matches `pattern`, newest first.
    /// Symlinks are listed but never followed.
    func glob(_ pattern: String, base: String?, limit: Int) throws(Failure) -> (String, truncated: Bool) {
        let baseRelative = try relative(base ?? Isolation.workspaceMount)
        let matcher = GlobPattern(pattern)
        let baseFD = try open(baseRelative, O_RDONLY | O_DIRECTORY, shown: base ?? Isolation.workspaceMount)
        var found: [(path: String, modified: Int)] = []
        walk(baseFD, prefix: "", depth: 0) { path, modified in
            if matcher.matches(path) { found.append((path, modified)) }
        }
        found.sort { $0.modified != $1.modified ? $0.modified > $1.modified : $0.path < $1.path }
        let shownBase = baseRelative.isEmpty ? "" : baseRelative + "/"
        let lines = found.prefix(limit).map { Isolation.workspaceMount + "/" + shownBase + $0.path }
        return (lines.joined(separator: "\n"), found.count > limit)
    }

    // MARK: - Helpers

    /// The largest file `edit` loads (it rewrites the whole file).
    static let editLimit = 16 << 20

    /// Opens a regular file for reading (or, with `forWriting`, for writing, created if missing),
    /// without ever blocking: `O_NONBLOCK` so that a FIFO does not wait for a writer or a reader,
    /// then anything but a regular file is refused before a byte moves. (A blocking open of a
    /// FIFO held a pool's file-tool thread until someone opened the other end: 16 such writes
    /// stopped every file tool of the pool, for every tenant.)
    private func openRegular(_ relative: String, shown: String, forWriting: Bool = false) throws(Failure) -> Int32 {
        let flags = forWriting ? O_WRONLY | O_CREAT | O_NOCTTY | O_NONBLOCK : O_RDONLY | O_NOCTTY | O_NONBLOCK
        let fd = try open(relative, flags, shown: shown)
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            close(fd)
            throw Failure(.internal, "stat \(shown) failed")
        }
        switch info.st_mode & S_IFMT {
        case S_IFREG:
            return fd
        case S_IFDIR:
            close(fd)
            throw Failure(.isADirectory, "\(shown) is a directory")
        default:
            close(fd)
            throw Failure(.notARegularFile, "\(shown) is not a regular file (a FIFO, socket or device); file tools read regular files only")
        }
    }

    /// A whole regular file, refused when larger than `limit` bytes.
    private func contents(_ relative: String, shown: String, limit: Int) throws(Failure) -> [UInt8] {
        let fd = try openRegular(relative, shown: shown)
        defer { close(fd) }
        var data: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count >= 0 else { throw Failure(.internal, "read \(shown) failed") }
            if count == 0 { break }
            data.append(contentsOf: buffer[0..<count])
            if data.count > limit { throw Failure(.tooLarge, "\(shown) is larger than \(limit) bytes") }
        }
        return data
    }

    private func store(_ bytes: [UInt8], at relative: String, shown: String) throws(Failure) {
        let fd = try openRegular(relative, shown: shown, forWriting: true)
        defer { close(fd) }
        // Truncated only once known to be a regular file (O_TRUNC would act on whatever it opened).
        guard ftruncate(fd, 0) == 0 else { throw Failure(.internal, "truncate \(shown): \(String(cString: strerror(errno)))") }
        if let owner { fchown(fd, owner.uid, owner.gid) }
        if let failed = FileWriting.writeAll(fd, bytes) { throw Failure(.internal, "write \(shown): \(String(cString: strerror(failed)))") }
    }

    private func makeParents(of relative: String, shown: String) throws(Failure) {
        let parts = relative.split(separator: "/").dropLast()
        var parent = ""
        for part in parts {
            let parentFD = try open(parent, drover_o_path | O_DIRECTORY, shown: shown)
            defer { close(parentFD) }
            if mkdirat(parentFD, String(part), 0o755) == 0 {
                if let owner {
                    let made = try open(parent.isEmpty ? String(part) : parent + "/" + part, O_RDONLY | O_DIRECTORY, shown: shown)
                    fchown(made, owner.uid, owner.gid)
                    close(made)
                }
            } else if errno != EEXIST {
                throw Failure(.internal, "mkdir \(shown): \(String(cString: strerror(errno)))")
            }
            parent = parent.isEmpty ? String(part) : parent + "/" + part
        }
    }

    /// Depth-first walk with `openat(O_NOFOLLOW)`: symlinked folders are never entered.
    private func walk(_ dirFD: Int32, prefix: String, depth: Int, visit: (String, Int) -> Void) {
        guard depth < 64, let dir = fdopendir(dirFD) else {
            close(dirFD)
            return
        }
        defer { closedir(dir) }
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name == "." || name == ".." { continue }
            let path = prefix.isEmpty ? name : prefix + "/" + name
            var info = stat()
            guard fstatat(dirfd(dir), name, &info, AT_SYMLINK_NOFOLLOW) == 0 else { continue }
            if (info.st_mode & S_IFMT) == S_IFDIR {
                let child = openat(dirfd(dir), name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                if child >= 0 { walk(child, prefix: path, depth: depth + 1, visit: visit) }
            } else {
                visit(path, Int(info.st_mtim.tv_sec))
            }
        }
    }
}
