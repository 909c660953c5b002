import CCurl
import DroverCore
import DroverIO
import DroverTLS
import Foundation
import Synchronization

/// An HTTP request for `HTTPClient`.
public struct HTTPRequest: Sendable {
    public var url: String
    public var method: String
    public var headers: [(String, String)]
    public var body: [UInt8]
    /// Seconds to connect; the transfer itself may stream for as long as it keeps sending.
    public var connectTimeout: Double
    /// Abort when fewer than 1 byte/s arrives for this many seconds.
    public var idleTimeout: Double
    /// Seconds the whole transfer may take (nil: as long as it keeps sending). Set for every server
    /// a tenant chose, which could otherwise trickle forever.
    public var totalTimeout: Double?
    /// The most body bytes taken; past it the transfer ends, its head marked `truncated`.
    public var maxResponseBytes: Int?
    /// For a server a tenant chose: the host is resolved once, every address checked against the
    /// rule, and curl connects only to a checked address (no proxy from the environment, http and
    /// https only). Nil for servers the operator configured (the model provider).
    public var addressRule: AddressRule?

    public init(url: String, method: String = "POST", headers: [(String, String)] = [], body: [UInt8] = [],
                connectTimeout: Double = 10, idleTimeout: Double = 300) {
        self.url = url
        self.method = method
        self.headers = headers
        self.body = body
        self.connectTimeout = connectTimeout
        self.idleTimeout = idleTimeout
    }
}

/// Status and headers (names lower-cased) of a response.
public struct HTTPResponseHead: Sendable {
    public var status: Int
    public var headers: [String: String]
    /// The body passed `maxResponseBytes`: what was handed on is its first bytes, the rest was not read.
    public var truncated = false

    public init(status: Int, headers: [String: String], truncated: Bool = false) {
        self.status = status
        self.headers = headers
        self.truncated = truncated
    }
}

/// HTTP over libcurl, every transfer on the process's event loop (`CurlLoop`, libcurl's multi
/// interface): body bytes are handed to `onData` as they arrive, on the loop, which is what
/// streaming (SSE) needs, and no transfer holds a thread. Cancelling the calling task ends the
/// transfer at once. A tenant's server is resolved and checked (`AddressRule`) first, on a small
/// pool of the daemon's threads, since the look-up blocks.
public struct HTTPClient: Sendable {
    public init() { CurlGlobal.initialize() }

    /// Name look-ups under an address rule: the only blocking step of a transfer.
    private static let lookups = BlockingPool(name: "drover.http.resolve", threads: 8)

    /// Performs `request`, streaming the body to `onData`; returns the response head.
    public func perform(_ request: HTTPRequest, onData: @escaping @Sendable ([UInt8]) -> Void) async throws -> HTTPResponseHead {
        let curl = try CurlLoop.shared()
        let transfer = Transfer(onData: onData)
        if request.addressRule != nil {
            try await Self.lookups.run { try transfer.prepare(request) }
        } else {
            try transfer.prepare(request)
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<HTTPResponseHead, any Error>) in
                curl.loop.execute {
                    guard let easy = transfer.easy, !transfer.cancelled.load(ordering: .relaxed) else {
                        return continuation.resume(throwing: HTTPError(message: "cancelled", cancelled: true))
                    }
                    curl.add(easy) { code in continuation.resume(with: Result { try transfer.finish(code, request) }) }
                }
            }
        } onCancel: {
            transfer.cancel()
            curl.loop.execute { if let easy = transfer.easy { curl.cancel(easy) } }
        }
    }

    /// Performs `request` and collects the whole body.
    public func fetch(_ request: HTTPRequest) async throws -> (HTTPResponseHead, [UInt8]) {
        let body = Mutex([UInt8]())
        let head = try await perform(request) { chunk in body.withLock { $0 += chunk } }
        return (head, body.withLock { $0 })
    }
}

/// One transfer's state, reached from libcurl's C callbacks through an unmanaged pointer. Set up
/// by `prepare`, then touched only on the loop (curl's callbacks, `finish`).
private final class Transfer: @unchecked Sendable {
    let onData: @Sendable ([UInt8]) -> Void
    let cancelled = Atomic<Bool>(false)
    private(set) var easy: UnsafeMutableRawPointer?
    private var headers: UnsafeMutablePointer<curl_slist>?
    /// Kept alive until the transfer ends: curl's socket callback reads it.
    private var pinned: CurlPin?
    var headerLines: [String] = []
    /// Body bytes so far, the cap, and whether it was passed.
    var received = 0
    var maxBytes = Int.max
    var overflowed = false

    init(onData: @escaping @Sendable ([UInt8]) -> Void) { self.onData = onData }

    deinit {
        if let easy { curl_easy_cleanup(easy) }
        curl_slist_free_all(headers)
    }

    func cancel() { cancelled.store(true, ordering: .relaxed) }

