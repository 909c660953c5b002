import CDroverSys
import DroverCore
import Foundation
import Synchronization

/// One thread that owns a set of non-blocking descriptors (epoll), in the spirit of swift-nio's
/// event loop: every registered descriptor's handler, every `execute`d closure and every tick run
/// on that thread, one at a time, so the state they touch needs no lock. Other threads hand it
/// work with `execute` (an eventfd wakes it). Thousands of connections cost a thread in all, not a
/// thread each.
///
/// Loop-confined state (`handlers`, `ticks`, and whatever the handlers own) is only touched on
/// the loop's thread; `@unchecked Sendable` rests on that rule, which `assertOnLoop` checks in
/// debug builds.
public final class EventLoop: @unchecked Sendable {
    public struct Events: OptionSet, Sendable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        public static let readable = Events(rawValue: drover_epollin)
        public static let writable = Events(rawValue: drover_epollout)
        /// The peer closed its side (reported even when not reading).
        public static let peerClosed = Events(rawValue: drover_epollrdhup)
        public static let error = Events(rawValue: drover_epollerr)
        public static let hangUp = Events(rawValue: drover_epollhup)

        /// Whether a read has something to find: bytes, the end of the stream, or an error.
        public var wantsRead: Bool { !isDisjoint(with: [.readable, .peerClosed, .hangUp, .error]) }
    }

    private let epoll: Int32
    private let wakeFD: Int32
    private let name: String
    /// Loop-confined.
    private var handlers: [Int32: (Events) -> Void] = [:]
    private var ticks: [(interval: Duration, next: ContinuousClock.Instant, body: () -> Void)] = []
    /// One-shot timers (`schedule`), loop-confined.
    private var timers: [(at: ContinuousClock.Instant, body: () -> Void)] = []
    private let queue = Mutex<[@Sendable () -> Void]>([])
    private let stopped = Atomic<Bool>(false)
    /// Whether the wake descriptor is open. `execute` writes to it only under this lock, and the
    /// loop closes it under the same lock when it ends: a late `execute` (a task answering after
    /// its server stopped) must never write to a number since given to another file (a pipe
    /// whose reader is gone, whose SIGPIPE would end the process without a word).
    private let wakeOpen = Mutex(true)
    private let threadID = Mutex<pthread_t?>(nil)
    /// Whether the thread has ended, and who awaits it (`stop`).
    private let finished = Mutex<(done: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    public init(name: String) throws {
        epoll = drover_epoll_create()
        guard epoll >= 0 else { throw SystemError(errno: errno, call: "epoll_create1") }
        wakeFD = drover_eventfd()
        guard wakeFD >= 0 else { throw SystemError(errno: errno, call: "eventfd") }
        self.name = name
        _ = drover_epoll_ctl(epoll, drover_epoll_ctl_add, wakeFD, drover_epollin)
    }

    /// The process's shared loop, started on first use and never stopped: what a daemon's
    /// Postgres connections, its pool connections and `drover api`'s requests live on.
    public static func shared() throws -> EventLoop {
        try sharedLoop.withLock { loop in
            if let loop { return loop }
            let started = try EventLoop(name: "drover.io")
            started.start()
            loop = started
            return started
        }
    }
    private static let sharedLoop = Mutex<EventLoop?>(nil)

    public func start() {
        let thread = Thread { [self] in run() }
        thread.name = name
        thread.start()
    }

    /// Runs `work` on the loop's thread, soon; from any thread.
    public func execute(_ work: @escaping @Sendable () -> Void) {
        // Only the first closure of a batch wakes the loop: it takes the whole queue at once (a
        // stream fan-out hands it a thousand closures for one event, and one write, not a thousand).
        let wasEmpty = queue.withLock { queue -> Bool in
            queue.append(work)
            return queue.count == 1
        }
        guard wasEmpty else { return }
        wakeOpen.withLock { open in
            guard open else { return }
            var one: UInt64 = 1
            _ = Glibc.write(wakeFD, &one, 8)
        }
    }

    /// Whether the caller is on the loop's thread.
    public var inLoop: Bool { threadID.withLock { $0.map { pthread_equal($0, pthread_self()) != 0 } ?? false } }

    public func assertOnLoop() { assert(inLoop, "\(name): loop-confined state touched off the loop") }

    /// Watches `fd` for `events` (loop thread only). Error and hang-up are always reported.
    public func register(_ fd: Int32, _ events: Events, _ handler: @escaping (Events) -> Void) {
        assertOnLoop()
        handlers[fd] = handler
        _ = drover_epoll_ctl(epoll, drover_epoll_ctl_add, fd, events.rawValue)
    }

    public func modify(_ fd: Int32, _ events: Events) {
        assertOnLoop()
        _ = drover_epoll_ctl(epoll, drover_epoll_ctl_mod, fd, events.rawValue)
    }

    /// Stops watching `fd` (before the caller closes it, so the number can never reach a stale handler).
    public func unregister(_ fd: Int32) {
        assertOnLoop()
        handlers[fd] = nil
        _ = drover_epoll_ctl(epoll, drover_epoll_ctl_del, fd, 0)
    }

    /// Runs `body` on the loop every `interval` (loop thread only): deadlines, pings.
    public func every(_ interval: Duration, _ body: @escaping () -> Void) {
        assertOnLoop()
        ticks.append((interval, .now + interval, body))
    }

    /// Runs `body` on the loop once, after `delay` (loop thread only): a connect's deadline, a
    /// reconnect's backoff.
    public func schedule(after delay: Duration, _ body: @escaping () -> Void) {
        assertOnLoop()
        timers.append((.now + delay, body))
    }

    /// Ends the loop after the work already queued (closures `execute`d before this call still
    /// run), and returns once its thread has finished: suspended, never blocking the caller's thread.
    public func stop() async {
        stopped.store(true, ordering: .sequentiallyConsistent)
        execute {}
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let done = finished.withLock { state -> Bool in
                if !state.done { state.waiters.append(continuation) }
                return state.done
            }
            if done { continuation.resume() }
        }
    }

    private func run() {
        threadID.withLock { $0 = pthread_self() }
        defer {
            Glibc.close(epoll)
            wakeOpen.withLock { open in
                open = false
                Glibc.close(wakeFD)
            }
            let waiters = finished.withLock { state -> [CheckedContinuation<Void, Never>] in
                state.done = true
                defer { state.waiters = [] }
                return state.waiters
            }
            waiters.forEach { $0.resume() }
        }
        var fds = [Int32](repeating: 0, count: 256)
        var events = [UInt32](repeating: 0, count: 256)
        while !stopped.load(ordering: .sequentiallyConsistent) {
            let now = ContinuousClock.now
            let nextTick = (ticks.map(\.next) + timers.map(\.at)).min()
            let timeout = nextTick.map { max(0, Int((($0 - now) / .milliseconds(1)).rounded(.up))) } ?? 1000
            let count = drover_epoll_wait(epoll, &fds, &events, 256, Int32(min(timeout, 1000)))
            if count < 0 && errno != EINTR { break }
            for index in 0..<max(0, Int(count)) {
                let fd = fds[index]
                if fd == wakeFD {
                    var value: UInt64 = 0
                    _ = Glibc.read(wakeFD, &value, 8)
                    continue
                }
                // A handler may have closed and unregistered another descriptor of this batch.
                handlers[fd]?(Events(rawValue: events[index]))
            }
            let work = queue.withLock { queue -> [@Sendable () -> Void] in
                defer { queue = [] }
                return queue
            }
            work.forEach { $0() }
            let after = ContinuousClock.now
            for index in ticks.indices where ticks[index].next <= after {
                ticks[index].next = after + ticks[index].interval
                ticks[index].body()
            }
            if timers.contains(where: { $0.at <= after }) {
                let due = timers.filter { $0.at <= after }
                timers.removeAll { $0.at <= after }
                due.forEach { $0.body() }
            }
        }
    }
}

/// A task that prefers the loop as its executor (`Task(executorPreference: loop)`) runs on the
/// loop's thread, and so does everything it awaits that has no executor of its own: a request
/// handler whose database connections live on the same loop reads the request, sends its
/// statements, takes their results and writes its answer without one hand-off between threads.
/// Such work must not block: it shares the thread with every socket of the loop.
extension EventLoop: TaskExecutor {
    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        execute { [self] in job.runSynchronously(on: asUnownedTaskExecutor()) }
    }
}
