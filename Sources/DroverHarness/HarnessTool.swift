import DroverCore
import DroverModel

/// A built-in tool the harness itself runs (never the sandbox, which has no network): `web_fetch`,
/// `web_search`. Offered where the environment's network policy allows something; its result is
/// text the model reads.
public protocol HarnessTool: Sendable {
    var name: String { get }
    var definition: ToolDefinition { get }
    func run(_ input: JSONValue) async -> (content: String, isError: Bool)
}
