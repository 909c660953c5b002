import DroverCore
import DroverModel
import Foundation
import Synchronization

/// `web_fetch`: a built-in tool the harness runs itself (never the sandbox, which has no network),
/// under the environment's `NetworkPolicy`. Offered to the model only when the policy allows
/// something. Answers the page's readable text (HTML reduced), at most `maxBytes` read and
/// `timeout` seconds spent; redirects are followed (at most 5), each checked against the policy.
public struct WebFetch: Sendable {
    public static let name = "web_fetch"
    public static let definition = ToolDefinition(
        name: name, description: "Fetch a web page and return its readable text.",
        inputSchema: ["type": "object", "properties": ["url": ["type": "string", "description": "http(s) URL"]], "required": ["url"]])

    public var policy: NetworkPolicy
    public var maxBytes = 1 << 20
    public var timeout: Double = 20
    let client = HTTPClient()

    public init(policy: NetworkPolicy) { self.policy = policy }

    /// The tool result (content, is_error).
    public func run(_ input: JSONValue) async -> (content: String, isError: Bool) {
        guard var url = input["url"]?.stringValue.flatMap(URL.init(string:)) else { return ("web_fetch needs url (an http or https URL)", true) }
        for _ in 0...5 {
            guard let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https", let host = url.host else {
                return ("\(url.absoluteString) is not an http or https URL", true)
            }
            let port = url.port ?? (scheme == "https" ? 443 : 80)
            guard policy.allows(host: host, port: port) else {
                return ("403 refused by the environment's network policy (\(policy.kind.rawValue)): \(host):\(port) is not allowed", true)
            }
            final class Received: Sendable { let bytes = Mutex([UInt8]()) }
            let received = Received()
            let request = HTTPRequest(url: url.absoluteString, method: "GET", headers: [("accept", "text/html, text/plain, */*")],
                                      connectTimeout: 5, idleTimeout: timeout)
            let head: HTTPResponseHead
            do {
                head = try await withThrowingTaskGroup(of: HTTPResponseHead?.self) { group in
                    group.addTask { [client, maxBytes] in
                        // Bytes past the limit are not kept (the transfer ends with the timeout at worst).
                        try await client.perform(request) { chunk in
                            received.bytes.withLock { if $0.count <= maxBytes { $0 += chunk } }
                        }
                    }
                    group.addTask { [timeout] in
                        try await Task.sleep(for: .seconds(timeout))
                        return nil
                    }
                    defer { group.cancelAll() }
                    guard let first = try await group.next(), let head = first else {
                        throw CancellationError()
                    }
                    return head
                }
            } catch is CancellationError {
                return ("fetching \(url.absoluteString) failed: no answer within \(Int(timeout)) s", true)
            } catch {
                return ("fetching \(url.absoluteString) failed: \(error)", true)
            }
            if (300..<400).contains(head.status), let location = head.headers["location"], let next = URL(string: location, relativeTo: url) {
                url = next.absoluteURL
                continue
            }
            var bytes = received.bytes.withLock { $0 }
            let truncated = bytes.count > maxBytes
            if bytes.count > maxBytes { bytes = Array(bytes.prefix(maxBytes)) }
            let raw = String(decoding: bytes, as: UTF8.self)
            let isHTML = (head.headers["content-type"] ?? "").contains("html") || raw.lowercased().contains("<html")
            var text = isHTML ? ReadableText.from(html: raw) : raw
            if truncated { text += "\n[truncated: the page is larger than \(maxBytes) bytes]" }
            guard (200..<300).contains(head.status) else { return ("HTTP \(head.status) from \(url.absoluteString)\n\(text.prefix(2000))", true) }
            return (text, false)
        }
        return ("more than 5 redirects from \(input["url"]?.stringValue ?? "")", true)
    }
}
