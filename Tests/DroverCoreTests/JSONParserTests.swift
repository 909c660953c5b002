import DroverCore
import Foundation
import Testing

/// `JSONParser` takes exactly JSON text: what RFC 8259 allows, nothing else.
@Suite struct JSONParserTests {
    @Test func acceptsEveryShapeOfValue() throws {
        let cases: [(String, JSONValue)] = [
            ("null", .null), ("true", true), (" false\n", false), ("0", 0), ("-0", 0), ("12", 12), ("-7", -7),
            ("1.5", 1.5), ("1e3", 1000), ("2E-2", 0.02), ("-1.25e+2", -125),
            (#""""#, ""), (#""a\"b\\c\/d\b\f\n\r\t""#, "a\"b\\c/d\u{8}\u{c}\n\r\t"),
            (#""\u00e9\u4e2d\ud83d\udc02""#, "é中🐂"), ("\"é中🐂\"", "é中🐂"),
            ("[]", []), ("[ 1 , [2] ,{}]", [1, [2], [:]]),
            (#"{"a": {"b": [null, true]}, "c": "d"}"#, ["a": ["b": [nil, true]], "c": "d"]),
            (#"{"k": 1, "k": 2}"#, ["k": 2]),
            ("123456789012345678901234567890", .number(123456789012345678901234567890.0)),
            ("9007199254740993", .number(9007199254740992)),
        ]
        for (text, expected) in cases {
            #expect(try JSONValue.parse(text) == expected, "\(text)")
        }
    }

    @Test func refusesWhatIsNotJSON() {
        let refused = [
            "", " ", "nul", "truee", "True", "NaN", "Infinity", "-", "01", "-01", "+1", ".5", "1.", "1e", "1e+", "0x10",
            "[1,]", "[,1]", "{\"a\":1,}", "{\"a\"}", "{a:1}", "{'a':1}", "[1 2]", "[", "{", "\"abc", "\"\\x\"",
            "\"\\u12\"", "\"\\ud83d\"", "\"\\ud83d\\u0041\"", "\"\\udc02\"", "\"tab\there\"", "\"nl\nhere\"",
            "1 2", "{} {}", "\u{FEFF}{}", "[1]x",
        ]
        for text in refused {
            #expect(throws: DroverError.self, "\(text.debugDescription)") { try JSONValue.parse(text) }
        }
        // Invalid UTF-8, raw and inside a string.
        for bytes: [UInt8] in [[0x22, 0xFF, 0x22], [0x22, 0xC3, 0x22], [0x22, 0xED, 0xA0, 0x80, 0x22], [0xFF]] {
            #expect(throws: DroverError.self) { try JSONValue.parse(bytes) }
        }
    }

    @Test func nestingIsBoundedSoAHostileLineCannotExhaustTheStack() throws {
        let fits = String(repeating: "[", count: 512) + String(repeating: "]", count: 512)
        #expect(try JSONValue.parse(fits) != .null)
        for depth in [513, 100_000] {
            let deep = String(repeating: "[", count: depth) + String(repeating: "]", count: depth)
            #expect(throws: DroverError.self) { try JSONValue.parse(deep) }
            let objects = String(repeating: "{\"a\":", count: depth) + "1" + String(repeating: "}", count: depth)
            #expect(throws: DroverError.self) { try JSONValue.parse(objects) }
        }
    }

    @Test func theErrorSaysWhere() {
        #expect {
            try JSONValue.parse(#"{"a": tru}"#)
        } throws: { error in
            String(reflecting: error).contains("malformed JSON at byte 6")
        }
    }

    /// Where both accept, the parser reads what Foundation reads (random documents, compared
    /// value by value), and it accepts everything Foundation writes.
    @Test func readsWhatFoundationWrites() throws {
        var random = SeededRandom(seed: 20261204)
        func document(_ depth: Int) -> Any {
            switch Int.random(in: 0...(depth > 3 ? 3 : 5), using: &random) {
            case 0: return NSNull()
            case 1: return Bool.random(using: &random)
            case 2: return [0, -1, 1.5, 1e-7, 123456789, -2.5e300, Double.random(in: -1e6...1e6, using: &random)].randomElement(using: &random)!
            case 3: return String((0..<Int.random(in: 0...12, using: &random)).map { _ in
                    Character(Unicode.Scalar([0x22, 0x5C, 0x0A, 0x01, 0x41, 0xE9, 0x4E2D, 0x1F402, 0x7F].randomElement(using: &random)!)!)
                })
            case 4: return (0..<Int.random(in: 0...4, using: &random)).map { _ in document(depth + 1) }
            default:
                var object: [String: Any] = [:]
                for index in 0..<Int.random(in: 0...4, using: &random) { object["k\(index)\u{E9}"] = document(depth + 1) }
                return object
            }
        }
        for _ in 0..<500 {
            let data = try JSONSerialization.data(withJSONObject: [document(0)], options: [.fragmentsAllowed])
            let ours = try JSONValue.parse(Array(data))
            let text = try #require(String(data: data, encoding: .utf8))
            #expect(try JSONValue.parse(ours.text) == ours, "\(text)")
            let theirs = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
            #expect(try JSONValue.parse(Array(JSONSerialization.data(withJSONObject: theirs, options: [.fragmentsAllowed]))) == ours)
        }
    }
}
