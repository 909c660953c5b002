import DroverCore
import Foundation
import Testing
@testable import DroverHarness

/// What a model call's previews look like on the wire (`ModelCallPreview.payloads`): pure.
struct PreviewPublisherTests {
    @Test func previewsAreTheSDKsEventsBatchedUnderANotificationsSize() throws {
        let id = UUID()
        let payloads = ModelCallPreview.payloads(session: "sesn_1", [.start(id: id, type: "agent.message"), .text(id: id, "Hello")])
        #expect(payloads.count == 1)
        let note = try JSONValue.parse(try #require(payloads.first))
        let apiID = Event.apiID(uuid: id.uuidString)
        #expect(note["session"] == "sesn_1")
        #expect(note["items"] == [
            ["type": "event_start", "event": ["type": "agent.message", "id": .string(apiID)]],
            ["type": "event_delta", "event_id": .string(apiID), "delta": ["type": "content_delta", "index": 0, "content": ["type": "text", "text": "Hello"]]],
        ])
    }

    /// A long fragment (quotes and control characters escape to six bytes) is cut between
    /// characters into several deltas, spread over notifications that each stay under the limit.
    @Test func aLongFragmentIsCutAndEveryNotificationFits() throws {
        let id = UUID()
        let text = String(repeating: "é\u{1}\"ab ", count: 5_000)
        let payloads = ModelCallPreview.payloads(session: "sesn_1", [.start(id: id, type: "agent.message"), .text(id: id, text)])
        #expect(payloads.count > 1 && payloads.allSatisfy { $0.utf8.count <= PreviewPublisher.maxPayload })
        let joined = try payloads.flatMap { payload -> [String] in
            guard case .array(let items)? = try JSONValue.parse(payload)["items"] else { return [] }
            return items.compactMap { $0["delta"]?["content"]?["text"]?.stringValue }
        }.joined()
        #expect(joined == text)
    }
}
