/// An HTTP/1.1 request parser: bytes in, requests or a refusal out. Pure (no I/O), so every
/// malformed or hostile input is a table test, and a libFuzzer target (`Sources/drover-fuzz`) feeds it.
///
/// Strict where leniency has bitten servers: one request line `METHOD SP target SP HTTP/1.x`;
/// header names are tokens, no whitespace before the colon, no obsolete line folding; one `Host`;
/// at most one `Content-Length`, never together with `Transfer-Encoding` (request smuggling), and
/// only `chunked` as a transfer coding; a chunk size is hex digits and nothing else (no sign, no
/// `0x`); limits on the request line, the header block, the header count, a chunk's size line
/// with its extensions, the trailers, and the body.
///
/// Incremental: a state machine over one buffer, so each byte is looked at a bounded number of
/// times however it is split across reads (a body is never re-parsed when more arrives, a head is
/// searched from where the last search stopped). Pipelined requests come out one after another.
public struct HTTPRequestParser: Sendable {
    public struct Limits: Sendable {
        public var requestLine = 8 * 1024
        public var headerBytes = 32 * 1024
        public var headerCount = 100
        public var body = 8 << 20
        /// A chunk's size line, extensions included.
        public var chunkLine = 1024
        /// All trailer lines of a chunked body together, and how many there may be.
        public var trailerBytes = 8 * 1024
        public var trailerCount = 32
        public init() {}
    }

    /// Why a request was refused: the status to answer with, then the connection closes.
    public struct Refusal: Error, Sendable, Equatable {
        public var status: Int
        public var message: String

        public init(status: Int, message: String) {
            self.status = status
            self.message = message
        }
    }

    public enum Step: Sendable, Equatable {
        case request(HTTPServerRequest)
        case needMore
        case refused(Refusal)
    }

    private enum State: Sendable {
        /// Reading a head; `scanned` bytes after `start` are known to hold no blank line.
        case head(scanned: Int)
        case fixedBody(length: Int)
        /// Chunked: reading a size line (`scanned` as for the head).
        case chunkSize(scanned: Int)
        case chunkData(size: Int)
        case trailers(bytes: Int, count: Int, scanned: Int)
        /// A refusal is final: the connection closes after it.
        case failed(Refusal)
    }

    public let limits: Limits
    private var buffer: [UInt8] = []
    /// Where unconsumed bytes begin; the consumed prefix is dropped in large steps, not per request.
    private var start = 0
    private var state = State.head(scanned: 0)
    /// The request being read once its head is parsed, and its chunked body so far (kept out of
    /// `state` so that appending never copies it).
    private var head: Head?
    private var body: [UInt8] = []

    public init(limits: Limits = Limits()) { self.limits = limits }

    /// Bytes buffered but not yet part of a returned request.
    public var buffered: Int { buffer.count - start }

    /// The head of a request whose body is still arriving (a server answers its
    /// `Expect: 100-continue` from it), or nil.
    public var awaitingBody: Head? {
        switch state {
        case .fixedBody, .chunkSize, .chunkData, .trailers: head
        case .head, .failed: nil
        }
    }

    /// Whether a `Connection` header's token list holds `token` (`keep-alive, close` is a close).
    public static func connection(_ value: String?, contains token: String) -> Bool {
        (value ?? "").split(separator: ",").contains { $0.trimmingCharacters(in: [" ", "\t"]).lowercased() == token }
    }

    /// Adds bytes; call `next()` until it answers `needMore`.
    public mutating func feed<S: Sequence>(_ bytes: S) where S.Element == UInt8 {
        if start > 0 && (start >= 65_536 || start == buffer.count) {
            buffer.removeFirst(start)
            start = 0
        }
        buffer.append(contentsOf: bytes)
    }

    /// The next complete request, if the buffer holds one.
    public mutating func next() -> Step {
        while true {
            switch advance() {
            case .some(let step):
                if case .refused(let refusal) = step { state = .failed(refusal) }
                return step
            case .none:
                continue
            }
        }
    }

    private static func refuse(_ status: Int, _ message: String) -> Step { .refused(Refusal(status: status, message: message)) }

