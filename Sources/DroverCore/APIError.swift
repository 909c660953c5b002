/// An error as the Anthropic API (and so its SDKs) shape it: an HTTP status, an error `type`
/// (`invalid_request_error`, `authentication_error`, `not_found_error`, …) and a message. What
/// `drover api` answers, and what the scripted model refuses with (`RequestRefusal`).
public struct APIError: Error, Sendable, Equatable {
    public var status: Int
    public var type: String
    public var message: String
    /// `error.details`, the SDK's machine-readable cause (`error_code` and what it needs).
    public var details: JSONValue?

    public init(_ status: Int, _ type: String, _ message: String, details: JSONValue? = nil) {
        self.status = status
        self.type = type
        self.message = message
        self.details = details
    }

    public static func invalid(_ message: String) -> APIError { APIError(400, "invalid_request_error", message) }
    public static func notFound(_ message: String) -> APIError { APIError(404, "not_found_error", message) }
    public static let unauthenticated = APIError(401, "authentication_error", "invalid x-api-key")
    public static let forbidden = APIError(403, "permission_error", "this key may not use this endpoint")

    /// The API error for a store error: its stable code decides the status.
    public init(_ error: DroverError) {
        switch error.code {
        case .notFound: self = .notFound(error.message)
        case .invalidArgument, .invalidPayload, .unknownEventType, .sessionTerminated: self = .invalid(error.message)
        case .payloadTooLarge: self = APIError(413, "request_too_large", error.message)
        case .conflict: self = APIError(409, "conflict_error", error.message)
        case .vaultKeyMissing: self = .invalid(error.message)
        case .vaultKeyMismatch: self = APIError(500, "api_error", error.message)
        case .connectionLost: self = APIError(503, "overloaded_error", "the database is unreachable; retry")
        default: self = APIError(500, "api_error", "internal error (\(error.code))")
        }
    }

    /// Retrying cannot help (a stale version, a bad request): the SDK is told not to.
    public var shouldRetry: Bool { status >= 500 || status == 429 || status == 408 }

    public func json(requestID: String) -> JSONValue {
        var error: [String: JSONValue] = ["type": .string(type), "message": .string(message)]
        if let details { error["details"] = details }
        return ["type": "error", "error": .object(error), "request_id": .string(requestID)]
    }
}
