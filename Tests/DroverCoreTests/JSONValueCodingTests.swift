import DroverCore
import Testing

/// `JSONValueDecoder` and `JSONTextEncoder`: typed values from `JSONValue` and to JSON text, as
/// strict as JSON itself, with the API's rule for absent optional fields.
@Suite struct JSONValueCodingTests {
    struct Thing: Codable, Equatable {
        var name: String
        var count: Int
        var ratio: Double
        var flags: [Bool]
        var note: String?
        var nested: Inner?
        var free: JSONValue

        struct Inner: Codable, Equatable, OmitsNilFields {
            var label: String?
            var size: UInt8
        }
    }

    @Test func aValueRoundTripsAndNilIsWrittenAsNull() throws {
        let thing = Thing(name: "a", count: -3, ratio: 0.5, flags: [true, false], note: nil, nested: .init(label: nil, size: 7),
                          free: ["k": [1, "x", nil]])
        let text = try JSONTextEncoder.encode(thing)
        // Keys in the order the type encodes them.
        #expect(text == #"{"name":"a","count":-3,"ratio":0.5,"flags":[true,false],"note":null,"nested":{"size":7},"free":{"k":[1,"x",null]}}"#)
        let json = try JSONValue.parse(text)
        #expect(json == [
            "name": "a", "count": -3, "ratio": 0.5, "flags": [true, false], "note": nil,
            // A type that omits nil fields leaves `label` out instead of writing null.
            "nested": ["size": 7],
            "free": ["k": [1, "x", nil]],
        ])
        #expect(try JSONValueDecoder.decode(Thing.self, from: json) == thing)
    }

    @Test func aFieldOfTheWrongKindOrMissingIsRefusedWithItsPath() throws {
        let good: JSONValue = ["name": "a", "count": 1, "ratio": 1, "flags": [], "nested": ["size": 1], "free": nil]
        #expect(try JSONValueDecoder.decode(Thing.self, from: good).free == .null)
        let refusals: [(JSONValue, String)] = [
            (["name": "a", "count": 1.5, "ratio": 1, "flags": [], "free": nil], "count"),  // not whole
            (["name": "a", "count": "1", "ratio": 1, "flags": [], "free": nil], "count"),  // a string is not a number
            (["name": "a", "count": 1, "ratio": 1, "flags": [1], "free": nil], "flags[0]"),
            (["name": "a", "count": 1, "ratio": 1, "flags": [], "nested": ["size": 256], "free": nil], "nested.size"),  // beyond UInt8
            (["name": "a", "count": 1, "ratio": 1, "flags": [], "nested": ["size": -1], "free": nil], "nested.size"),
            (["name": "a", "ratio": 1, "flags": [], "free": nil], "count"),  // missing
            (["name": nil, "count": 1, "ratio": 1, "flags": [], "free": nil], "name"),  // null for a required field
            (["name": "a", "count": 9_007_199_254_740_994.0, "ratio": 1, "flags": [], "free": nil], "count"),  // past 2^53
        ]
        for (value, path) in refusals {
            do {
                _ = try JSONValueDecoder.decode(Thing.self, from: value)
                Issue.record("accepted \(value.text)")
            } catch let error as DecodingError {
                let context: DecodingError.Context? =
                    switch error {
                    case .typeMismatch(_, let context), .valueNotFound(_, let context), .dataCorrupted(let context): context
                    case .keyNotFound(let key, let context): .init(codingPath: context.codingPath + [key], debugDescription: "")
                    @unknown default: nil
                    }
                let rendered = context?.codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined() ?? ""
                #expect(rendered == "." + path || rendered == path || rendered.hasSuffix(path), "\(value.text): \(rendered)")
            }
        }
    }

    @Test func freeFormJSONIsKeptAsItIs() throws {
        let any: JSONValue = ["a": [1.25, "s", true, nil, ["b": []]]]
        #expect(try JSONValue.parse(JSONTextEncoder.encode(any)) == any)
        #expect(try JSONTextEncoder.encode([any, nil, "q\""]) == #"[{"a":[1.25,"s",true,null,{"b":[]}]},null,"q\""]"#)
        #expect(try JSONValueDecoder.decode(JSONValue.self, from: any) == any)
        #expect(try JSONValueDecoder.decode([String: JSONValue].self, from: any)["a"]?[1] == "s")
    }
}
