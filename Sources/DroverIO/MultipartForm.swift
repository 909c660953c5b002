import Foundation

/// A `multipart/form-data` body (RFC 7578), as the SDK's `files.upload` sends it: parts split at
/// the boundary from the `content-type` header, each with its `content-disposition` name and
/// optional filename and content type.
///
/// Strict, since the bytes come from any client: the boundary must be given (1–70 characters),
/// the body must open with it and close with its final delimiter, every part needs a
/// `form-data` disposition with a name, and part headers and part counts are bounded. A body that
/// is not that is refused whole (`MultipartForm.Malformed`), never read in part.
public struct MultipartForm: Sendable, Equatable {
    public struct Part: Sendable, Equatable {
        public var name: String
        public var filename: String?
        public var contentType: String?
        public var body: [UInt8]
    }

    public struct Malformed: Error, Sendable, Equatable, CustomStringConvertible {
        public var description: String
        init(_ description: String) { self.description = description }
    }

    /// Parts a body may hold unless the caller says otherwise (a file upload has one or two; a
    /// skill's upload, one per file of the skill).
    public static let maxParts = 16
    public static let maxPartHeaderBytes = 8 * 1024

    public var parts: [Part]

    /// The first part named `name`.
    public func part(_ name: String) -> Part? { parts.first { $0.name == name } }

    public init(body: [UInt8], contentType: String, maxParts: Int = MultipartForm.maxParts) throws(Malformed) {
        let boundary = try Self.boundary(contentType)
        let delimiter = Array("--\(boundary)".utf8)
        let separator = Array("\r\n--\(boundary)".utf8)
        guard body.starts(with: delimiter) else { throw Malformed("the body does not open with the boundary") }
        var parts: [Part] = []
        var at = delimiter.count
        while true {
            // After a delimiter: "--" ends the body, CRLF starts a part.
            if body[at...].starts(with: [45, 45]) {
                let rest = body[(at + 2)...]
                guard rest.isEmpty || rest.elementsEqual([13, 10]) else { throw Malformed("bytes after the final boundary") }
                break
            }
            guard body[at...].starts(with: [13, 10]) else { throw Malformed("a boundary is not followed by a line break") }
            at += 2
            guard parts.count < maxParts else { throw Malformed("more than \(maxParts) parts") }
            guard let headEnd = HTTPRequestParser.find([13, 10, 13, 10], in: body[at..<min(body.count, at + Self.maxPartHeaderBytes + 4)]) else {
                throw Malformed("a part's headers do not end within \(Self.maxPartHeaderBytes) bytes")
            }
            let head = body[at..<headEnd]
            guard let end = HTTPRequestParser.find(separator, in: body[(headEnd + 4)...]) else { throw Malformed("a part is not closed by the boundary") }
            parts.append(try Self.part(head: head, body: Array(body[(headEnd + 4)..<end])))
            at = end + separator.count
        }
        guard !parts.isEmpty else { throw Malformed("no parts") }
        self.parts = parts
    }

    /// The `boundary` parameter of a `multipart/form-data` content type.
    static func boundary(_ contentType: String) throws(Malformed) -> String {
        let fields = contentType.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }
        guard fields.first?.lowercased() == "multipart/form-data" else { throw Malformed("the content type is not multipart/form-data") }
        for field in fields.dropFirst() {
            guard let equals = field.firstIndex(of: "="), field[..<equals].lowercased() == "boundary" else { continue }
            var value = String(field[field.index(after: equals)...])
            if value.count >= 2, value.hasPrefix("\""), value.hasSuffix("\"") { value = String(value.dropFirst().dropLast()) }
            // RFC 2046's bchars: printable ASCII and spaces, but not a space last.
            guard (1...70).contains(value.utf8.count), value.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }), value.utf8.last != 0x20 else {
                throw Malformed("the boundary must be 1 to 70 printable characters, not ending in a space")
            }
            return value
        }
        throw Malformed("the content type has no boundary")
    }

    static func part(head: ArraySlice<UInt8>, body: [UInt8]) throws(Malformed) -> Part {
        var name: String?
        var filename: String?
        var contentType: String?
        for line in String(decoding: head, as: UTF8.self).components(separatedBy: "\r\n") {
            guard let colon = line.firstIndex(of: ":") else { throw Malformed("a part header without a colon") }
            let field = line[..<colon].lowercased()
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            switch field {
            case "content-disposition":
                let parameters = Self.parameters(value)
                guard parameters.first?.key.lowercased() == "form-data" else { throw Malformed("a part's disposition is not form-data") }
                for (key, value) in parameters.dropFirst() {
                    switch key.lowercased() {
                    case "name": name = value
                    case "filename": filename = value
                    default: break
                    }
                }
            case "content-type": contentType = value
            default: break
            }
        }
        guard let name, !name.isEmpty else { throw Malformed("a part without a name") }
        return Part(name: name, filename: filename, contentType: contentType, body: body)
    }

    /// `form-data; name="file"; filename="a;b.txt"`: the first token, then key=value pairs with
    /// quoted values (backslash escapes a quote), semicolons inside quotes kept.
    static func parameters(_ text: String) -> [(key: String, value: String)] {
        var result: [(key: String, value: String)] = []
        var current = ""
        var quoted = false
        var escaped = false
        var pieces: [String] = []
        for character in text {
            if escaped {
                current.append(character)
                escaped = false
            } else if quoted && character == "\\" {
                escaped = true
            } else if character == "\"" {
                quoted.toggle()
            } else if character == ";" && !quoted {
                pieces.append(current)
                current = ""
            } else {
                current.append(character)
            }
        }
        pieces.append(current)
        for piece in pieces {
            let trimmed = piece.trimmingCharacters(in: .whitespaces)
            guard !trimmed.isEmpty else { continue }
            if let equals = trimmed.firstIndex(of: "=") {
                result.append((trimmed[..<equals].trimmingCharacters(in: .whitespaces), String(trimmed[trimmed.index(after: equals)...])))
            } else {
                result.append((trimmed, ""))
            }
        }
        return result
    }
}
