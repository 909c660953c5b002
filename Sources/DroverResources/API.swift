import DroverCore

/// The Managed Agents API's resources as Swift values, mirroring the pinned `anthropic` SDK's
/// models (`types/beta/**`) field for field, with the SDK's field names on the wire.
///
/// Postgres composes each resource in one statement (`drover.api_*_json`, so a retrieve is one
/// round trip and reads the log through its indexes); the store decodes that JSON into these
/// types and the API encodes them, so what a response can hold is what its type says, checked by
/// the compiler. `RenderAgreement` (Tests/DroverAPITests) checks each render against its type both
/// ways. Parts the
/// SDK leaves open (metadata values, a tool's input schema) and unions Drover stores as the
/// client sent them once checked (a deployment's initial events) are `JSONValue`.
public enum API {}

/// A resource the API serves: decoded from its SQL render, encoded into a response.
public protocol APIResource: Codable, Sendable, Equatable {}

extension APIResource {
    /// The resource as a response writes it (`null` for an absent optional field).
    public var jsonText: String {
        get throws { try JSONTextEncoder.encode(self) }
    }

    /// The resource as a `JSONValue`, for what reads it back (an event's payload, a test).
    public var json: JSONValue {
        get throws { try JSONValue.parse(try jsonText) }
    }

    /// Decodes a render; a render its type cannot hold is the server's fault (`render_mismatch`).
    public static func decode(render: JSONValue) throws -> Self {
        try decode(render) { DroverError(.renderMismatch, "\(Self.self): the render does not fit its type: \($0)") }
    }

    /// Decodes the render of what a request is writing, before it commits: what the type cannot
    /// hold came from the request (metadata that is not strings, a custom tool without its
    /// description), so it is refused (`invalid_argument`) and the write rolled back.
    public static func decode(written render: JSONValue) throws -> Self {
        try decode(render) { DroverError(.invalidArgument, "this \(name) cannot be served: \($0)") }
    }

    /// `render` as this type, or the error `refusal` makes of where and why it does not fit.
    private static func decode(_ render: JSONValue, refusal: (String) -> DroverError) throws -> Self {
        do {
            return try JSONValueDecoder.decode(Self.self, from: render)
        } catch let error as DecodingError {
            throw refusal(error.summary)
        }
    }

    /// The resource's name in messages (`agent`, `session`, …).
    static var name: String {
        let type = String(describing: Self.self)
        return type.enumerated().map { $0.offset > 0 && $0.element.isUppercase ? " " + $0.element.lowercased() : $0.element.lowercased() }.joined()
    }
}

extension DecodingError {
    /// Where and what, in one line.
    public var summary: String {
        let (context, what): (Context, String) =
            switch self {
            case .typeMismatch(_, let context): (context, "")
            case .valueNotFound(_, let context): (context, "missing value: ")
            case .keyNotFound(_, let context): (context, "")
            case .dataCorrupted(let context): (context, "")
            @unknown default: (Context(codingPath: [], debugDescription: "\(self)"), "")
            }
        let path = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
        return "\(path.isEmpty ? "" : path + ": ")\(what)\(context.debugDescription)"
    }
}

/// A page of a list (`data`, `next_page`), as every list endpoint returns it.
public struct APIPage<Item: APIResource>: Sendable {
    public var data: [Item]
    public var nextPage: String?

    public init(data: [Item], nextPage: String?) {
        self.data = data
        self.nextPage = nextPage
    }

    public var jsonText: String {
        get throws {
            var out = #"{"data":["#
            for (index, item) in data.enumerated() {
                if index > 0 { out += "," }
                out += try item.jsonText
            }
            out += #"],"next_page":"#
            if let nextPage { JSONText.append(nextPage, to: &out) } else { out += "null" }
            return out + "}"
        }
    }
}
