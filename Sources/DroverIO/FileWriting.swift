import Foundation

/// Writes every byte to a descriptor, however many calls it takes (a `write` may take fewer
/// bytes than it was given, and a signal may interrupt it): from the current position, or at
/// `offset` (`pwrite`). Returns nil when all were written, else the `errno` of the call that failed
/// (`ENOSPC` when a quota is full).
public enum FileWriting {
    public static func writeAll(_ fd: Int32, _ bytes: [UInt8], at offset: Int? = nil) -> Int32? {
        var written = 0
        while written < bytes.count {
            let count = bytes[written...].withUnsafeBytes { buffer in
                offset.map { pwrite(fd, buffer.baseAddress, buffer.count, off_t($0 + written)) } ?? Glibc.write(fd, buffer.baseAddress, buffer.count)
            }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { return count == 0 ? EIO : errno }
            written += count
        }
        return nil
    }
}
