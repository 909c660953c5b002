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
