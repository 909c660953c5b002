/// An HTTP/1.1 request parser: bytes in, requests or a refusal out. Pure (no I/O), so every
/// malformed or hostile input is a table test.
///
/// Strict where leniency has bitten servers: one request line `METHOD SP target SP HTTP/1.x`;
/// header names are tokens, no whitespace before the colon, no obsolete line folding; at most one
/// `Content-Length`, never together with `Transfer-Encoding` (request smuggling), and only
/// `chunked` as a transfer coding; limits on the request line, the header block, the header count
/// and the body. Pipelined requests are parsed one after another from the same buffer.
public struct HTTPRequestParser: Sendable {
    public struct Limits: Sendable {
        public var requestLine = 8 * 1024
        public var headerBytes = 32 * 1024
        public var headerCount = 100
        public var body = 8 << 20
        public init() {}
    }

    /// Why a request was refused: the status to answer with, then the connection closes.
    public struct Refusal: Error, Sendable, Equatable {
        public var status: Int
        public var message: String
    }

    public enum Step: Sendable, Equatable {
        case request(HTTPServerRequest)
        case needMore
        case refused(Refusal)
    }

    public let limits: Limits
    private var buffer: [UInt8] = []

    public init(limits: Limits = Limits()) { self.limits = limits }

    /// Bytes buffered but not yet part of a returned request.
    public var buffered: Int { buffer.count }

    /// Adds bytes; call `next()` until it answers `needMore`.
    public mutating func feed<S: Sequence>(_ bytes: S) where S.Element == UInt8 { buffer.append(contentsOf: bytes) }

    /// The next complete request, if the buffer holds one.
    public mutating func next() -> Step {
        // Tolerate empty lines before a request line (RFC 9112 §2.2).
        while buffer.count >= 2 && buffer[0] == 13 && buffer[1] == 10 { buffer.removeFirst(2) }
        guard let headEnd = Self.find([13, 10, 13, 10], in: buffer[...]) else {
            if let lineEnd = Self.find([13, 10], in: buffer[...]), lineEnd > limits.requestLine {
                return .refused(Refusal(status: 414, message: "the request line is longer than \(limits.requestLine) bytes"))
            }
            if Self.find([13, 10], in: buffer[...]) == nil && buffer.count > limits.requestLine {
                return .refused(Refusal(status: 414, message: "the request line is longer than \(limits.requestLine) bytes"))
            }
            if buffer.count > limits.requestLine + limits.headerBytes {
                return .refused(Refusal(status: 431, message: "the header block is larger than \(limits.headerBytes) bytes"))
            }
            return .needMore
        }
        let head: Head
        switch Self.head(buffer[0..<headEnd], limits: limits) {
        case .success(let parsed): head = parsed
        case .failure(let refusal): return .refused(refusal)
        }
        let (version, headers) = (head.version, head.headers)
        let contentLengths = head.fields.filter { $0.name.lowercased() == "content-length" }.map(\.value)
        let encodings = head.fields.filter { $0.name.lowercased() == "transfer-encoding" }.map { $0.value.lowercased() }
        let transferEncoding = encodings.isEmpty ? nil : encodings.joined(separator: ",")
        if version == "HTTP/1.1" && headers["host"] == nil {
            return .refused(Refusal(status: 400, message: "HTTP/1.1 requires a Host header"))
        }
        let bodyStart = headEnd + 4
        func request(_ body: [UInt8], _ consumed: Int) -> Step {
            buffer.removeFirst(consumed)
            return .request(HTTPServerRequest(method: head.method, path: head.target, headers: headers, body: body, version: version))
        }
        if let transferEncoding {
            guard contentLengths.isEmpty else {
                return .refused(Refusal(status: 400, message: "Content-Length and Transfer-Encoding together are refused"))
            }
            guard transferEncoding == "chunked" else {
                return .refused(Refusal(status: 501, message: "only the chunked transfer coding is accepted"))
            }
            switch Self.dechunk(buffer[bodyStart...], limit: limits.body) {
            case .needMore: return .needMore
            case .refused(let refusal): return .refused(refusal)
            case .done(let body, let end): return request(body, end)
            }
        }
        var length = 0
        if !contentLengths.isEmpty {
            let distinct = Set(contentLengths.flatMap { $0.split(separator: ",").map { $0.trimmingCharacters(in: [" "]) } })
            guard distinct.count == 1, let only = distinct.first, !only.isEmpty, only.allSatisfy(\.isASCII), only.allSatisfy(\.isNumber),
                only.count <= 12, let parsed = Int(only)
            else {
                return .refused(Refusal(status: 400, message: "a malformed or repeated Content-Length"))
            }
            length = parsed
        }
        if length > limits.body {
            return .refused(Refusal(status: 413, message: "the body is larger than \(limits.body) bytes"))
        }
        guard buffer.count - bodyStart >= length else { return .needMore }
        return request(Array(buffer[bodyStart..<(bodyStart + length)]), bodyStart + length)
    }

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
            fields.append(Head.Field(name: name, value: String(decoding: rawValue, as: UTF8.self).trimmingCharacters(in: [" ", "\t"])))
        }
        return .success(Head(
            method: String(decoding: parts[0], as: UTF8.self), target: String(decoding: parts[1], as: UTF8.self), version: version, fields: fields))
    }

    private enum Dechunked {
        case needMore
        case refused(Refusal)
        case done([UInt8], end: Int)
    }

    /// Decodes a chunked body starting at `bytes.startIndex`; `end` is the absolute offset after it.
    private static func dechunk(_ bytes: ArraySlice<UInt8>, limit: Int) -> Dechunked {
        var body: [UInt8] = []
        var index = bytes.startIndex
        while true {
            guard let lineEnd = find([13, 10], in: bytes[index...]) else {
                return bytes.count - (index - bytes.startIndex) > 1024 ? .refused(Refusal(status: 400, message: "malformed chunk size")) : .needMore
            }
            let sizeText = String(decoding: bytes[index..<lineEnd].prefix { $0 != 59 }, as: UTF8.self).trimmingCharacters(in: [" ", "\t"])
            guard !sizeText.isEmpty, sizeText.count <= 8, let size = Int(sizeText, radix: 16) else {
                return .refused(Refusal(status: 400, message: "malformed chunk size"))
            }
            index = lineEnd + 2
            if size == 0 {
                // Trailers (ignored) up to an empty line.
                while true {
                    guard let end = find([13, 10], in: bytes[index...]) else { return .needMore }
                    if end == index { return .done(body, end: end + 2) }
                    index = end + 2
                }
            }
            if body.count + size > limit { return .refused(Refusal(status: 413, message: "the body is larger than \(limit) bytes")) }
            guard bytes.endIndex - index >= size + 2 else { return .needMore }
            guard bytes[index + size] == 13, bytes[index + size + 1] == 10 else {
                return .refused(Refusal(status: 400, message: "a chunk does not end with CRLF"))
            }
            body += bytes[index..<(index + size)]
            index += size + 2
        }
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
