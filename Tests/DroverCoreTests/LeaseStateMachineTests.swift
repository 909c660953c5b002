import DroverCore
import Testing

@Suite struct LeaseStateMachineTests {
    @Test func heartbeatIsDueAtAThirdOfTheTTL() {
        var lease = LeaseStateMachine(claimSentAt: 100, ttl: 30)
        #expect(lease.tick(now: 109.9) == .none)
        #expect(lease.tick(now: 110) == .sendHeartbeat)
        // Only one heartbeat in flight at a time.
        #expect(lease.tick(now: 111) == .none)
        #expect(lease.canWrite(at: 111))
    }

    @Test func aSuccessfulHeartbeatExtendsFromWhenItWasSent() {
        var lease = LeaseStateMachine(claimSentAt: 0, ttl: 30)
        #expect(lease.tick(now: 10) == .sendHeartbeat)
        lease.heartbeatSucceeded()
        // The deadline counts from the send time (10), not from when the reply came back.
        #expect(lease.state == .holding(deadline: 40, nextHeartbeat: 20, heartbeatSentAt: nil))
        #expect(lease.canWrite(at: 39.9))
        #expect(!lease.canWrite(at: 40))
    }

    @Test func noHeartbeatBeforeTheDeadlineMeansStop() {
        var lease = LeaseStateMachine(claimSentAt: 0, ttl: 3)
        #expect(lease.tick(now: 1) == .sendHeartbeat)
        // The heartbeat never answers; at the local deadline the holder must stop.
        #expect(lease.tick(now: 2.9) == .none)
        #expect(lease.tick(now: 3) == .stopWork)
        #expect(lease.state == .lost(.expiredLocally))
        #expect(!lease.canWrite(at: 3))
        #expect(lease.tick(now: 4) == .none)
    }

    @Test func fencedHeartbeatStopsWork() {
        var lease = LeaseStateMachine(claimSentAt: 0, ttl: 30)
        _ = lease.tick(now: 10)
        #expect(lease.heartbeatFailed(leaseLost: true, now: 10.1) == .stopWork)
        #expect(lease.state == .lost(.fenced))
        #expect(!lease.canWrite(at: 10.2))
    }

    @Test func transientHeartbeatFailureRetriesSoonButKeepsTheDeadline() {
        var lease = LeaseStateMachine(claimSentAt: 0, ttl: 30)
        _ = lease.tick(now: 10)
        #expect(lease.heartbeatFailed(leaseLost: false, now: 10.5) == .none)
        #expect(lease.state == .holding(deadline: 30, nextHeartbeat: 13.5, heartbeatSentAt: nil))
        #expect(lease.tick(now: 13) == .none)
        #expect(lease.tick(now: 13.5) == .sendHeartbeat)
    }

    @Test func fencedWriteStopsWork() {
        var lease = LeaseStateMachine(claimSentAt: 0, ttl: 30)
        #expect(lease.writeFenced() == .stopWork)
        #expect(lease.writeFenced() == .none)
        #expect(lease.releaseRequested() == .none)
    }

    @Test func releaseLifeCycle() {
        var lease = LeaseStateMachine(claimSentAt: 0, ttl: 30)
        #expect(lease.releaseRequested() == .sendRelease)
        #expect(!lease.canWrite(at: 1))
        #expect(lease.tick(now: 100) == .none)
        lease.releaseCompleted(leaseLost: false)
        #expect(lease.state == .released)

        var refused = LeaseStateMachine(claimSentAt: 0, ttl: 30)
        _ = refused.releaseRequested()
        refused.releaseCompleted(leaseLost: true)
        #expect(refused.state == .lost(.fenced))
    }

    @Test func aReleaseWhoseOutcomeIsUnknownHoldsTheLeaseUntilItsDeadline() {
        var lease = LeaseStateMachine(claimSentAt: 0, ttl: 30)
        #expect(lease.releaseRequested() == .sendRelease)
        lease.releaseFailed()
        #expect(lease.canWrite(at: 29) && !lease.canWrite(at: 30))
        #expect(lease.tick(now: 1) == .sendHeartbeat, "a heartbeat is due at once")
        #expect(lease.tick(now: 31) == .stopWork)
    }
}
