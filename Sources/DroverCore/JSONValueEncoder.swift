/// Encodes `Encodable` values to a `JSONValue` (whose `text` is compact, keys sorted), the other
/// half of `JSONValueDecoder`.
///
/// An optional field that is nil is written as `null`, as the Managed Agents API writes
/// `archived_at: null`; a type whose absent fields are left out instead (a usage object, which
/// names only what was counted) says so by conforming to `OmitsNilFields`.
public enum JSONValueEncoder {
    public static func encode<T: Encodable>(_ value: T) throws -> JSONValue {
        try ValueEncoder.encode(value, codingPath: [])
    }
}

/// A type whose nil fields are left out of its JSON rather than written as `null`.
public protocol OmitsNilFields {}

/// What a container is building: filled in place while the value encodes, then read once.
private final class Node {
    enum Kind {
        case value(JSONValue)
        case object([String: Node])
        case array([Node])
    }

    var kind: Kind
    init(_ kind: Kind) { self.kind = kind }

    var json: JSONValue {
        switch kind {
        case .value(let value): value
        case .object(let members): .object(members.mapValues(\.json))
        case .array(let elements): .array(elements.map(\.json))
        }
    }

    func set(_ key: String, _ node: Node) {
        guard case .object(var members) = kind else { return }
        kind = .value(.null)  // the dictionary is uniquely referenced while it is changed
        members[key] = node
        kind = .object(members)
    }

    func append(_ node: Node) {
        guard case .array(var elements) = kind else { return }
        kind = .value(.null)
        elements.append(node)
        kind = .array(elements)
    }

    var count: Int {
        if case .array(let elements) = kind { return elements.count }
        return 0
    }
}

private final class ValueEncoder: Encoder, SingleValueEncodingContainer {
    let codingPath: [any CodingKey]
    let omitsNil: Bool
    var userInfo: [CodingUserInfoKey: Any] { [:] }
    var root: Node?

    init(codingPath: [any CodingKey], omitsNil: Bool) {
        self.codingPath = codingPath
        self.omitsNil = omitsNil
    }

    static func encode<T: Encodable>(_ value: T, codingPath: [any CodingKey]) throws -> JSONValue {
        if let json = value as? JSONValue { return json }
        let encoder = ValueEncoder(codingPath: codingPath, omitsNil: value is any OmitsNilFields)
        try value.encode(to: encoder)
        return encoder.root?.json ?? .object([:])
    }

    /// The node a container of `kind` writes into: the one already begun (a type may take its
    /// keyed container twice, to write a shared part and then its own fields), else a new one.
    func begin(_ kind: Node.Kind) -> Node {
        if let root { return root }
        let node = Node(kind)
        root = node
        return node
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        KeyedEncodingContainer(KeyedNode<Key>(node: begin(.object([:])), codingPath: codingPath, omitsNil: omitsNil))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer { ArrayNode(node: begin(.array([])), codingPath: codingPath) }
    func singleValueContainer() -> any SingleValueEncodingContainer { self }

    func put(_ value: JSONValue) {
        if let root { root.kind = .value(value) } else { root = Node(.value(value)) }
    }
    func encodeNil() { put(.null) }
    func encode(_ value: Bool) { put(.bool(value)) }
    func encode(_ value: String) { put(.string(value)) }
    func encode(_ value: Double) { put(.number(value)) }
    func encode(_ value: Float) { put(.number(Double(value))) }
    func encode(_ value: Int) { put(.number(Double(value))) }
    func encode(_ value: Int8) { put(.number(Double(value))) }
    func encode(_ value: Int16) { put(.number(Double(value))) }
    func encode(_ value: Int32) { put(.number(Double(value))) }
    func encode(_ value: Int64) { put(.number(Double(value))) }
    func encode(_ value: UInt) { put(.number(Double(value))) }
    func encode(_ value: UInt8) { put(.number(Double(value))) }
    func encode(_ value: UInt16) { put(.number(Double(value))) }
    func encode(_ value: UInt32) { put(.number(Double(value))) }
    func encode(_ value: UInt64) { put(.number(Double(value))) }
    func encode<T: Encodable>(_ value: T) throws { put(try Self.encode(value, codingPath: codingPath)) }
}

private struct KeyedNode<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let node: Node
    let codingPath: [any CodingKey]
    let omitsNil: Bool

    func put(_ value: JSONValue, _ key: Key) { node.set(key.stringValue, Node(.value(value))) }

    /// An optional field's value: `null` when nil, unless the type leaves nil fields out.
    func present(_ value: JSONValue?, _ key: Key) {
        if let value { put(value, key) } else if !omitsNil { put(.null, key) }
    }

