import DroverCore
import DroverIO
import DroverModel
import Foundation
import Synchronization

/// One agent's MCP server, spoken to over MCP's streamable-HTTP transport: JSON-RPC requests
/// POSTed to the server's URL, answered as JSON or as a server-sent event stream, with the
/// session id the server assigns at `initialize` sent on every later request. The harness runs
/// it (never the sandbox) and adds the vault's bearer credential, which the model never sees.
///
/// A tenant names the server, so it is reached like any tenant-chosen host: its name must pass the
/// environment's networking policy and its address the operator's `AddressRule`; a response is
/// read to at most `maxResponseBytes` within `timeout` seconds in all, and what reaches a
/// `session.error` is a bounded message of ours, never the server's body.
public final class MCPClient: Sendable {
    public let name: String
    public let url: String
    private let token: String?
    private let policy: NetworkPolicy
    private let rule: AddressRule
    private let http = HTTPClient()
    private let state = Mutex<(session: String?, nextID: Int)>((nil, 1))
    static let protocolVersion = "2025-06-18"
    static let timeout: Double = 30
    static let maxResponseBytes = 4 << 20
    /// The longest text of a server's that reaches an event (an error's message).
    static let maxQuoted = 300

    /// A tool the server offers.
    public struct Tool: Sendable {
        public var name: String
        public var description: String
        public var inputSchema: JSONValue
    }

    /// Why a server could not be used, as Managed Agents' `session.error` types name it.
    public struct Failure: Error, Sendable {
        public enum Kind: String, Sendable {
            case authentication = "mcp_authentication_failed_error"
            case connection = "mcp_connection_failed_error"
        }
        public var kind: Kind
        public var message: String
        /// The MCP method that failed, and the server's HTTP answer when it sent one (for
        /// `mcp_oauth_validate`'s probe; the body as the server sent it, cut after 4 kB).
        public var method: String?
        public var response: (status: Int, contentType: String, body: [UInt8])?

        public init(kind: Kind, message: String, method: String? = nil, response: (status: Int, contentType: String, body: [UInt8])? = nil) {
            self.kind = kind
            self.message = message
            self.method = method
            self.response = response
        }
    }

    public init(name: String, url: String, token: String?, policy: NetworkPolicy, rule: AddressRule) {
        self.name = name
        self.url = url
        self.token = token
        self.policy = policy
        self.rule = rule
    }

    /// `initialize`, then `notifications/initialized`, then `tools/list` (every page).
    public func connect() async throws(Failure) -> [Tool] {
        let initialized = try await call("initialize", [
            "protocolVersion": .string(Self.protocolVersion), "capabilities": [:],
            "clientInfo": ["name": "drover", "version": "1"],
        ])
        guard initialized["protocolVersion"]?.stringValue != nil else {
            throw Failure(kind: .connection, message: "\(url) answered initialize without a protocolVersion", method: "initialize")
        }
        try await notify("notifications/initialized")
        var tools: [Tool] = []
        var cursor: String?
        repeat {
            let page = try await call("tools/list", cursor.map { ["cursor": .string($0)] } ?? [:])
            if case .array(let list)? = page["tools"] {
                tools += list.compactMap { tool in
                    tool["name"]?.stringValue.map {
                        Tool(name: $0, description: tool["description"]?.stringValue ?? "", inputSchema: tool["inputSchema"] ?? ["type": "object"])
                    }
                }
            }
            cursor = page["nextCursor"]?.stringValue
        } while cursor != nil && tools.count < 1000
        return tools
    }

    /// `tools/call`: the result's text blocks and whether the tool reported an error.
    public func callTool(_ tool: String, arguments: JSONValue) async throws(Failure) -> (content: [JSONValue], isError: Bool) {
        let result = try await call("tools/call", ["name": .string(tool), "arguments": arguments])
        var content: [JSONValue] = []
        if case .array(let blocks)? = result["content"] {
            content = blocks.map { block in
                block["type"]?.stringValue == "text" ? ["type": "text", "text": block["text"] ?? ""] : ["type": "text", "text": .string(block.text)]
            }
        }
        return (content, result["isError"]?.boolValue ?? false)
    }

    // MARK: - Transport

    private func headers() -> [(String, String)] {
        var headers = [("content-type", "application/json"), ("accept", "application/json, text/event-stream")]
        if let token { headers.append(("authorization", "Bearer " + token)) }
        if let session = state.withLock({ $0.session }) {
            headers.append(("mcp-session-id", session))
            headers.append(("mcp-protocol-version", Self.protocolVersion))
        }
        return headers
    }

