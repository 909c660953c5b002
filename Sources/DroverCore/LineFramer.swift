import Foundation

/// Splits a byte stream into lines with a maximum length.
///
/// Bytes already buffered are never scanned again. A line longer than `maxLineLength` is reported
/// once as `.tooLong` and the rest of it, up to its newline, is discarded without being
/// buffered: a peer cannot exhaust memory by never sending a newline.
public struct LineFramer: Sendable {
    public enum Frame: Sendable, Equatable {
        case line([UInt8])
        case tooLong
    }

    public let maxLineLength: Int
    private var buffer: [UInt8] = []
    private var discarding = false

    public init(maxLineLength: Int) {
        precondition(maxLineLength > 0)
        self.maxLineLength = maxLineLength
    }

    /// Feeds bytes in and returns the frames they complete, in order. Newlines are found with the
    /// standard library's search and bytes are copied in bulk, never one at a time.
    public mutating func feed<Bytes: Collection<UInt8>>(_ bytes: Bytes) -> [Frame] {
        var frames: [Frame] = []
        var rest = bytes[...]
        while !rest.isEmpty {
            guard let newline = Self.newline(in: rest) else {
                if !discarding {
                    if buffer.count + rest.count > maxLineLength {
                        frames.append(.tooLong)
                        buffer.removeAll(keepingCapacity: false)
                        discarding = true
                    } else {
                        buffer.append(contentsOf: rest)
                    }
                }
                break
            }
            let chunk = rest[..<newline]
            rest = rest[rest.index(after: newline)...]
            if discarding {
                discarding = false
                continue
            }
            if buffer.count + chunk.count > maxLineLength {
                frames.append(.tooLong)
                buffer.removeAll(keepingCapacity: false)
                continue
            }
            buffer.append(contentsOf: chunk)
            if buffer.last == UInt8(ascii: "\r") { buffer.removeLast() }
            frames.append(.line(buffer))
            buffer.removeAll(keepingCapacity: true)
        }
        return frames
    }

    /// The first newline, found with `memchr` when the bytes are contiguous (they always are for
    /// arrays and their slices).
    private static func newline<Bytes: Collection<UInt8>>(in bytes: Bytes) -> Bytes.Index? {
        let offset = bytes.withContiguousStorageIfAvailable { buffer -> Int? in
            guard let base = buffer.baseAddress, let hit = memchr(base, 10, buffer.count) else { return nil }
            return base.distance(to: hit.assumingMemoryBound(to: UInt8.self))
        }
        switch offset {
        case .some(.some(let distance)): return bytes.index(bytes.startIndex, offsetBy: distance)
        case .some(.none): return nil
        case .none: return bytes.firstIndex(of: UInt8(ascii: "\n"))
        }
    }

    /// Bytes held for an unfinished line.
    public var pendingBytes: Int { buffer.count }
}