    mutating func encodeNil(forKey key: Key) { put(.null, key) }
    mutating func encode(_ value: Bool, forKey key: Key) { put(.bool(value), key) }
    mutating func encode(_ value: String, forKey key: Key) { put(.string(value), key) }
    mutating func encode(_ value: Double, forKey key: Key) { put(.number(value), key) }
    mutating func encode(_ value: Float, forKey key: Key) { put(.number(Double(value)), key) }
    mutating func encode(_ value: Int, forKey key: Key) { put(.number(Double(value)), key) }
    mutating func encode(_ value: Int8, forKey key: Key) { put(.number(Double(value)), key) }
    mutating func encode(_ value: Int16, forKey key: Key) { put(.number(Double(value)), key) }
    mutating func encode(_ value: Int32, forKey key: Key) { put(.number(Double(value)), key) }
    mutating func encode(_ value: Int64, forKey key: Key) { put(.number(Double(value)), key) }
    mutating func encode(_ value: UInt, forKey key: Key) { put(.number(Double(value)), key) }
    mutating func encode(_ value: UInt8, forKey key: Key) { put(.number(Double(value)), key) }
    mutating func encode(_ value: UInt16, forKey key: Key) { put(.number(Double(value)), key) }
    mutating func encode(_ value: UInt32, forKey key: Key) { put(.number(Double(value)), key) }
    mutating func encode(_ value: UInt64, forKey key: Key) { put(.number(Double(value)), key) }
    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        put(try ValueEncoder.encode(value, codingPath: codingPath + [key]), key)
    }

    mutating func encodeIfPresent(_ value: Bool?, forKey key: Key) { present(value.map(JSONValue.bool), key) }
    mutating func encodeIfPresent(_ value: String?, forKey key: Key) { present(value.map(JSONValue.string), key) }
    mutating func encodeIfPresent(_ value: Double?, forKey key: Key) { present(value.map(JSONValue.number), key) }
    mutating func encodeIfPresent(_ value: Float?, forKey key: Key) { present(value.map { .number(Double($0)) }, key) }
    mutating func encodeIfPresent(_ value: Int?, forKey key: Key) { present(value.map { .number(Double($0)) }, key) }
    mutating func encodeIfPresent(_ value: Int8?, forKey key: Key) { present(value.map { .number(Double($0)) }, key) }
    mutating func encodeIfPresent(_ value: Int16?, forKey key: Key) { present(value.map { .number(Double($0)) }, key) }
    mutating func encodeIfPresent(_ value: Int32?, forKey key: Key) { present(value.map { .number(Double($0)) }, key) }
    mutating func encodeIfPresent(_ value: Int64?, forKey key: Key) { present(value.map { .number(Double($0)) }, key) }
    mutating func encodeIfPresent(_ value: UInt?, forKey key: Key) { present(value.map { .number(Double($0)) }, key) }
    mutating func encodeIfPresent(_ value: UInt8?, forKey key: Key) { present(value.map { .number(Double($0)) }, key) }
    mutating func encodeIfPresent(_ value: UInt16?, forKey key: Key) { present(value.map { .number(Double($0)) }, key) }
    mutating func encodeIfPresent(_ value: UInt32?, forKey key: Key) { present(value.map { .number(Double($0)) }, key) }
    mutating func encodeIfPresent(_ value: UInt64?, forKey key: Key) { present(value.map { .number(Double($0)) }, key) }
    mutating func encodeIfPresent<T: Encodable>(_ value: T?, forKey key: Key) throws {
        present(try value.map { try ValueEncoder.encode($0, codingPath: codingPath + [key]) }, key)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key) -> KeyedEncodingContainer<NestedKey> {
        let child = Node(.object([:]))
        node.set(key.stringValue, child)
        return KeyedEncodingContainer(KeyedNode<NestedKey>(node: child, codingPath: codingPath + [key], omitsNil: omitsNil))
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        let child = Node(.array([]))
        node.set(key.stringValue, child)
        return ArrayNode(node: child, codingPath: codingPath + [key])
    }

    mutating func superEncoder() -> any Encoder { superEncoder(forKey: Key(stringValue: "super")!) }

    mutating func superEncoder(forKey key: Key) -> any Encoder {
        let encoder = ValueEncoder(codingPath: codingPath + [key], omitsNil: omitsNil)
        let child = encoder.begin(.object([:]))
        node.set(key.stringValue, child)
        return encoder
    }
}

private struct ArrayNode: UnkeyedEncodingContainer {
    let node: Node
    let codingPath: [any CodingKey]
    var count: Int { node.count }

    func add(_ value: JSONValue) { node.append(Node(.value(value))) }

    mutating func encodeNil() { add(.null) }
    mutating func encode(_ value: Bool) { add(.bool(value)) }
    mutating func encode(_ value: String) { add(.string(value)) }
    mutating func encode(_ value: Double) { add(.number(value)) }
    mutating func encode(_ value: Float) { add(.number(Double(value))) }
    mutating func encode(_ value: Int) { add(.number(Double(value))) }
    mutating func encode(_ value: Int8) { add(.number(Double(value))) }
    mutating func encode(_ value: Int16) { add(.number(Double(value))) }
    mutating func encode(_ value: Int32) { add(.number(Double(value))) }
    mutating func encode(_ value: Int64) { add(.number(Double(value))) }
    mutating func encode(_ value: UInt) { add(.number(Double(value))) }
    mutating func encode(_ value: UInt8) { add(.number(Double(value))) }
    mutating func encode(_ value: UInt16) { add(.number(Double(value))) }
    mutating func encode(_ value: UInt32) { add(.number(Double(value))) }
    mutating func encode(_ value: UInt64) { add(.number(Double(value))) }
    mutating func encode<T: Encodable>(_ value: T) throws {
        add(try ValueEncoder.encode(value, codingPath: codingPath + [Index(count)]))
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        let child = Node(.object([:]))
        let path = codingPath + [Index(count)]
        node.append(child)
        return KeyedEncodingContainer(KeyedNode<NestedKey>(node: child, codingPath: path, omitsNil: false))
    }

    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        let child = Node(.array([]))
        let path = codingPath + [Index(count)]
        node.append(child)
        return ArrayNode(node: child, codingPath: path)
    }

    mutating func superEncoder() -> any Encoder {
        let encoder = ValueEncoder(codingPath: codingPath + [Index(count)], omitsNil: false)
        node.append(encoder.begin(.object([:])))
        return encoder
    }
}

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
