import DroverCore

/// A response's bytes on the wire: the one place the project writes an HTTP/1.1 response head.
public enum HTTPResponse {
    /// A whole response: status line, `content-type`, `content-length`, `connection: close` when
    /// the connection ends after it, then `headers` and the body.
    public static func bytes(status: Int, contentType: String, body: [UInt8], headers: [(String, String)], close: Bool) -> [UInt8] {
        var head = "HTTP/1.1 \(status) \(reason(status))\r\ncontent-type: \(contentType)\r\ncontent-length: \(body.count)\r\n"
        if close { head += "connection: close\r\n" }
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        return Array((head + "\r\n").utf8) + body
    }

    /// The head of a streamed (close-delimited) 200 response.
    public static func streamHead(contentType: String, headers: [(String, String)]) -> [UInt8] {
        var head = "HTTP/1.1 200 OK\r\ncontent-type: \(contentType)\r\ncache-control: no-cache\r\nconnection: close\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        return Array((head + "\r\n").utf8)
    }

    /// An error in the Anthropic shape (`APIError`); overload (503, 529) says when to come back,
    /// as the SDKs read it.
    public static func error(_ error: APIError, requestID: String, close: Bool) -> [UInt8] {
        var headers = [("request-id", requestID), ("x-should-retry", error.shouldRetry ? "true" : "false")]
        if error.status == 503 || error.status == 529 { headers.append(("retry-after", "1")) }
        return bytes(status: error.status, contentType: "application/json", body: Array(error.json(requestID: requestID).text.utf8),
                     headers: headers, close: close)
    }

    public static func reason(_ status: Int) -> String {
        switch status {
        case 200: "OK"
        case 308: "Permanent Redirect"
        case 400: "Bad Request"
        case 401: "Unauthorized"
        case 403: "Forbidden"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 408: "Request Timeout"
        case 409: "Conflict"
        case 413: "Content Too Large"
        case 414: "URI Too Long"
        case 429: "Too Many Requests"
        case 431: "Request Header Fields Too Large"
        case 501: "Not Implemented"
        case 502: "Bad Gateway"
        case 503: "Service Unavailable"
        case 505: "HTTP Version Not Supported"
        case 529: "Overloaded"
        default: status < 500 ? "Client Error" : "Server Error"
        }
    }
}