    /// One transition: a step to return, or nil when the state moved on and parsing continues.
    private mutating func advance() -> Step? {
        switch state {
        case .failed(let refusal):
            return .refused(refusal)
        case .head(let scanned):
            return readHead(scanned: scanned)
        case .fixedBody(let length):
            guard buffer.count - start >= length else { return .needMore }
            body = Array(buffer[start..<(start + length)])
            return finish(consumed: length)
        case .chunkSize(let scanned):
            return readChunkSize(scanned: scanned)
        case .chunkData(let size):
            guard buffer.count - start >= size + 2 else { return .needMore }
            guard buffer[start + size] == 13, buffer[start + size + 1] == 10 else {
                return Self.refuse(400, "a chunk does not end with CRLF")
            }
            body += buffer[start..<(start + size)]
            start += size + 2
            state = .chunkSize(scanned: 0)
            return nil
        case .trailers(let bytes, let count, let scanned):
            return readTrailer(bytes: bytes, count: count, scanned: scanned)
        }
    }

    private mutating func finish(consumed: Int) -> Step {
        start += consumed
        state = .head(scanned: 0)
        guard let head else { return Self.refuse(500, "no head") }
        defer { (self.head, body) = (nil, []) }
        return .request(HTTPServerRequest(method: head.method, path: head.target, headers: head.headers, body: body, version: head.version))
    }

    /// The end of the next CRLF-terminated line from `start + scanned`, or nil with how far was searched.
    private func lineEnd(after scanned: Int) -> (end: Int?, scanned: Int) {
        let from = start + max(0, scanned - 1)
        if let end = Self.find([13, 10], in: buffer[from...]) { return (end, end - start) }
        return (nil, max(0, buffer.count - start))
    }

