import Foundation
import Testing

@testable import DroverSandbox

/// The line provisions wait in when a pool is full of running calls (issue #22), without a pool.
@Suite struct AdmissionQueueTests {
    @Test func firstComeFirstServedAndNoWakeIsLost() async throws {
        let queue = AdmissionQueue()
        let first = queue.enqueue()
        let second = queue.enqueue()
        #expect(queue.isFirst(first) && !queue.isFirst(second) && queue.count == 2)
        // Woken before it parks: the park returns at once instead of waiting out its timeout.
        queue.wakeFirst()
        let clock = ContinuousClock()
        let early = await clock.measure { await queue.park(first, timeout: .seconds(30)) }
        #expect(early < .seconds(5))
        // Leaving hands the turn to the next in line, which a parked waiter hears.
        let waiting = Task { await clock.measure { await queue.park(second, timeout: .seconds(30)) } }
        try await Task.sleep(for: .milliseconds(100))
        queue.remove(first)
        #expect(await waiting.value < .seconds(5))
        #expect(queue.isFirst(second) && queue.count == 1)
        // Never woken: the park ends at its timeout.
        let waited = await clock.measure { await queue.park(second, timeout: .milliseconds(200)) }
        #expect(waited >= .milliseconds(200))
        queue.remove(second)
        #expect(queue.isEmpty)
        // A wake for a ticket no longer in line is not kept for a later one.
        queue.wakeFirst()
        let third = queue.enqueue()
        let quiet = await clock.measure { await queue.park(third, timeout: .milliseconds(200)) }
        #expect(quiet >= .milliseconds(200))
    }
}
