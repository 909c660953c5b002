/// A strict RFC 8259 parser from UTF-8 bytes straight to `JSONValue`.
///
/// Every daemon parses JSON on its hot path (pool lines, model streams, events read back from
/// Postgres, API bodies). Foundation's `JSONSerialization` built `Any` trees of bridged
/// `NSNumber`s and dictionaries that `JSONValue(any:)` then cast back, node by node: a profile of
/// a 1,000-session burst put a tenth of the whole machine's CPU there. This reads the bytes once.
///
/// It accepts exactly JSON text: any value at the top level (as `fragmentsAllowed` did), the four
/// whitespace bytes, no trailing bytes, no byte-order mark, valid UTF-8 only, no raw control
/// characters in strings, escapes as the grammar spells them with surrogates paired, numbers as
/// the grammar spells them (no leading zeros, `+`, bare `.` or `NaN`). Nesting deeper than
/// `maxDepth` is refused, as Foundation refused it, so a hostile line cannot exhaust the stack.
/// A duplicate key keeps its last value.
struct JSONParser: ~Copyable {
    static let maxDepth = 512

    private let bytes: UnsafeBufferPointer<UInt8>
    private var index = 0
    private var depth = 0
    /// Scratch for strings with escapes, reused across the whole parse.
    private var scratch: [UInt8] = []