    /// Makes the easy handle, with the rule's look-up and pin when there is a rule (which blocks).
    func prepare(_ request: HTTPRequest) throws {
        guard let curl = curl_easy_init() else { throw HTTPError(message: "curl_easy_init failed", cancelled: false) }
        easy = curl
        pinned = try request.addressRule.map { try pin(curl, request.url, $0) }
        if let cap = request.maxResponseBytes { maxBytes = cap }
        if let total = request.totalTimeout { drover_curl_set_long(curl, CURLOPT_TIMEOUT_MS, max(1, Int(total * 1000))) }
        for (name, value) in request.headers { headers = curl_slist_append(headers, "\(name): \(value)") }
        headers = curl_slist_append(headers, "Expect:")
        let context = Unmanaged.passUnretained(self).toOpaque()

        drover_curl_set_string(curl, CURLOPT_URL, request.url)
        drover_curl_set_string(curl, CURLOPT_CUSTOMREQUEST, request.method)
        drover_curl_set_long(curl, CURLOPT_NOSIGNAL, 1)
        drover_curl_set_long(curl, CURLOPT_CONNECTTIMEOUT_MS, Int(request.connectTimeout * 1000))
        drover_curl_set_long(curl, CURLOPT_LOW_SPEED_LIMIT, 1)
        drover_curl_set_long(curl, CURLOPT_LOW_SPEED_TIME, max(1, Int(request.idleTimeout)))
        drover_curl_set_long(curl, CURLOPT_TCP_NODELAY, 1)
        drover_curl_set_slist(curl, CURLOPT_HTTPHEADER, headers)
        if request.method != "GET" {
            drover_curl_set_long(curl, CURLOPT_POSTFIELDSIZE, request.body.count)
            request.body.withUnsafeBufferPointer { buffer in
                _ = buffer.baseAddress.map { drover_curl_set_pointer(curl, CURLOPT_COPYPOSTFIELDS, UnsafeMutableRawPointer(mutating: $0)) }
            }
            if request.body.isEmpty { drover_curl_set_string(curl, CURLOPT_COPYPOSTFIELDS, "") }
        }
        drover_curl_set_data_callback(curl, CURLOPT_WRITEFUNCTION) { data, size, count, context in
            let transfer = Unmanaged<Transfer>.fromOpaque(context!).takeUnretainedValue()
            if transfer.cancelled.load(ordering: .relaxed) { return 0 }
            let bytes = size * count
            let room = transfer.maxBytes - transfer.received
            if let data, bytes > 0, room > 0 {
                transfer.onData(Array(UnsafeRawBufferPointer(start: data, count: min(bytes, room))))
            }
            transfer.received += min(bytes, max(0, room))
            guard bytes <= room else {
                transfer.overflowed = true
                return 0
            }
            return bytes
        }
        drover_curl_set_pointer(curl, CURLOPT_WRITEDATA, context)
        drover_curl_set_data_callback(curl, CURLOPT_HEADERFUNCTION) { data, size, count, context in
            let transfer = Unmanaged<Transfer>.fromOpaque(context!).takeUnretainedValue()
            let bytes = size * count
            if let data {
                transfer.headerLines.append(String(decoding: UnsafeRawBufferPointer(start: data, count: bytes), as: UTF8.self))
            }
            return bytes
        }
        drover_curl_set_pointer(curl, CURLOPT_HEADERDATA, context)
        drover_curl_set_long(curl, CURLOPT_NOPROGRESS, 0)
        drover_curl_set_progress_callback(curl) { context, _, _, _, _ in
            Unmanaged<Transfer>.fromOpaque(context!).takeUnretainedValue().cancelled.load(ordering: .relaxed) ? 1 : 0
        }
        drover_curl_set_pointer(curl, CURLOPT_XFERINFODATA, context)
    }

    /// The transfer ended with `code` (on the loop): its head, or why it failed. The handle is
    /// freed with the transfer.
    func finish(_ code: CURLcode, _ request: HTTPRequest) throws -> HTTPResponseHead {
        if cancelled.load(ordering: .relaxed) { throw HTTPError(message: "cancelled", cancelled: true) }
        guard code == CURLE_OK || overflowed else {
            throw HTTPError(message: "\(Self.origin(of: request.url)): \(String(cString: curl_easy_strerror(code)))", cancelled: false)
        }
        var status = 0
        if let easy { drover_curl_get_response_code(easy, &status) }
        return HTTPResponseHead(status: status, headers: Self.parseHeaders(headerLines), truncated: overflowed)
    }

    /// Resolves the URL's host under `rule` and pins curl to the checked addresses (`CurlPin`).
    private func pin(_ curl: UnsafeMutableRawPointer, _ url: String, _ rule: AddressRule) throws -> CurlPin {
        guard let components = URLComponents(string: url), let scheme = components.scheme?.lowercased(), scheme == "http" || scheme == "https",
            let host = components.host, !host.isEmpty
        else {
            throw HTTPError(message: "\(Self.origin(of: url)) is not an http(s) URL", cancelled: false,
                            refusal: OutboundRefusal(code: "egress_denied", message: "only http and https URLs are fetched"))
        }
        let port = components.port ?? (scheme == "https" ? 443 : 80)
        do {
            return CurlPin(curl, host: host, port: port, addresses: try OutboundResolver.resolve(host: host, port: port, rule: rule), protocols: "http,https")
        } catch {
            throw HTTPError(message: error.message, cancelled: false, refusal: error)
        }
    }

    /// Scheme, host and port of `url`, nothing more: error messages end up in session logs, and a
    /// path, query or user-info part may hold a key (`--model-url https://proxy/KEY/v1`).
    static func origin(of url: String) -> String {
        guard let components = URLComponents(string: url), let scheme = components.scheme, let host = components.host else {
            return "the model URL"
        }
        return "\(scheme)://\(host)" + (components.port.map { ":\($0)" } ?? "")
    }

    /// The last response's headers (after any 100-continue or redirect), names lower-cased.
    static func parseHeaders(_ lines: [String]) -> [String: String] {
        var headers: [String: String] = [:]
        for line in lines {
            if line.hasPrefix("HTTP/") {
                headers = [:]
                continue
            }
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = line[..<colon].lowercased()
            headers[name] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespacesAndNewlines)
        }
        return headers
    }
}
