import DroverIO
import Foundation

/// A bare HTTP/1.1 client connection over a real socket: one request at a time, keep-alive, no
/// redirects or TLS. For load generators and tests, which must also send what no library would.
public struct HTTPConnection: Sendable {
    public let socket: Socket

    public struct Response: Sendable {
        public var status: Int
        /// Header names lower-cased.
        public var headers: [String: String]
        public var body: String
    }

    /// `from`: the local address to connect from (another loopback address is another client).
    public static func connect(_ address: String, from source: String? = nil, timeout: Double = 20) throws -> HTTPConnection {
        guard let (host, port) = parseHostPort(address) else { throw SystemError(errno: EINVAL, call: "connect \(address)") }
        let socket = try Socket.connect(host: host, port: port, from: source)
        socket.setReadTimeout(timeout)
        return HTTPConnection(socket: socket)
    }

    public func send(_ text: String) throws { try socket.send(bytes: Array(text.utf8)) }

    /// A request with `content-length` when there is a body.
    public func request(_ method: String, _ target: String, headers: [(String, String)] = [], body: String? = nil) throws -> Response? {
        var text = "\(method) \(target) HTTP/1.1\r\nhost: drover\r\n"
        for (name, value) in headers { text += "\(name): \(value)\r\n" }
        if let body { text += "content-type: application/json\r\ncontent-length: \(body.utf8.count)\r\n\r\n\(body)" } else { text += "\r\n" }
        try send(text)
        return try response()
    }

    /// Reads one response (its body by content-length); nil when the server closed first.
    public func response() throws -> Response? {
        var data: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            if let end = HTTPRequestParser.find([13, 10, 13, 10], in: data[...]) {
                let head = String(decoding: data[..<end], as: UTF8.self).components(separatedBy: "\r\n")
                let parts = head[0].split(separator: " ")
                let status = parts.count > 1 ? Int(parts[1]) ?? 0 : 0
                var headers: [String: String] = [:]
                for line in head.dropFirst() {
                    guard let colon = line.firstIndex(of: ":") else { continue }
                    headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: CharacterSet.whitespaces)
                }
                let length = Int(headers["content-length"] ?? "0") ?? 0
                while data.count < end + 4 + length {
                    let count = try socket.read(into: &buffer)
                    guard count > 0 else { return nil }
                    data += buffer[0..<count]
                }
                return Response(status: status, headers: headers, body: String(decoding: data[(end + 4)..<(end + 4 + length)], as: UTF8.self))
            }
            let count = try socket.read(into: &buffer)
            guard count > 0 else { return nil }
            data += buffer[0..<count]
        }
    }

    /// Whether the server closed the connection (end of stream within `timeout`).
    public func closed(within timeout: Double) -> Bool {
        socket.setReadTimeout(timeout)
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            guard let count = try? socket.read(into: &buffer) else { return false }
            if count == 0 { return true }
        }
    }

    public func close() { socket.close() }
}
