/// Encodes `Encodable` values straight to compact JSON text, the other half of
/// `JSONValueDecoder`: an API response is written once, with no tree built in between (a session
/// took 47 µs through a `JSONValue` tree and its `text`).
///
/// Keys come in the order the type encodes them. An optional field that is nil is written as
/// `null`, as the Managed Agents API writes `archived_at: null`; a type whose absent fields are
/// left out instead (a usage object, which names only what was counted) conforms to
/// `OmitsNilFields`.
public enum JSONTextEncoder {
    public static func encode<T: Encodable>(_ value: T) throws -> String {
        let writer = TextWriter()
        try writer.write(value)
        return writer.out
    }
}

/// A type whose nil fields are left out of its JSON rather than written as `null`.
public protocol OmitsNilFields {}

/// JSON as itself: the free-form parts of a typed value (metadata, a tool's input schema).
extension JSONValue: Codable {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let bool = try? container.decode(Bool.self) {
            self = .bool(bool)
        } else if let number = try? container.decode(Double.self) {
            self = .number(number)
        } else if let string = try? container.decode(String.self) {
            self = .string(string)
        } else if let array = try? container.decode([JSONValue].self) {
            self = .array(array)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .number(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .array(let values): try container.encode(values)
        case .object(let members): try container.encode(members)
        }
    }
}

/// The text being written, shared by every encoder of one value.
private final class TextWriter {
    var out = ""

    init() { out.reserveCapacity(1024) }

    /// One value: JSON and strings directly, anything else through its `encode(to:)`.
    func write<T: Encodable>(_ value: T) throws {
        // Type identity, not a dynamic cast: this runs for every value below the top.
        if T.self == JSONValue.self {
            unsafeBitCast(value, to: JSONValue.self).write(to: &out)
        } else if T.self == String.self {
            JSONText.append(unsafeBitCast(value, to: String.self), to: &out)
        } else {
            let encoder = TextEncoder(writer: self, omitsNil: value is any OmitsNilFields)
            try value.encode(to: encoder)
            encoder.finish()
        }
    }
}

/// One value's encoder. What it opened (an object or an array) is closed by `finish`, after the
/// value's `encode(to:)` returns; a nested container it handed out is closed before its next
/// member, or by `finish`.
private final class TextEncoder: Encoder, SingleValueEncodingContainer {
    enum Opened { case nothing, object, array, scalar }

    let writer: TextWriter
    let omitsNil: Bool
    var opened = Opened.nothing
    var members = 0
    var nested: TextEncoder?
    var codingPath: [any CodingKey] { [] }
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    init(writer: TextWriter, omitsNil: Bool) {
        self.writer = writer
        self.omitsNil = omitsNil
    }

    func finish() {
        closeNested()
        switch opened {
        case .nothing: writer.out += "{}"
        case .object: writer.out += "}"
        case .array: writer.out += "]"
        case .scalar: break
        }
    }

    func closeNested() {
        nested?.finish()
        nested = nil
    }

    /// Starts a member: the comma before all but the first, and the key of an object's.
    func member(_ key: (any CodingKey)?) {
        closeNested()
        if members > 0 { writer.out += "," }
        members += 1
        if let key {
            JSONText.append(key.stringValue, to: &writer.out)
            writer.out += ":"
        }
    }

    /// A container's child encoder, for a nested container or a super encoder.
    func child(_ key: (any CodingKey)?) -> TextEncoder {
        member(key)
        let child = TextEncoder(writer: writer, omitsNil: omitsNil)
        nested = child
        return child
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        // A type may take its keyed container twice (a shared part, then its own fields).
        if opened == .nothing {
            writer.out += "{"
            opened = .object
        }
        return KeyedEncodingContainer(KeyedText<Key>(encoder: self))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        if opened == .nothing {
            writer.out += "["
            opened = .array
        }
        return ArrayText(encoder: self)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer { self }

    func scalar(_ text: String) {
        opened = .scalar
        writer.out += text
    }

    func number(_ value: Double) {
        opened = .scalar
        JSONText.append(number: value, to: &writer.out)
    }

    func encodeNil() { scalar("null") }
    func encode(_ value: Bool) { scalar(value ? "true" : "false") }
    func encode(_ value: String) {
        opened = .scalar
        JSONText.append(value, to: &writer.out)
    }
    func encode(_ value: Double) { number(value) }
    func encode(_ value: Float) { number(Double(value)) }
    func encode(_ value: Int) { scalar(String(value)) }
    func encode(_ value: Int8) { scalar(String(value)) }
    func encode(_ value: Int16) { scalar(String(value)) }
    func encode(_ value: Int32) { scalar(String(value)) }
    func encode(_ value: Int64) { scalar(String(value)) }
    func encode(_ value: UInt) { scalar(String(value)) }
    func encode(_ value: UInt8) { scalar(String(value)) }
    func encode(_ value: UInt16) { scalar(String(value)) }
    func encode(_ value: UInt32) { scalar(String(value)) }
    func encode(_ value: UInt64) { scalar(String(value)) }
    func encode<T: Encodable>(_ value: T) throws {
        opened = .scalar
        try writer.write(value)
    }
}

private struct KeyedText<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let encoder: TextEncoder
    var codingPath: [any CodingKey] { [] }

    func put(_ key: Key, _ text: String) {
        encoder.member(key)
        encoder.writer.out += text
    }

    /// An optional field: `null` when nil, unless the type leaves nil fields out.
    func present<T>(_ value: T?, _ key: Key, _ write: (T) throws -> Void) rethrows {
        if let value {
            encoder.member(key)
            try write(value)
        } else if !encoder.omitsNil {
            put(key, "null")
        }
    }

