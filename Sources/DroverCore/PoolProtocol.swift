/// The sandbox pool's wire protocol: one JSON object per line each way (see
/// `docs/sandbox-protocol.md`). Requests carry an `id` that the reply echoes, so several requests
/// on one connection can be in flight at once.
public enum PoolProtocol {
    public static let version = 1
    /// A tool call's wall-clock limit when its sandbox's resources name none (`timeout_s`).
    public static let defaultCallTimeout: Double = 120
    /// Default cap on one request line (8 MiB).
    public static let defaultMaxLineLength = 8 << 20
    /// Cap on one reply line (64 MiB): a client reads no longer line; a pool that would send one
    /// sends `reply_too_large` for that request instead.
    public static let maxReplyLength = 64 << 20

    /// A stable error code of the protocol.
    public struct ErrorCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// `hello` is missing, came second, or had the wrong token or version.
        public static let unauthorized = ErrorCode(rawValue: "unauthorized")
        /// The line is not a JSON object.
        public static let badJSON = ErrorCode(rawValue: "bad_json")
        /// The line exceeded the line cap; the rest of it was discarded.
        public static let lineTooLong = ErrorCode(rawValue: "line_too_long")
        public static let unknownOp = ErrorCode(rawValue: "unknown_op")
        /// A required field is missing or has the wrong type.
        public static let badRequest = ErrorCode(rawValue: "bad_request")
        public static let unknownTool = ErrorCode(rawValue: "unknown_tool")
        public static let noSuchSandbox = ErrorCode(rawValue: "no_such_sandbox")
        /// The sandbox existed but was destroyed or died.
        public static let sandboxGone = ErrorCode(rawValue: "sandbox_gone")
        /// The pool took the sandbox back (idle past its TTL, or least recently used when the pool
        /// needed room); the call did not run. The session may provision a fresh one.
        public static let sandboxReclaimed = ErrorCode(rawValue: "sandbox_reclaimed")
        /// `memory_mb` or `processes` was asked of a pool that cannot bound it per sandbox.
        public static let limitUnenforceable = ErrorCode(rawValue: "limit_unenforceable")
        /// The reply would exceed the line cap; the request's outcome is reported, its data is not.
        public static let replyTooLarge = ErrorCode(rawValue: "reply_too_large")
        /// A path resolves outside the sandbox's workspace (by `..`, an absolute path or a symlink).
        public static let pathOutsideSandbox = ErrorCode(rawValue: "path_outside_sandbox")
        public static let fileNotFound = ErrorCode(rawValue: "file_not_found")
        public static let isADirectory = ErrorCode(rawValue: "is_a_directory")
        /// The pool already serves its `--max-connections`; the connection is closed.
        public static let tooManyConnections = ErrorCode(rawValue: "too_many_connections")
        /// A file tool was pointed at a FIFO, socket or device: only regular files are read or
        /// edited (opening a FIFO would wait for a writer; a device could be endless).
        public static let notARegularFile = ErrorCode(rawValue: "not_a_regular_file")
        /// `edit`: `old_string` does not occur in the file.
        public static let noMatch = ErrorCode(rawValue: "no_match")
        /// `edit`: `old_string` occurs more than once and `replace_all` is false.
        public static let notUnique = ErrorCode(rawValue: "not_unique")
        /// `resources` asked for more than the operator's ceiling (`--max-resources`); no sandbox was made.
        public static let resourcesAboveCeiling = ErrorCode(rawValue: "resources_above_ceiling")
        /// A limit on the request itself (e.g. content larger than the disk limit).
        public static let tooLarge = ErrorCode(rawValue: "too_large")
        public static let timeout = ErrorCode(rawValue: "timeout")
        /// The pool has no room for another sandbox.
        public static let capacity = ErrorCode(rawValue: "capacity")
        /// The `setup` script given at provision failed; no sandbox was made.
        public static let setupFailed = ErrorCode(rawValue: "setup_failed")
        /// A repository could not be cloned at provision (unreachable, refused, no such branch);
        /// no sandbox was made.
        public static let repositoryFailed = ErrorCode(rawValue: "repository_failed")
        /// The environment's `packages` could not be installed (the message has the package
        /// manager's own words); no sandbox was made.
        public static let packagesFailed = ErrorCode(rawValue: "packages_failed")
        /// `networking` other than none, or repositories, were asked of a pool that cannot give a
        /// sandbox a network of its own.
        public static let networkUnavailable = ErrorCode(rawValue: "network_unavailable")
        public static let shuttingDown = ErrorCode(rawValue: "shutting_down")
        /// The connection that asked closed before the answer (a provision waiting in line for a
        /// harness that died): it leaves the line, and nothing is kept for it.
        public static let clientGone = ErrorCode(rawValue: "client_gone")
        /// Client side: the pool could not be reached or the connection dropped mid-request.
        public static let unreachable = ErrorCode(rawValue: "unreachable")
        public static let `internal` = ErrorCode(rawValue: "internal")
    }

    /// An error reply.
    public struct Failure: Error, Sendable, Equatable, CustomStringConvertible {
        public var code: ErrorCode
        public var message: String
        public init(_ code: ErrorCode, _ message: String) {
            self.code = code
            self.message = message
        }
        public var description: String { "\(code): \(message)" }
    }

    /// A line that is not a valid request, with its id when one could be read.
    public struct Rejected: Error, Sendable {
        public var id: JSONValue
        public var failure: Failure
    }

    /// One parsed request line.
    public struct Request: Sendable {
        public var id: JSONValue
        public var op: String
        public var body: [String: JSONValue]

        /// Parses a line; a failure carries the request id when one could be read.
        public static func parse(_ line: [UInt8]) -> Result<Request, Rejected> {
            guard let value = try? JSONValue.parse(line), case .object(let body) = value else {
                return .failure(Rejected(id: .null, failure: Failure(.badJSON, "a request is one JSON object per line")))
            }
            let id = body["id"] ?? .null
            switch id {
            case .number, .string: break
            default: return .failure(Rejected(id: .null, failure: Failure(.badRequest, "a request needs an id (number or string)")))
            }
            guard let op = body["op"]?.stringValue else {
                return .failure(Rejected(id: id, failure: Failure(.badRequest, "a request needs an op (string)")))
            }
            return .success(Request(id: id, op: op, body: body))
        }

        public func string(_ key: String) throws(Failure) -> String {
            guard let value = body[key]?.stringValue else { throw Failure(.badRequest, "\(op) needs \(key) (string)") }
            return value
        }

        public func optionalString(_ key: String) throws(Failure) -> String? {
            guard let value = body[key], value != .null else { return nil }
            guard let string = value.stringValue else { throw Failure(.badRequest, "\(key) must be a string") }
            return string
        }
    }

    /// `{"id": …, "result": …}`
    public static func success(id: JSONValue, _ result: JSONValue) -> String {
        JSONText.object([("id", id.text), ("result", result.text)])
    }

    /// `{"id": …, "error": {"code": …, "message": …}}`
    public static func failure(id: JSONValue, _ failure: Failure) -> String {
        JSONText.object([("id", id.text), ("error", JSONValue.object([
            "code": .string(failure.code.rawValue), "message": .string(failure.message),
        ]).text)])
    }
}
