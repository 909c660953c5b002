import DroverCore
import DroverIO
import DroverModel
import Foundation

/// `web_search`: a built-in tool the harness runs against the operator's search backend
/// (`drover harness --search-url`), a SearXNG-style JSON endpoint: `GET <url>?q=<query>&format=json`
/// answering `{"results": [{"title", "url", "content"}, …]}`. Offered where the environment's
/// network policy allows something (as `web_fetch`); the backend's address obeys the operator's
/// `AddressRule`. Answers the first results as text; fetching one is `web_fetch`'s, under the
/// policy.
public struct WebSearch: HarnessTool {
    public static let name = "web_search"
    public static let definition = ToolDefinition(
        name: name, description: "Search the web; returns the top results (title, URL, snippet).",
        inputSchema: ["type": "object", "properties": ["query": ["type": "string", "description": "what to search for"]], "required": ["query"]])

    public var name: String { Self.name }
    public var definition: ToolDefinition { Self.definition }
    public var backend: String
    public var rule: AddressRule
    public var maxResults = 8
    public var timeout: Double = 15
    let client = HTTPClient()

    public init(backend: String, rule: AddressRule) {
        self.backend = backend
        self.rule = rule
    }

    public func run(_ input: JSONValue) async -> (content: String, isError: Bool) {
        guard let query = input["query"]?.stringValue, !query.trimmingCharacters(in: .whitespaces).isEmpty, query.utf8.count <= 2_048 else {
            return ("web_search needs query (1 to 2,048 bytes of text)", true)
        }
        guard var components = URLComponents(string: backend) else { return ("the search backend's URL is not valid", true) }
        components.queryItems = (components.queryItems ?? []) + [URLQueryItem(name: "q", value: query), URLQueryItem(name: "format", value: "json")]
        guard let url = components.url?.absoluteString else { return ("the search backend's URL is not valid", true) }
        var request = HTTPRequest(url: url, method: "GET", headers: [("accept", "application/json")], connectTimeout: 5, idleTimeout: timeout)
        request.addressRule = rule
        request.maxResponseBytes = 2 << 20
        request.totalTimeout = timeout
        let (head, bytes): (HTTPResponseHead, [UInt8])
        do {
            (head, bytes) = try await client.fetch(request)
        } catch let error as HTTPError {
            return ("the search failed: \(error.refusal?.message ?? error.message)", true)
        } catch {
            return ("the search failed", true)
        }
        guard (200..<300).contains(head.status) else { return ("the search backend answered HTTP \(head.status)", true) }
        guard let json = try? JSONValue.parse(bytes), case .array(let results)? = json["results"] else {
            return ("the search backend answered something other than {\"results\": […]}", true)
        }
        return (Self.format(results.prefix(maxResults).map { $0 }, query: query), false)
    }

    /// Numbered results: title, URL and snippet each, as the model reads them.
    static func format(_ results: [JSONValue], query: String) -> String {
        guard !results.isEmpty else { return "No results for \(query)." }
        return results.enumerated().map { index, result in
            let title = result["title"]?.stringValue ?? "(untitled)"
            let snippet = (result["content"]?.stringValue ?? "").prefix(500)
            return "\(index + 1). \(title)\n   \(result["url"]?.stringValue ?? "")\n   \(snippet)"
        }.joined(separator: "\n")
    }
}
