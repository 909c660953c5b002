/// Helpers for writing JSON text by hand where payloads must pass through byte-for-byte.
public enum JSONText {
    /// `value` as a JSON string literal, quotes included.
    public static func quote(_ value: String) -> String {
        var out = ""
        append(value, to: &out)
        return out
    }

    /// Appends `value` as a JSON string literal to `out`. Runs that need no escape are copied
    /// whole (every response and log line goes through here, and most text has nothing to escape).
    public static func append(_ value: String, to out: inout String) {
        var value = value
        // Most text has nothing to escape: then it is appended as it is, with no copy between.
        if value.withUTF8({ bytes in !bytes.contains { $0 < 0x20 || $0 == 0x22 || $0 == 0x5C } }) {
            out += "\""
            out += value
            out += "\""
            return
        }
        value.withUTF8 { bytes in
            out += "\""
            var start = 0
            for (index, byte) in bytes.enumerated() where byte < 0x20 || byte == 0x22 || byte == 0x5C {
                if start < index { out += String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self) }
                switch byte {
                case 0x22: out += "\\\""
                case 0x5C: out += "\\\\"
                case 0x0A: out += "\\n"
                case 0x0D: out += "\\r"
                case 0x09: out += "\\t"
                default:
                    let hex = String(byte, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                }
                start = index + 1
            }
            if start < bytes.count { out += String(decoding: UnsafeBufferPointer(rebasing: bytes[start...]), as: UTF8.self) }
            out += "\""
        }
    }

    /// Appends a number as JSON writes it: whole numbers below 10^15 without a fraction, others
    /// as Swift prints a `Double` (exactly round-tripping), and `null` for what JSON cannot hold.
    public static func append(number value: Double, to out: inout String) {
        if value.isFinite, value == value.rounded(), abs(value) < 1e15 {
            out += String(Int64(value))
        } else {
            out += value.isFinite ? String(value) : "null"
        }
    }

    /// A JSON object from already-encoded member values, in the given order.
    public static func object(_ members: [(String, String)]) -> String {
        "{" + members.map { quote($0.0) + ":" + $0.1 }.joined(separator: ",") + "}"
    }

    /// A `user.message` payload with one text block, as Managed Agents spells it.
    public static func userMessage(_ text: String) -> String {
        #"{"content":[{"type":"text","text":"# + quote(text) + "}]}"
    }
}
