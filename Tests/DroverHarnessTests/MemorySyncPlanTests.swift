import Testing

@testable import DroverHarness

/// What a turn's changes in a mounted memory store become, without I/O.
@Suite struct MemorySyncPlanTests {
    @Test func newChangedAndRemovedFilesBecomeCreatesUpdatesAndDeletes() {
        let plan = MemorySyncPlan.plan(
            changed: [
                ("/new/note.md", Array("hello".utf8), nil), ("/changed.md", Array("after".utf8), "c"),
                ("/binary.bin", [0xFF, 0xFE], nil), ("/huge.md", nil, "h"),
            ],
            removed: [("/removed.md", "r")])
        #expect(plan.changes == [
            .update(path: "/changed.md", content: "after", expectedSHA256: "c"),
            .create(path: "/new/note.md", content: "hello"),
            .delete(path: "/removed.md", expectedSHA256: "r"),
        ])
        #expect(plan.skipped == ["/binary.bin", "/huge.md"])
    }

    @Test func anUntouchedStoreWritesNothing() {
        #expect(MemorySyncPlan.plan(changed: [], removed: []) == MemorySyncPlan.Plan())
        // A file the pool knows no stored hash for was never a memory: its removal deletes nothing.
        #expect(MemorySyncPlan.plan(changed: [], removed: [("/scratch.md", nil)]) == MemorySyncPlan.Plan())
    }
}
