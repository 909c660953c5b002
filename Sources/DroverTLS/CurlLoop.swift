import CCurl
import DroverIO
import Foundation
import Synchronization

/// libcurl's transfers on an event loop (its multi interface): curl says which of its sockets to
/// watch and when to be called back, the loop tells it what became ready, and every callback of
/// every transfer (its body, its headers) runs on the loop's thread. A thousand streaming model
/// calls cost no thread each. Loop-confined: call `add` and `cancel` on the loop.
public final class CurlLoop: @unchecked Sendable {
    public let loop: EventLoop
    private let multi: UnsafeMutableRawPointer
    private var watching: [Int32: EventLoop.Events] = [:]
    /// Bumped at each timer curl asks for, so an earlier one that comes due does nothing.
    private var timer = 0
    private var transfers: [UnsafeMutableRawPointer: (CURLcode) -> Void] = [:]

    /// The process's, on `EventLoop.shared()`.
    public static func shared() throws -> CurlLoop {
        try sharedLoop.withLock { shared in
            if let shared { return shared }
            let made = try CurlLoop(loop: EventLoop.shared())
            shared = made
            return made
        }
    }
    private static let sharedLoop = Mutex<CurlLoop?>(nil)

    public init(loop: EventLoop) throws {
        CurlGlobal.initialize()
        guard let multi = curl_multi_init() else { throw SystemError(errno: ENOMEM, call: "curl_multi_init") }
        self.loop = loop
        self.multi = multi
        let context = Unmanaged.passUnretained(self).toOpaque()
        drover_curl_multi_set_socket_callback(multi, { _, socket, what, context, _ in
            Unmanaged<CurlLoop>.fromOpaque(context!).takeUnretainedValue().watch(socket, what)
            return 0
        }, context)
        drover_curl_multi_set_timer_callback(multi, { _, milliseconds, context in
            Unmanaged<CurlLoop>.fromOpaque(context!).takeUnretainedValue().schedule(milliseconds)
            return 0
        }, context)
    }

    /// Starts a prepared transfer; `done` runs on the loop with its result, once.
    public func add(_ easy: UnsafeMutableRawPointer, done: @escaping (CURLcode) -> Void) {
        loop.assertOnLoop()
        transfers[easy] = done
        if curl_multi_add_handle(multi, easy) != CURLM_OK {
            transfers[easy] = nil
            done(CURLE_FAILED_INIT)
        }
    }

    /// Ends a transfer now; its `done` runs with `CURLE_ABORTED_BY_CALLBACK`.
    public func cancel(_ easy: UnsafeMutableRawPointer) {
        loop.assertOnLoop()
        guard let done = transfers.removeValue(forKey: easy) else { return }
        curl_multi_remove_handle(multi, easy)
        done(CURLE_ABORTED_BY_CALLBACK)
    }

    private func watch(_ socket: Int32, _ what: Int32) {
        guard what != drover_curl_poll_remove else {
            if watching.removeValue(forKey: socket) != nil { loop.unregister(socket) }
            return
        }
        var events: EventLoop.Events = []
        if what == drover_curl_poll_in || what == drover_curl_poll_inout { events.insert(.readable) }
        if what == drover_curl_poll_out || what == drover_curl_poll_inout { events.insert(.writable) }
        if watching[socket] == nil {
            loop.register(socket, events) { [unowned self] ready in act(on: socket, ready) }
        } else {
            loop.modify(socket, events)
        }
        watching[socket] = events
    }

    private func schedule(_ milliseconds: Int) {
        timer += 1
        guard milliseconds >= 0 else { return }
        let due = timer
        loop.schedule(after: .milliseconds(milliseconds)) { [unowned self] in
            guard due == timer else { return }
            act(on: drover_curl_socket_timeout, [])
        }
    }

    private func act(on socket: Int32, _ ready: EventLoop.Events) {
        var mask: Int32 = 0
        if ready.contains(.readable) || ready.contains(.peerClosed) || ready.contains(.hangUp) { mask |= drover_curl_cselect_in }
        if ready.contains(.writable) { mask |= drover_curl_cselect_out }
        if ready.contains(.error) { mask |= drover_curl_cselect_err }
        var running: Int32 = 0
        curl_multi_socket_action(multi, socket, mask, &running)
        var easy: UnsafeMutableRawPointer?
        var result = CURLE_OK
        while drover_curl_multi_next_done(multi, &easy, &result) == 1, let finished = easy {
            curl_multi_remove_handle(multi, finished)
            transfers.removeValue(forKey: finished)?(result)
        }
    }
}
