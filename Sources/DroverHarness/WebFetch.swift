import DroverCore
import DroverIO
import DroverModel
import Foundation
import Synchronization

/// `web_fetch`: a built-in tool the harness runs itself (never the sandbox), under the
/// environment's `NetworkPolicy` (by name) and the operator's `AddressRule` (by the address that
/// is connected: resolved once, checked, and curl pinned to it). Offered to the model only when the
/// policy allows something. Answers the page's readable text (HTML reduced), at most `maxBytes`
/// read and `timeout` seconds spent in all; redirects are followed (at most 5), each checked again.
public struct WebFetch: HarnessTool {
    public static let name = "web_fetch"
    public static let definition = ToolDefinition(
        name: name, description: "Fetch a web page and return its readable text.",
        inputSchema: ["type": "object", "properties": ["url": ["type": "string", "description": "http(s) URL"]], "required": ["url"]])

    public var name: String { Self.name }
    public var definition: ToolDefinition { Self.definition }
    public var policy: NetworkPolicy
    public var rule: AddressRule
    public var maxBytes = 1 << 20
    /// The most text a result carries (a tool result is one event, whose payload is capped at
    /// 1 MiB; a page read whole and returned whole failed the session with payload_too_large).
    public var maxText = 100 * 1024
    public var timeout: Double = 20
    let client = HTTPClient()

    public init(policy: NetworkPolicy, rule: AddressRule) {
        self.policy = policy
        self.rule = rule
    }

    /// The tool result (content, is_error).
    public func run(_ input: JSONValue) async -> (content: String, isError: Bool) {
        guard var url = input["url"]?.stringValue.flatMap(URL.init(string:)) else { return ("web_fetch needs url (an http or https URL)", true) }
        let deadline = ContinuousClock.now + .seconds(timeout)
        for _ in 0...5 {
            guard let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https", let host = url.host, !host.isEmpty else {
                return ("\(url.absoluteString.prefix(300)) is not an http or https URL", true)
            }
            let port = url.port ?? (scheme == "https" ? 443 : 80)
            guard policy.allows(host: host, port: port) else {
                return ("403 refused by the environment's network policy (\(policy.kind.rawValue)): \(host):\(port) is not allowed", true)
            }
            let left = (deadline - ContinuousClock.now) / .seconds(1)
            guard left > 0 else { return ("fetching \(url.absoluteString.prefix(300)) failed: no answer within \(Int(timeout)) s", true) }
            var request = HTTPRequest(url: url.absoluteString, method: "GET", headers: [("accept", "text/html, text/plain, */*")],
                                      connectTimeout: min(5, left), idleTimeout: timeout)
            request.addressRule = rule
            request.maxResponseBytes = maxBytes
            request.totalTimeout = left
            let head: HTTPResponseHead
            let bytes: [UInt8]
            do {
                (head, bytes) = try await client.fetch(request)
            } catch let error as HTTPError {
                if let refusal = error.refusal { return ("403 refused: \(refusal.message)", true) }
                return ("fetching \(url.absoluteString.prefix(300)) failed: \(error.message)", true)
            } catch {
                return ("fetching \(url.absoluteString.prefix(300)) failed", true)
            }
            if (300..<400).contains(head.status), let location = head.headers["location"], let next = URL(string: location, relativeTo: url) {
                url = next.absoluteURL
                continue
            }
            let raw = String(decoding: bytes, as: UTF8.self)
            let isHTML = (head.headers["content-type"] ?? "").contains("html") || raw.lowercased().contains("<html")
            var text = isHTML ? ReadableText.from(html: raw) : raw
            if head.truncated {
                text += "\n[truncated: the page is larger than \(maxBytes) bytes]"
            }
            if text.utf8.count > maxText {
                text = String(decoding: text.utf8.prefix(maxText), as: UTF8.self) + "\n[truncated: the text is longer than \(maxText) bytes]"
            }
            guard (200..<300).contains(head.status) else { return ("HTTP \(head.status) from \(url.absoluteString.prefix(300))\n\(text.prefix(2000))", true) }
            return (text, false)
        }
        return ("more than 5 redirects from \(input["url"]?.stringValue?.prefix(300) ?? "")", true)
    }
}
