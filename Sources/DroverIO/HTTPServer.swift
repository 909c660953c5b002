import Foundation

/// A request read by `HTTPServer` or `HTTPRequestParser`.
public struct HTTPServerRequest: Sendable, Equatable {
    public var method: String
    /// The request target as sent (path and query).
    public var path: String
    /// Header names lower-cased; repeated headers joined with ", ".
    public var headers: [String: String]
    public var body: [UInt8]
    public var version = "HTTP/1.1"

    public init(method: String, path: String, headers: [String: String], body: [UInt8], version: String = "HTTP/1.1") {
        self.method = method
        self.path = path
        self.headers = headers
        self.body = body
        self.version = version
    }
}

/// A small HTTP/1.1 server on loopback for Drover's own endpoints (metrics, health, the scripted
/// model): one thread per connection, one request per connection (`connection: close`). The
/// handler, given to `start`, gets the socket so that it can stream (SSE) as well as answer with `respond`.
public final class HTTPServer: Sendable {
    public let listener: Listener

    /// Binds now (so the port is known); serves from `start`.
    public init(host: String, port: UInt16) throws {
        listener = try Listener(host: host, port: port)
    }

    public var address: String { "\(listener.host):\(listener.port)" }

    /// Accepts connections on a thread of its own and hands each request to `handler`.
    public func start(_ handler: @escaping @Sendable (HTTPServerRequest, Socket) -> Void) {
        let thread = Thread { [listener] in
            while let socket = listener.accept() {
                let worker = Thread {
                    defer { socket.close() }
                    if let request = Self.readRequest(socket) { handler(request, socket) }
                }
                worker.name = "drover.http.connection"
                worker.start()
            }
        }
        thread.name = "drover.http.accept"
        thread.start()
    }

    public func stop() { listener.shutdown() }

    /// Writes a whole response.
    public static func respond(_ socket: Socket, status: Int, contentType: String, body: [UInt8], headers: [(String, String)] = []) {
        var head = "HTTP/1.1 \(status) \(reason(status))\r\ncontent-type: \(contentType)\r\ncontent-length: \(body.count)\r\nconnection: close\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        try? socket.send(bytes: Array((head + "\r\n").utf8) + body)
    }

    /// Starts a streamed response; the caller then writes the body and the connection closes.
    public static func startStream(_ socket: Socket, contentType: String) -> Bool {
        let head = "HTTP/1.1 200 OK\r\ncontent-type: \(contentType)\r\ncache-control: no-cache\r\nconnection: close\r\n\r\n"
        return (try? socket.send(bytes: Array(head.utf8))) != nil
    }

    static func reason(_ status: Int) -> String {
        switch status {
        case 200: "OK"
        case 400: "Bad Request"
        case 401: "Unauthorized"
        case 404: "Not Found"
        case 429: "Too Many Requests"
        case 503: "Service Unavailable"
        case 529: "Overloaded"
        default: "Error"
        }
    }

    /// Reads the request line, headers and a `content-length` body (at most 64 MiB).
    static func readRequest(_ socket: Socket) -> HTTPServerRequest? {
        var data: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        var headerEnd: Int?
        while headerEnd == nil {
            guard let count = try? socket.read(into: &buffer), count > 0 else { return nil }
            let searchFrom = max(0, data.count - 3)
            data += buffer[0..<count]
            headerEnd = find(data, from: searchFrom)
            if data.count > 1 << 20 && headerEnd == nil { return nil }
        }
        let head = String(decoding: data[0..<headerEnd!], as: UTF8.self).components(separatedBy: "\r\n")
        let requestLine = head[0].split(separator: " ")
        guard requestLine.count >= 2 else { return nil }
        var headers: [String: String] = [:]
        for line in head.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        var body = Array(data[(headerEnd! + 4)...])
        let length = min(Int(headers["content-length"] ?? "0") ?? 0, 64 << 20)
        while body.count < length {
            guard let count = try? socket.read(into: &buffer), count > 0 else { return nil }
            body += buffer[0..<count]
        }
        return HTTPServerRequest(method: String(requestLine[0]), path: String(requestLine[1]), headers: headers, body: body)
    }

    /// The offset of the first CRLF CRLF at or after `start`.
    private static func find(_ data: [UInt8], from start: Int) -> Int? {
        guard data.count >= 4 else { return nil }
        for index in start...(data.count - 4) where data[index] == 13 && data[index + 1] == 10 && data[index + 2] == 13 && data[index + 3] == 10 {
            return index
        }
        return nil
    }
}
