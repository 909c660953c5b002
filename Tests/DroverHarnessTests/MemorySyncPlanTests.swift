import Testing

@testable import DroverHarness

/// What a turn's changes in a mounted memory store become, without I/O.
@Suite struct MemorySyncPlanTests {
    @Test func newChangedAndRemovedFilesBecomeCreatesUpdatesAndDeletes() {
        let mounted: [String: MemorySyncPlan.Mounted] = [
            "/kept.md": .init(sha256: "k", bytes: Array("same".utf8)),
            "/changed.md": .init(sha256: "c", bytes: Array("before".utf8)),
            "/removed.md": .init(sha256: "r", bytes: Array("gone".utf8)),
        ]
        let plan = MemorySyncPlan.plan(mounted: mounted, current: [
            ("/kept.md", Array("same".utf8)), ("/changed.md", Array("after".utf8)), ("/new/note.md", Array("hello".utf8)),
            ("/binary.bin", [0xFF, 0xFE]), ("/huge.md", nil),
        ])
        #expect(plan.changes == [
            .update(path: "/changed.md", content: "after", expectedSHA256: "c"),
            .create(path: "/new/note.md", content: "hello"),
            .delete(path: "/removed.md", expectedSHA256: "r"),
        ])
        #expect(plan.skipped == ["/binary.bin", "/huge.md"])
    }

    @Test func anUntouchedStoreWritesNothing() {
        let mounted: [String: MemorySyncPlan.Mounted] = ["/a.md": .init(sha256: "a", bytes: Array("x".utf8))]
        #expect(MemorySyncPlan.plan(mounted: mounted, current: [("/a.md", Array("x".utf8))]) == MemorySyncPlan.Plan())
        #expect(MemorySyncPlan.plan(mounted: [:], current: []) == MemorySyncPlan.Plan())
    }
}
