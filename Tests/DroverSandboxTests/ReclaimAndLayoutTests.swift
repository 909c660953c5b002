import DroverIO
import Foundation
import Synchronization
import Testing

@testable import DroverSandbox

/// The pure decisions of the pool: which sandbox to take back, and where the control groups are.
@Suite struct ReclaimAndLayoutTests {
    typealias Candidate = ReclaimPlanner.Candidate

    /// Issue #22: a sandbox made for a session that has yet to run its first call is not taken by
    /// the next provision in line (under a burst they took each other's, over and over), unless it
    /// has waited past the grace (its harness died after provisioning).
    @Test func aNewSandboxIsKeptForItsFirstCall() {
        let now = ContinuousClock.now
        typealias Candidate = ReclaimPlanner.Candidate
        let fresh = Candidate(id: "fresh", lastUsed: now - .seconds(1), running: 0, awaitingFirstCall: true)
        let used = Candidate(id: "used", lastUsed: now - .milliseconds(500), running: 0)
        #expect(ReclaimPlanner.evict([fresh, used], now: now)?.id == "used", "the older one is new: kept")
        #expect(ReclaimPlanner.evict([fresh], now: now) == nil)
        let abandoned = Candidate(id: "abandoned", lastUsed: now - .seconds(31), running: 0, awaitingFirstCall: true)
        #expect(ReclaimPlanner.evict([abandoned, used], now: now)?.id == "abandoned")
    }

    @Test func reclaimTakesIdleOnesOnlyAndTheLeastRecentlyUsedFirst() {
        let now = ContinuousClock.now
        let candidates = [
            Candidate(id: "recent", lastUsed: now - .seconds(5), running: 0),
            Candidate(id: "old", lastUsed: now - .seconds(100), running: 0),
            Candidate(id: "older-but-busy", lastUsed: now - .seconds(200), running: 1),
            Candidate(id: "middle", lastUsed: now - .seconds(50), running: 0),
        ]
        #expect(ReclaimPlanner.idle(candidates, now: now, ttl: .seconds(40)).map(\.id) == ["old", "middle"])
        #expect(ReclaimPlanner.idle(candidates, now: now, ttl: .seconds(1000)).isEmpty)
        #expect(ReclaimPlanner.evict(candidates)?.id == "old")
        #expect(ReclaimPlanner.evict(candidates.filter { $0.running > 0 }) == nil, "a sandbox running a call is never taken")
    }

    static let hybridMounts = """
        31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
        35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
        39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
        41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
        """

    @Test func cgroupLayoutsOfV1HybridAndV2Hosts() {
        // This build machine's shape: v1 memory and pids, an empty v2 hierarchy beside them.
        let hybrid = CgroupLayout.plan(
            mountinfo: Self.hybridMounts, selfCgroup: "8:pids:/\n4:memory:/job/abc\n0::/\n", controllersOfV2: { _ in "" })
        #expect(hybrid == .v1(memory: "/sys/fs/cgroup/memory/job/abc", pids: "/sys/fs/cgroup/pids"))
        // Current distributions and Kubernetes: one unified hierarchy with the controllers.
        let unified = CgroupLayout.plan(
            mountinfo: "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n",
            selfCgroup: "0::/system.slice/drover.service\n",
            controllersOfV2: { $0 == "/sys/fs/cgroup/system.slice/drover.service" ? "cpu io memory pids\n" : nil })
        #expect(unified == .v2(own: "/sys/fs/cgroup/system.slice/drover.service"))
        // A container whose cgroup namespace root is its own group: the mount root is stripped.
        let namespaced = CgroupLayout.plan(
            mountinfo: "30 23 0:26 /kubepods/pod1 /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n", selfCgroup: "0::/kubepods/pod1/c\n",
            controllersOfV2: { _ in "memory pids" })
        #expect(namespaced == .v2(own: "/sys/fs/cgroup/c"))
        // v2 without the controllers delegated, and no v1: unavailable, with a reason.
        guard case .unavailable = CgroupLayout.plan(
            mountinfo: "30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n", selfCgroup: "0::/x\n", controllersOfV2: { _ in "cpu io" })
        else {
            Issue.record("a v2 hierarchy without memory and pids was accepted")
            return
        }
    }

    @Test func blockingWorkBeyondThePoolsThreadsWaitsItsTurn() async throws {
        let pool = BlockingPool(name: "test.blocking", threads: 3)
        final class Gauge: Sendable {
            let counts = Mutex((running: 0, peak: 0))
        }
        let gauge = Gauge()
        try await withThrowingTaskGroup(of: Int.self) { group in
            for index in 0..<12 {
                group.addTask {
                    try await pool.run {
                        gauge.counts.withLock {
                            $0.running += 1
                            $0.peak = max($0.peak, $0.running)
                        }
                        usleep(30_000)
                        gauge.counts.withLock { $0.running -= 1 }
                        return index
                    }
                }
            }
            var done: [Int] = []
            for try await index in group { done.append(index) }
            #expect(done.sorted() == Array(0..<12))
        }
        #expect(gauge.counts.withLock { $0.peak } == 3, "at most three at once, and all three used")
    }
}

/// Pools on one host take distinct uid ranges through lock files in one shared folder (#27 item 7:
/// it used to be /tmp, which each container has its own of).
@Suite struct UidRangeTests {
    @Test func rangesInOneFolderAreDistinctAndTheFolderIsMade() throws {
        let folder = NSTemporaryDirectory() + "drover-uid-locks-\(UInt64.random(in: 0...UInt64.max))/nested"
        defer { try? FileManager.default.removeItem(atPath: (folder as NSString).deletingLastPathComponent) }
        let first = try UidRange(base: 300_000, size: 1000, slots: 4, folder: folder)
        let second = try UidRange(base: 300_000, size: 1000, slots: 4, folder: folder)
        #expect(first.slot != second.slot && first.first != second.first)
        #expect(!UidRange.isFree(base: 300_000, slot: first.slot, folder: folder))
        #expect(UidRange.isFree(base: 300_000, slot: 3, folder: folder))
        #expect(UidRange.defaultLockFolder == "/run/drover", "not /tmp, which each container has its own of")
    }
}