    mutating func encodeNil(forKey key: Key) { put(key, "null") }
    mutating func encode(_ value: Bool, forKey key: Key) { put(key, value ? "true" : "false") }
    mutating func encode(_ value: String, forKey key: Key) {
        encoder.member(key)
        JSONText.append(value, to: &encoder.writer.out)
    }
    mutating func encode(_ value: Double, forKey key: Key) {
        encoder.member(key)
        JSONText.append(number: value, to: &encoder.writer.out)
    }
    mutating func encode(_ value: Float, forKey key: Key) { encode(Double(value), forKey: key) }
    mutating func encode(_ value: Int, forKey key: Key) { put(key, String(value)) }
    mutating func encode(_ value: Int8, forKey key: Key) { put(key, String(value)) }
    mutating func encode(_ value: Int16, forKey key: Key) { put(key, String(value)) }
    mutating func encode(_ value: Int32, forKey key: Key) { put(key, String(value)) }
    mutating func encode(_ value: Int64, forKey key: Key) { put(key, String(value)) }
    mutating func encode(_ value: UInt, forKey key: Key) { put(key, String(value)) }
    mutating func encode(_ value: UInt8, forKey key: Key) { put(key, String(value)) }
    mutating func encode(_ value: UInt16, forKey key: Key) { put(key, String(value)) }
    mutating func encode(_ value: UInt32, forKey key: Key) { put(key, String(value)) }
    mutating func encode(_ value: UInt64, forKey key: Key) { put(key, String(value)) }
    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        encoder.member(key)
        try encoder.writer.write(value)
    }

    mutating func encodeIfPresent(_ value: Bool?, forKey key: Key) { present(value, key) { encoder.writer.out += $0 ? "true" : "false" } }
    mutating func encodeIfPresent(_ value: String?, forKey key: Key) { present(value, key) { JSONText.append($0, to: &encoder.writer.out) } }
    mutating func encodeIfPresent(_ value: Double?, forKey key: Key) { present(value, key) { JSONText.append(number: $0, to: &encoder.writer.out) } }
    mutating func encodeIfPresent(_ value: Float?, forKey key: Key) { encodeIfPresent(value.map(Double.init), forKey: key) }
    mutating func encodeIfPresent(_ value: Int?, forKey key: Key) { present(value, key) { encoder.writer.out += String($0) } }
    mutating func encodeIfPresent(_ value: Int8?, forKey key: Key) { present(value, key) { encoder.writer.out += String($0) } }
    mutating func encodeIfPresent(_ value: Int16?, forKey key: Key) { present(value, key) { encoder.writer.out += String($0) } }
    mutating func encodeIfPresent(_ value: Int32?, forKey key: Key) { present(value, key) { encoder.writer.out += String($0) } }
    mutating func encodeIfPresent(_ value: Int64?, forKey key: Key) { present(value, key) { encoder.writer.out += String($0) } }
    mutating func encodeIfPresent(_ value: UInt?, forKey key: Key) { present(value, key) { encoder.writer.out += String($0) } }
    mutating func encodeIfPresent(_ value: UInt8?, forKey key: Key) { present(value, key) { encoder.writer.out += String($0) } }
    mutating func encodeIfPresent(_ value: UInt16?, forKey key: Key) { present(value, key) { encoder.writer.out += String($0) } }
    mutating func encodeIfPresent(_ value: UInt32?, forKey key: Key) { present(value, key) { encoder.writer.out += String($0) } }
    mutating func encodeIfPresent(_ value: UInt64?, forKey key: Key) { present(value, key) { encoder.writer.out += String($0) } }
    mutating func encodeIfPresent<T: Encodable>(_ value: T?, forKey key: Key) throws {
        try present(value, key) { try encoder.writer.write($0) }
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key) -> KeyedEncodingContainer<NestedKey> {
        encoder.child(key).container(keyedBy: keyType)
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer { encoder.child(key).unkeyedContainer() }
    mutating func superEncoder() -> any Encoder { encoder.child(Key(stringValue: "super")) }
    mutating func superEncoder(forKey key: Key) -> any Encoder { encoder.child(key) }
}

private struct ArrayText: UnkeyedEncodingContainer {
    let encoder: TextEncoder
    var codingPath: [any CodingKey] { [] }
    var count: Int { encoder.members }

    func add(_ text: String) {
        encoder.member(nil)
        encoder.writer.out += text
    }

    mutating func encodeNil() { add("null") }
    mutating func encode(_ value: Bool) { add(value ? "true" : "false") }
    mutating func encode(_ value: String) {
        encoder.member(nil)
        JSONText.append(value, to: &encoder.writer.out)
    }
    mutating func encode(_ value: Double) {
        encoder.member(nil)
        JSONText.append(number: value, to: &encoder.writer.out)
    }
    mutating func encode(_ value: Float) { encode(Double(value)) }
    mutating func encode(_ value: Int) { add(String(value)) }
    mutating func encode(_ value: Int8) { add(String(value)) }
    mutating func encode(_ value: Int16) { add(String(value)) }
    mutating func encode(_ value: Int32) { add(String(value)) }
    mutating func encode(_ value: Int64) { add(String(value)) }
    mutating func encode(_ value: UInt) { add(String(value)) }
    mutating func encode(_ value: UInt8) { add(String(value)) }
    mutating func encode(_ value: UInt16) { add(String(value)) }
    mutating func encode(_ value: UInt32) { add(String(value)) }
    mutating func encode(_ value: UInt64) { add(String(value)) }
    mutating func encode<T: Encodable>(_ value: T) throws {
        encoder.member(nil)
        try encoder.writer.write(value)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        encoder.child(nil).container(keyedBy: keyType)
    }

    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer { encoder.child(nil).unkeyedContainer() }
    mutating func superEncoder() -> any Encoder { encoder.child(nil) }
}
