import Foundation

/// Reads a file of the kernel's (`/proc`, `/sys`) to its end. Such files report a size of 0 or a
/// page, and a whole-file read that believes it stops early: `String(contentsOfFile:)` returned
/// 4,063 of `/proc/self/mountinfo`'s 8,752 bytes here. Nil when it cannot be opened.
public enum KernelFile {
    public static func read(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if count > 0 {
                bytes += chunk[..<count]
            } else if count < 0 && errno == EINTR {
                continue
            } else {
                break
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