    private mutating func readHead(scanned: Int) -> Step? {
        // Tolerate empty lines before a request line (RFC 9112 §2.2).
        if scanned == 0 {
            while buffer.count - start >= 2 && buffer[start] == 13 && buffer[start + 1] == 10 { start += 2 }
        }
        let from = start + max(0, scanned - 3)
        guard let headEnd = Self.find([13, 10, 13, 10], in: buffer[from...]) else {
            let available = buffer.count - start
            let firstLine = Self.find([13, 10], in: buffer[start..<min(buffer.count, start + limits.requestLine + 2)])
            if firstLine == nil && available > limits.requestLine {
                return Self.refuse(414, "the request line is longer than \(limits.requestLine) bytes")
            }
            if available > limits.requestLine + limits.headerBytes {
                return Self.refuse(431, "the header block is larger than \(limits.headerBytes) bytes")
            }
            state = .head(scanned: available)
            return .needMore
        }
        let head: Head
        switch Self.head(buffer[start..<headEnd], limits: limits) {
        case .success(let parsed): head = parsed
        case .failure(let refusal): return .refused(refusal)
        }
        start = headEnd + 4
        self.head = head
        let hosts = head.fields.filter { $0.name.lowercased() == "host" }
        if head.version == "HTTP/1.1" && hosts.isEmpty { return Self.refuse(400, "HTTP/1.1 requires a Host header") }
        if hosts.count > 1 { return Self.refuse(400, "more than one Host header") }
        let contentLengths = head.fields.filter { $0.name.lowercased() == "content-length" }.map(\.value)
        let encodings = head.fields.filter { $0.name.lowercased() == "transfer-encoding" }.map { $0.value.lowercased() }
        if !encodings.isEmpty {
            guard contentLengths.isEmpty else { return Self.refuse(400, "Content-Length and Transfer-Encoding together are refused") }
            guard head.version == "HTTP/1.1" else { return Self.refuse(400, "Transfer-Encoding is refused in an HTTP/1.0 request") }
            guard encodings.joined(separator: ",") == "chunked" else { return Self.refuse(501, "only the chunked transfer coding is accepted") }
            state = .chunkSize(scanned: 0)
            return nil
        }
        var length = 0
        if !contentLengths.isEmpty {
            let distinct = Set(contentLengths.flatMap { $0.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: [" "]) } })
            guard distinct.count == 1, let only = distinct.first, !only.isEmpty, only.utf8.allSatisfy(Self.isDigit), only.count <= 12,
                let parsed = Int(only)
            else {
                return Self.refuse(400, "a malformed or repeated Content-Length")
            }
            length = parsed
        }
        if length > limits.body { return Self.refuse(413, "the body is larger than \(limits.body) bytes") }
        state = .fixedBody(length: length)
        return nil
    }

    private mutating func readChunkSize(scanned: Int) -> Step? {
        let (found, searched) = lineEnd(after: scanned)
        guard let end = found else {
            if searched > limits.chunkLine { return Self.refuse(400, "a chunk size line is longer than \(limits.chunkLine) bytes") }
            state = .chunkSize(scanned: searched)
            return .needMore
        }
        let line = buffer[start..<end]
        if line.count > limits.chunkLine { return Self.refuse(400, "a chunk size line is longer than \(limits.chunkLine) bytes") }
        guard let size = Self.chunkSize(line) else { return Self.refuse(400, "malformed chunk size") }
        start = end + 2
        if size == 0 {
            state = .trailers(bytes: 0, count: 0, scanned: 0)
            return nil
        }
        if size > limits.body - body.count { return Self.refuse(413, "the body is larger than \(limits.body) bytes") }
        state = .chunkData(size: size)
        return nil
    }

    private mutating func readTrailer(bytes: Int, count: Int, scanned: Int) -> Step? {
        let (found, searched) = lineEnd(after: scanned)
        guard let end = found else {
            if bytes + searched > limits.trailerBytes { return Self.refuse(431, "the trailers are larger than \(limits.trailerBytes) bytes") }
            state = .trailers(bytes: bytes, count: count, scanned: searched)
            return .needMore
        }
        if end == start { return finish(consumed: 2) }
        let line = buffer[start..<end]
        let total = bytes + line.count + 2
        if total > limits.trailerBytes { return Self.refuse(431, "the trailers are larger than \(limits.trailerBytes) bytes") }
        if count + 1 > limits.trailerCount { return Self.refuse(431, "more than \(limits.trailerCount) trailer fields") }
        // Trailers are read and dropped, but only well-formed ones.
        if case .failure(let refusal) = Self.field(line) { return .refused(refusal) }
        start = end + 2
        state = .trailers(bytes: total, count: count + 1, scanned: 0)
        return nil
    }

    /// A chunk size line: hex digits, then optionally whitespace and `;`-led extensions of visible
    /// characters. Nil for anything else (a sign, `0x`, an empty size, more than 8 digits, controls).
    static func chunkSize<C: Collection>(_ line: C) -> Int? where C.Element == UInt8 {
        var size = 0
        var digits = 0
        var index = line.startIndex
        while index != line.endIndex, let value = hexValue(line[index]) {
            size = size * 16 + value
            digits += 1
            guard digits <= 8 else { return nil }
            index = line.index(after: index)
        }
        guard digits > 0 else { return nil }
        while index != line.endIndex, line[index] == 32 || line[index] == 9 { index = line.index(after: index) }
        guard index == line.endIndex || line[index] == 59 else { return nil }
        guard line[index...].allSatisfy({ $0 == 9 || ($0 >= 32 && $0 != 127) }) else { return nil }
        return size
    }

    static func hexValue(_ byte: UInt8) -> Int? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): Int(byte - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): Int(byte - UInt8(ascii: "a")) + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): Int(byte - UInt8(ascii: "A")) + 10
        default: nil
        }
    }

    static func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }

    /// A request head: its request line, and its header fields as sent (order and case kept).
    public struct Head: Sendable, Equatable {
        public struct Field: Sendable, Equatable {
            public var name: String
            public var value: String
        }

        public var method: String
        public var target: String
        public var version: String
        public var fields: [Field]

        /// The fields by lower-cased name, repeated ones joined with ", ".
        public var headers: [String: String] {
            fields.reduce(into: [:]) { headers, field in
                let name = field.name.lowercased()
                headers[name] = headers[name].map { $0 + ", " + field.value } ?? field.value
            }
        }
    }

    /// Parses a request head: the bytes before its blank line (CRLF line ends), with the same
    /// strictness and limits as `next()`, which uses it (the proxy of sandboxes does too).
    public static func head(_ bytes: ArraySlice<UInt8>, limits: Limits = Limits()) -> Result<Head, Refusal> {
        let lines = split(bytes)
        guard let requestLine = lines.first else { return .failure(Refusal(status: 400, message: "no request line")) }
        if requestLine.count > limits.requestLine {
            return .failure(Refusal(status: 414, message: "the request line is longer than \(limits.requestLine) bytes"))
        }
        if bytes.count - requestLine.count > limits.headerBytes {
            return .failure(Refusal(status: 431, message: "the header block is larger than \(limits.headerBytes) bytes"))
        }
        let parts = requestLine.split(separator: 32, omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[0].isEmpty, parts[0].allSatisfy(isTokenByte), !parts[1].isEmpty,
            parts[1].allSatisfy({ $0 > 32 && $0 < 127 })
        else {
            return .failure(Refusal(status: 400, message: "malformed request line"))
        }
        let version = String(decoding: parts[2], as: UTF8.self)
        guard version == "HTTP/1.1" || version == "HTTP/1.0" else {
            return .failure(Refusal(status: 505, message: "only HTTP/1.1 (and 1.0) are served"))
        }
        let headerLines = lines.dropFirst()
        if headerLines.count > limits.headerCount {
            return .failure(Refusal(status: 431, message: "more than \(limits.headerCount) headers"))
        }
        var fields: [Head.Field] = []
        for line in headerLines {
            switch field(line) {
            case .success(let field): fields.append(field)
            case .failure(let refusal): return .failure(refusal)
            }
        }
        return .success(Head(
            method: String(decoding: parts[0], as: UTF8.self), target: String(decoding: parts[1], as: UTF8.self), version: version, fields: fields))
    }

    /// One `name: value` line (a header or a trailer).
    static func field(_ line: ArraySlice<UInt8>) -> Result<Head.Field, Refusal> {
        if let first = line.first, first == 32 || first == 9 {
            return .failure(Refusal(status: 400, message: "obsolete header line folding is not accepted"))
        }
        guard let colon = line.firstIndex(of: 58), colon > line.startIndex, line[line.startIndex..<colon].allSatisfy(isTokenByte) else {
            return .failure(Refusal(status: 400, message: "malformed header line"))
        }
        let name = String(decoding: line[line.startIndex..<colon], as: UTF8.self)
        let rawValue = line[(colon + 1)...]
        guard !rawValue.contains(where: { ($0 < 32 && $0 != 9) || $0 == 127 }) else {
            return .failure(Refusal(status: 400, message: "a control character in header \(name.lowercased())"))
        }
        return .success(Head.Field(name: name, value: String(decoding: rawValue, as: UTF8.self).trimmingCharacters(in: [" ", "\t"])))
    }

    static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"): true
        default: Array("!#$%&'*+-.^_`|~".utf8).contains(byte)
        }
    }

    /// The index of the first occurrence of `needle` (2 or 4 bytes) in `haystack`.
    public static func find(_ needle: [UInt8], in haystack: ArraySlice<UInt8>) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        var index = haystack.startIndex
        let last = haystack.endIndex - needle.count
        while index <= last {
            if haystack[index] == needle[0] {
                var matched = true
                for k in 1..<needle.count where haystack[index + k] != needle[k] {
                    matched = false
                    break
                }
                if matched { return index }
            }
            index += 1
        }
        return nil
    }

    /// Lines of a header block (CRLF separated).
    static func split(_ head: ArraySlice<UInt8>) -> [ArraySlice<UInt8>] {
        var lines: [ArraySlice<UInt8>] = []
        var start = head.startIndex
        var index = head.startIndex
        while index < head.endIndex {
            if head[index] == 13, index + 1 < head.endIndex, head[index + 1] == 10 {
                lines.append(head[start..<index])
                index += 2
                start = index
            } else {
                index += 1
            }
        }
        lines.append(head[start..<head.endIndex])
        return lines
    }
}
