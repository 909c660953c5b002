import Foundation

/// A request read by `HTTPRequestParser` (for `HTTPServer`).
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