    private func post(_ message: JSONValue) async throws(Failure) -> (HTTPResponseHead, [UInt8]) {
        let origin = Self.origin(url)
        let method = message["method"]?.stringValue
        guard let components = URLComponents(string: url), let host = components.host,
            policy.allows(host: host, port: components.port ?? (components.scheme?.lowercased() == "https" ? 443 : 80))
        else {
            throw Failure(kind: .connection, message: "the MCP server \(name) at \(origin) is refused by the environment's network policy (\(policy.kind.rawValue))", method: method)
        }
        var request = HTTPRequest(url: url, method: "POST", headers: headers(), body: Array(message.text.utf8), connectTimeout: 5, idleTimeout: Self.timeout)
        request.addressRule = rule
        request.maxResponseBytes = Self.maxResponseBytes
        request.totalTimeout = Self.timeout
        let answer: (HTTPResponseHead, [UInt8])
        do {
            answer = try await http.fetch(request)
        } catch let error as HTTPError {
            throw Failure(kind: .connection, message: "cannot reach the MCP server \(name) at \(origin): \(String(error.message.prefix(Self.maxQuoted)))", method: method)
        } catch {
            throw Failure(kind: .connection, message: "cannot reach the MCP server \(name) at \(origin)", method: method)
        }
        if answer.0.truncated {
            throw Failure(kind: .connection, message: "the MCP server \(name) sent more than \(Self.maxResponseBytes) bytes", method: method)
        }
        let response = Self.captured(answer)
        switch answer.0.status {
        case 200..<300: return answer
        case 401, 403:
            throw Failure(kind: .authentication, message: "the MCP server \(name) refused the credential (HTTP \(answer.0.status))", method: method, response: response)
        default:
            throw Failure(kind: .connection, message: "the MCP server \(name) answered HTTP \(answer.0.status)", method: method, response: response)
        }
    }

    private func notify(_ method: String) async throws(Failure) {
        _ = try await post(["jsonrpc": "2.0", "method": .string(method)])
    }

    private func call(_ method: String, _ params: JSONValue) async throws(Failure) -> JSONValue {
        let id = state.withLock { state -> Int in
            defer { state.nextID += 1 }
            return state.nextID
        }
        let (head, body) = try await post(["jsonrpc": "2.0", "id": .number(Double(id)), "method": .string(method), "params": params])
        if let session = head.headers["mcp-session-id"] { state.withLock { $0.session = session } }
        let messages: [JSONValue]
        if (head.headers["content-type"] ?? "").hasPrefix("text/event-stream") {
            messages = Self.events(body)
        } else {
            messages = (try? JSONValue.parse(body)).map { [$0] } ?? []
        }
        guard let reply = messages.first(where: { $0["id"]?.intValue == id }) else {
            throw Failure(kind: .connection, message: "the MCP server \(name) sent no answer to \(method)", method: method, response: Self.captured((head, body)))
        }
        if let error = reply["error"], error != .null {
            let said = String((error["message"]?.stringValue ?? "an error").prefix(Self.maxQuoted))
            throw Failure(kind: .connection, message: "the MCP server \(name) refused \(method): \(said)", method: method, response: Self.captured((head, body)))
        }
        return reply["result"] ?? [:]
    }

    /// An answer as a failure keeps it: status, content type, and the body's first 4 kB (and a byte, to tell it was cut).
    static func captured(_ answer: (HTTPResponseHead, [UInt8])) -> (status: Int, contentType: String, body: [UInt8]) {
        (answer.0.status, answer.0.headers["content-type"] ?? "", Array(answer.1.prefix(4097)))
    }

    /// Scheme, host and port of a server's URL: a path or query may hold a key.
    static func origin(_ url: String) -> String {
        guard let components = URLComponents(string: url), let scheme = components.scheme, let host = components.host else { return "its URL" }
        return "\(scheme)://\(host)" + (components.port.map { ":\($0)" } ?? "")
    }

    /// The JSON messages of a server-sent event stream, read with the project's one `SSEParser`
    /// (an event left without its closing blank line still counts: the body has ended).
    static func events(_ body: [UInt8]) -> [JSONValue] {
        var parser = SSEParser()
        return (parser.feed(body) + parser.feed(Array("\n\n".utf8))).compactMap { try? JSONValue.parse($0.data) }
    }
}
