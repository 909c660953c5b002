import DroverCore
@testable import DroverStore
import Testing

@testable import DroverHarness

/// Issue #22: under a burst every pool is full, and provisions must still be spread over them.
@Suite struct PoolChoiceTests {
    func pool(_ name: String, sandboxes: Int, capacity: Int = 32, running: Int = 0) -> PoolRecord {
        PoolRecord(id: name, address: name, capacity: capacity, sandboxes: sandboxes, runningCalls: running, status: "up", heartbeatAge: 0)
    }

    @Test func roomComesFirstThenTheShorterLineOfThisHarness() {
        var random = SeededRandom(seed: 1)
        let pools = [pool("a", sandboxes: 32), pool("b", sandboxes: 10)]
        #expect(PoolChoice.order(pools, outstanding: [:], using: &random).map(\.id) == ["b", "a"])
        // Both full: the one where this harness has fewer provisions waiting.
        let full = [pool("a", sandboxes: 32), pool("b", sandboxes: 32)]
        #expect(PoolChoice.order(full, outstanding: ["a": 1, "b": 4], using: &random).map(\.id) == ["a", "b"])
        #expect(PoolChoice.order(full, outstanding: ["a": 5, "b": 4], using: &random).map(\.id) == ["b", "a"])
        // Capacity counts: 40 of 64 is less loaded than 30 of 32.
        #expect(PoolChoice.order([pool("a", sandboxes: 30), pool("b", sandboxes: 40, capacity: 64)], outstanding: [:], using: &random).map(\.id) == ["b", "a"])
    }

    /// The registry's order alone sent every provision of a burst to one pool. Provisions sent
    /// one after another, each counted as outstanding until the end, alternate between two full
    /// pools; and with nothing to tell them apart, either comes first about as often.
    @Test func provisionsToFullPoolsAreSpreadEvenly() {
        var random = SeededRandom(seed: 7)
        let full = [pool("a", sandboxes: 32), pool("b", sandboxes: 32)]
        var outstanding: [String: Int] = [:]
        for _ in 0..<100 {
            let first = PoolChoice.order(full, outstanding: outstanding, using: &random)[0].address
            outstanding[first, default: 0] += 1
        }
        #expect(outstanding == ["a": 50, "b": 50])
        var firsts: [String: Int] = [:]
        for _ in 0..<1000 { firsts[PoolChoice.order(full, outstanding: [:], using: &random)[0].id, default: 0] += 1 }
        #expect((400...600).contains(firsts["a"] ?? 0), "\(firsts)")
    }
}
