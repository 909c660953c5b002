import DroverCore
import Foundation
import Testing

@Suite struct JSONTextTests {
    @Test func quotingRoundTripsThroughAJSONParser() throws {
        let tricky = "quote \" backslash \\ newline \n tab \t bell \u{7} emoji 🐂 and </script>"
        let json = JSONText.object([("text", JSONText.quote(tricky))])
        let parsed = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: String]
        #expect(parsed?["text"] == tricky)
    }

    @Test func userMessageIsAManagedAgentsContentBlock() throws {
        let json = JSONText.userMessage("hi \"there\"")
        let parsed = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        let content = try #require(parsed["content"] as? [[String: String]])
        #expect(content == [["type": "text", "text": "hi \"there\""]])
    }

    @Test func userSideTypes() {
        #expect(EventType.userMessage.isUserSide)
        #expect(EventType.userInterrupt.isUserSide)
        #expect(!EventType.agentMessage.isUserSide)
        #expect(!EventType.sessionStatusIdle.isUserSide)
    }
}

/// Found by the `json` fuzz target: numbers Foundation reads as decimals kept changing on every
/// round trip.
@Test func numbersSurviveARoundTripUnchanged() throws {
    for text in ["411111111111111941111001027254392", "4.1111111111111196e+32", "1.2345678901234567e-300", "9007199254740993", "-0.1", "1e308"] {
        let once = try JSONValue.parse(text)
        let twice = try JSONValue.parse(once.text)
        #expect(once == twice && once.text == twice.text, "\(text): \(once.text) then \(twice.text)")
    }
    #expect(try JSONValue.parse("4.1111111111111196e+32").doubleValue == 4.1111111111111196e+32)
}
