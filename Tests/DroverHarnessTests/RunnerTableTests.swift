import DroverCore
import Testing
@testable import DroverHarness

@Suite struct RunnerTableTests {
    /// A harness that wins its own session back (its older lease expired) must not lose track of
    /// the new runner when the old one ends.
    @Test func aReclaimReplacesTheOldRunnerAndTheOldOnesEndLeavesTheNewOne() {
        var table = RunnerTable<String>()
        let session = SessionID("sesn_a")
        #expect(table.insert("old", session: session, epoch: 1) == nil)
        #expect(table.insert("new", session: session, epoch: 2) == "old", "the old runner is handed back to be stopped")
        table.remove(session: session, epoch: 1)
        #expect(table[session] == "new", "the old runner's end does not remove the new one")
        #expect(table.count == 1)
        table.remove(session: session, epoch: 2)
        #expect(table.isEmpty)
    }
}
