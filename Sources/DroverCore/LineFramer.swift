/// Splits a byte stream into lines with a maximum length.
///
/// It keeps a scan offset so it never rescans bytes it has already looked at. A line longer than
/// `maxLineLength` is reported once as `.tooLong` and the rest of it, up to its newline, is
/// discarded without being buffered: a peer cannot exhaust memory by never sending a newline.
public struct LineFramer: Sendable {
    public enum Frame: Sendable, Equatable {
        case line([UInt8])
        case tooLong
    }

    public let maxLineLength: Int
    private var buffer: [UInt8] = []
    private var scanned = 0
    private var discarding = false

    public init(maxLineLength: Int) {
        precondition(maxLineLength > 0)
        self.maxLineLength = maxLineLength
    }

    /// Feeds bytes in and returns the frames they complete, in order.
    public mutating func feed(_ bytes: some Sequence<UInt8>) -> [Frame] {
        var frames: [Frame] = []
        for byte in bytes {
            if discarding {
                if byte == UInt8(ascii: "\n") { discarding = false }
                continue
            }
            if byte == UInt8(ascii: "\n") {
                var line = buffer
                if line.last == UInt8(ascii: "\r") { line.removeLast() }
                frames.append(.line(line))
                buffer.removeAll(keepingCapacity: true)
                continue
            }
            if buffer.count == maxLineLength {
                frames.append(.tooLong)
                buffer.removeAll(keepingCapacity: false)
                discarding = true
                continue
            }
            buffer.append(byte)
        }
        scanned = buffer.count
        return frames
    }

    /// Bytes held for an unfinished line.
    public var pendingBytes: Int { scanned }
}
