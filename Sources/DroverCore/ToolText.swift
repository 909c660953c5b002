import Foundation

/// Tool output as text a model can read and a log can store, whatever bytes a program wrote.
///
/// Postgres `jsonb` cannot hold U+0000 and JSON text cannot hold invalid UTF-8, yet programs
/// write both (`printf 'a\0b'`, `cat` of a binary, `find -print0`). The text shown replaces each
/// NUL with U+2400 (␀) and each invalid byte sequence with U+FFFD (�), so the model sees the
/// rest; when anything was replaced, the exact bytes travel beside it as base64
/// (`output_base64` from the pool, `content_base64` in the log), so nothing is lost.
public enum ToolText {
    public static let nulSymbol: Character = "\u{2400}"

    /// The readable text, and the bytes as base64 when the text is not exactly those bytes.
    public static func render(_ bytes: [UInt8]) -> (text: String, base64: String?) {
        let decoded = String(decoding: bytes, as: UTF8.self)
        let exact = !bytes.contains(0) && Array(decoded.utf8) == bytes
        if exact { return (decoded, nil) }
        return (decoded.replacingOccurrences(of: "\u{0}", with: String(nulSymbol)), Data(bytes).base64EncodedString())
    }

    /// The exact bytes behind a rendered text: the base64 when there is one, else the text.
    public static func bytes(text: String, base64: String?) -> [UInt8]? {
        guard let base64 else { return Array(text.utf8) }
        return Data(base64Encoded: base64).map(Array.init)
    }

    /// `value` with every NUL in its strings (keys included) shown as U+2400, so that it can be
    /// stored as `jsonb`: for what a model or a user wrote, where there is no byte stream to keep.
    public static func storable(_ value: JSONValue) -> JSONValue {
        func shown(_ text: String) -> String {
            text.utf8.contains(0) ? text.replacingOccurrences(of: "\u{0}", with: String(nulSymbol)) : text
        }
        switch value {
        case .string(let text): return .string(shown(text))
        case .array(let values): return .array(values.map(storable))
        case .object(let members):
            return .object(Dictionary(members.map { (shown($0.key), storable($0.value)) }, uniquingKeysWith: { a, _ in a }))
        default: return value
        }
    }
}
