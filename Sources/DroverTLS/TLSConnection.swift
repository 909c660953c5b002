import CCurl
import DroverCore
import DroverIO
import Foundation

/// A TLS connection made by libcurl (`CURLOPT_CONNECT_ONLY`): the handshake and certificate checks
/// are curl's, the bytes are the caller's. The egress proxy uses it to reach a repository's HTTPS
/// remote, so that it can add the credential inside the encrypted stream.
public final class TLSConnection: @unchecked Sendable {
    private let handle: UnsafeMutableRawPointer
    private let pin: CurlPin
    /// The underlying (non-blocking) socket, to poll.
    public let fd: Int32

    public enum Read: Equatable, Sendable {
        case bytes(Int)
        case wouldBlock
        case closed
    }

    /// Connects to one of `addresses` (the ones the address rule passed for `host`) and completes
    /// the handshake, checking the certificate for `host`. `caFile`: extra trusted roots (a private CA).
    public init(host: String, port: Int, addresses: [IPAddress], caFile: String?, timeout: Double) throws {
        CurlGlobal.initialize()
        guard let handle = curl_easy_init() else { throw HTTPError(message: "curl_easy_init failed", cancelled: false) }
        let authority = host.contains(":") ? "[\(host)]" : host
        drover_curl_set_string(handle, CURLOPT_URL, "https://\(authority):\(port)/")
        pin = CurlPin(handle, host: host, port: port, addresses: addresses, protocols: "https")
        drover_curl_set_long(handle, CURLOPT_CONNECT_ONLY, 1)
        drover_curl_set_long(handle, CURLOPT_CONNECTTIMEOUT_MS, Int(timeout * 1000))
        drover_curl_set_long(handle, CURLOPT_NOSIGNAL, 1)
        if let caFile { drover_curl_set_string(handle, CURLOPT_CAINFO, caFile) }
        let code = curl_easy_perform(handle)
        var socket: curl_socket_t = -1
        guard code == CURLE_OK, drover_curl_get_socket(handle, &socket) == CURLE_OK, socket >= 0 else {
            let message = String(cString: curl_easy_strerror(code))
            curl_easy_cleanup(handle)
            throw HTTPError(message: "TLS to \(host):\(port): \(message)", cancelled: false)
        }
        self.handle = handle
        fd = socket
    }

    /// Sends all of `bytes`, waiting while the socket is full.
    public func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let sent = try write(bytes, from: offset)
            if sent == 0 {
                var entry = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                _ = poll(&entry, 1, 1000)
            }
            offset += sent
        }
    }

    /// Sends what fits now (0: would block).
    public func write(_ bytes: [UInt8], from offset: Int) throws -> Int {
        var sent = 0
        let code = bytes.withUnsafeBytes { raw in curl_easy_send(handle, raw.baseAddress! + offset, bytes.count - offset, &sent) }
        if code == CURLE_AGAIN { return 0 }
        guard code == CURLE_OK else { throw HTTPError(message: String(cString: curl_easy_strerror(code)), cancelled: false) }
        return sent
    }

    /// Reads what is available.
    public func read(into buffer: inout [UInt8]) -> Read {
        var received = 0
        let code = buffer.withUnsafeMutableBytes { curl_easy_recv(handle, $0.baseAddress, $0.count, &received) }
        switch code {
        case CURLE_OK: return received > 0 ? .bytes(received) : .closed
        case CURLE_AGAIN: return .wouldBlock
        default: return .closed
        }
    }

    public func close() { curl_easy_cleanup(handle) }
}