    private init(_ bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

    static func parse(_ bytes: UnsafeBufferPointer<UInt8>) throws(DroverError) -> JSONValue {
        var parser = JSONParser(bytes)
        parser.skipWhitespace()
        let value = try parser.value()
        parser.skipWhitespace()
        guard parser.index == bytes.count else { throw parser.error("unexpected bytes after the value") }
        return value
    }

    private func error(_ reason: String) -> DroverError {
        DroverError(.invalidArgument, "malformed JSON at byte \(index): \(reason)")
    }

    private mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x09, 0x0A, 0x0D: index += 1
            default: return
            }
        }
    }

    private mutating func value() throws(DroverError) -> JSONValue {
        guard index < bytes.count else { throw error("the text ends where a value should be") }
        switch bytes[index] {
        case UInt8(ascii: "{"): return try object()
        case UInt8(ascii: "["): return try array()
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try number())
        default: throw error("no value starts with this byte")
        }
    }

    private mutating func literal(_ word: StaticString) throws(DroverError) {
        let expected = UnsafeBufferPointer(start: word.utf8Start, count: word.utf8CodeUnitCount)
        guard bytes.count - index >= expected.count, bytes[index..<index + expected.count].elementsEqual(expected) else {
            throw error("expected \(word)")
        }
        index += expected.count
    }

    private mutating func object() throws(DroverError) -> JSONValue {
        var members: [String: JSONValue] = [:]
        try items(closing: UInt8(ascii: "}"), "object") { parser throws(DroverError) in
            guard parser.index < parser.bytes.count, parser.bytes[parser.index] == UInt8(ascii: "\"") else {
                throw parser.error("expected a member name")
            }
            let key = try parser.string()
            parser.skipWhitespace()
            guard parser.index < parser.bytes.count, parser.bytes[parser.index] == UInt8(ascii: ":") else { throw parser.error("expected ':'") }
            parser.index += 1
            parser.skipWhitespace()
            members[key] = try parser.value()
        }
        return .object(members)
    }

    private mutating func array() throws(DroverError) -> JSONValue {
        var elements: [JSONValue] = []
        try items(closing: UInt8(ascii: "]"), "array") { parser throws(DroverError) in elements.append(try parser.value()) }
        return .array(elements)
    }

    /// The items of an object or array from its opening byte: `item` reads each, commas between,
    /// until `closing`.
    private mutating func items(closing: UInt8, _ what: String, _ item: (inout JSONParser) throws(DroverError) -> Void) throws(DroverError) {
        depth += 1
        guard depth <= Self.maxDepth else { throw error("nested deeper than \(Self.maxDepth)") }
        index += 1
        skipWhitespace()
        if index < bytes.count, bytes[index] == closing {
            index += 1
            depth -= 1
            return
        }
        while true {
            try item(&self)
            skipWhitespace()
            guard index < bytes.count else { throw error("the \(what) is not closed") }
            switch bytes[index] {
            case UInt8(ascii: ","):
                index += 1
                skipWhitespace()
            case closing:
                index += 1
                depth -= 1
                return
            default: throw error("expected ',' or '\(Character(Unicode.Scalar(closing)))'")
            }
        }
    }

    /// A string starting at the opening quote. Runs without escapes are validated and copied
    /// once; escapes are decoded into the scratch buffer.
    private mutating func string() throws(DroverError) -> String {
        index += 1
        var start = index
        var escaped = false
        scratch.removeAll(keepingCapacity: true)
        while true {
            guard index < bytes.count else { throw error("the string is not closed") }
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") {
                let run = UnsafeBufferPointer(rebasing: bytes[start..<index])
                index += 1
                if !escaped { return try text(run) }
                scratch.append(contentsOf: run)
                return try scratch.withUnsafeBufferPointer { buffer throws(DroverError) in try text(buffer) }
            }
            if byte < 0x20 { throw error("a control character inside a string") }
            if byte == UInt8(ascii: "\\") {
                escaped = true
                scratch.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[start..<index]))
                try escape()
                start = index
                continue
            }
            index += 1
        }
    }

    private func text(_ utf8: UnsafeBufferPointer<UInt8>) throws(DroverError) -> String {
        guard let text = String(validating: utf8, as: UTF8.self) else { throw error("a string is not valid UTF-8") }
        return text
    }

    /// One escape at the backslash, appended to the scratch buffer as UTF-8.
    private mutating func escape() throws(DroverError) {
        index += 1
        guard index < bytes.count else { throw error("the string is not closed") }
        let byte = bytes[index]
        index += 1
        switch byte {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): scratch.append(byte)
        case UInt8(ascii: "b"): scratch.append(0x08)
        case UInt8(ascii: "f"): scratch.append(0x0C)
        case UInt8(ascii: "n"): scratch.append(0x0A)
        case UInt8(ascii: "r"): scratch.append(0x0D)
        case UInt8(ascii: "t"): scratch.append(0x09)
        case UInt8(ascii: "u"):
            var scalar = UInt32(try hex4())
            if (0xD800...0xDBFF).contains(scalar) {
                guard bytes.count - index >= 6, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u") else {
                    throw error("a high surrogate without its low surrogate")
                }
                index += 2
                let low = UInt32(try hex4())
                guard (0xDC00...0xDFFF).contains(low) else { throw error("a high surrogate without its low surrogate") }
                scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
            } else if (0xDC00...0xDFFF).contains(scalar) {
                throw error("a low surrogate without its high surrogate")
            }
            // Not a surrogate, so a valid scalar.
            scratch.append(contentsOf: String(Unicode.Scalar(scalar)!).utf8)
        default: throw error("an unknown escape")
        }
    }

    private mutating func hex4() throws(DroverError) -> UInt16 {
        guard bytes.count - index >= 4 else { throw error("\\u needs four hex digits") }
        var value: UInt16 = 0
        for _ in 0..<4 {
            let byte = bytes[index]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw error("\\u needs four hex digits")
            }
            value = value << 4 | UInt16(digit)
            index += 1
        }
        return value
    }

    private func isDigit(_ at: Int) -> Bool {
        at < bytes.count && bytes[at] >= UInt8(ascii: "0") && bytes[at] <= UInt8(ascii: "9")
    }

    /// A number as the grammar spells it, to the nearest `Double`. Whole numbers of up to 15
    /// digits are exact without going through text.
    private mutating func number() throws(DroverError) -> Double {
        let start = index
        let negative = bytes[index] == UInt8(ascii: "-")
        if negative { index += 1 }
        guard isDigit(index) else { throw error("a number needs a digit") }
        var whole: Int64 = 0
        let digitsStart = index
        if bytes[index] == UInt8(ascii: "0") {
            index += 1
        } else {
            while isDigit(index) {
                if index - digitsStart < 18 { whole = whole * 10 + Int64(bytes[index] - UInt8(ascii: "0")) }
                index += 1
            }
        }
        let digits = index - digitsStart
        var simple = digits <= 15
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            index += 1
            guard isDigit(index) else { throw error("a fraction needs a digit") }
            while isDigit(index) { index += 1 }
            simple = false
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
            index += 1
            if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") { index += 1 }
            guard isDigit(index) else { throw error("an exponent needs a digit") }
            while isDigit(index) { index += 1 }
            simple = false
        }
        if simple { return negative ? -Double(whole) : Double(whole) }
        let literal = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
        guard let value = Double(literal) else { throw error("a number out of range") }
        return value
    }
}
