import DroverCore
import Foundation

/// An `mcp_oauth` credential's `auth`, checked and split into what is sealed (the access token,
/// the refresh token, the client secret, as one JSON object) and what is kept in the clear (the
/// expiry, and the refresh configuration without its secrets). Pure: the API stores the parts;
/// the harness reads the sealed part back (`secrets`) to call the MCP server and to refresh.
public struct MCPOAuthCredential: Sendable, Equatable {
    public var mcpServerURL: String
    public var expiresAt: Date?
    /// The sealed part: `access_token`, and `refresh_token` and `client_secret` when refreshable.
    public var secrets: JSONValue
    /// The clear part of `refresh`: `client_id`, `token_endpoint`, `token_endpoint_auth {type}`,
    /// `scope`, `resource` (nil: not refreshable).
    public var refresh: JSONValue?

    /// From `credentials.create(auth=…)`; `now` is when the expiry must come after.
    public init(creating auth: JSONValue, now: Date = Date()) throws(DroverError) {
        guard let token = auth["access_token"]?.stringValue, !token.isEmpty, token.utf8.count <= 8_192 else {
            throw DroverError(.invalidArgument, "auth.access_token: a non-empty string is required")
        }
        guard let url = auth["mcp_server_url"]?.stringValue, url.hasPrefix("http://") || url.hasPrefix("https://") else {
            throw DroverError(.invalidArgument, "auth.mcp_server_url: an http(s) URL is required")
        }
        mcpServerURL = url
        expiresAt = try Self.expiry(auth["expires_at"], now: now)
        var secrets: [String: JSONValue] = ["access_token": .string(token)]
        if let given = auth["refresh"], given != .null {
            guard let refreshToken = given["refresh_token"]?.stringValue, !refreshToken.isEmpty,
                  let clientID = given["client_id"]?.stringValue, !clientID.isEmpty,
                  let endpoint = given["token_endpoint"]?.stringValue, endpoint.hasPrefix("http://") || endpoint.hasPrefix("https://") else {
                throw DroverError(.invalidArgument, "auth.refresh: refresh_token, client_id and token_endpoint (an http(s) URL) are required")
            }
            let method = given["token_endpoint_auth"]?["type"]?.stringValue
            switch method {
            case "none"?: break
            case "client_secret_basic"?, "client_secret_post"?:
                guard let secret = given["token_endpoint_auth"]?["client_secret"]?.stringValue, !secret.isEmpty else {
                    throw DroverError(.invalidArgument, "auth.refresh.token_endpoint_auth.client_secret: required for \(method!)")
                }
                secrets["client_secret"] = .string(secret)
            default:
                throw DroverError(.invalidArgument, "auth.refresh.token_endpoint_auth.type: none, client_secret_basic or client_secret_post")
            }
            secrets["refresh_token"] = .string(refreshToken)
            refresh = [
                "client_id": .string(clientID), "token_endpoint": .string(endpoint), "token_endpoint_auth": ["type": .string(method!)],
                "scope": given["scope"]?.stringValue.map(JSONValue.string) ?? .null,
                "resource": given["resource"]?.stringValue.map(JSONValue.string) ?? .null,
            ]
        }
        self.secrets = .object(secrets)
    }

    /// `expires_at`: absent or null for unknown, else an RFC 3339 time after `now`.
    static func expiry(_ value: JSONValue?, now: Date) throws(DroverError) -> Date? {
        guard let value, value != .null else { return nil }
        guard let date = value.stringValue.flatMap(RFC3339.date) else {
            throw DroverError(.invalidArgument, "auth.expires_at: an RFC 3339 time is required")
        }
        guard date > now else { throw DroverError(.invalidArgument, "auth.expires_at must be in the future") }
        return date
    }

    /// An update's changes to a stored credential (`credentials.update(auth={type: mcp_oauth, …})`):
    /// a new access token (and its expiry), a new refresh token, scope (empty clears it) or client
    /// secret. Returns the new sealed part, clear refresh part and expiry.
    public static func updating(
        _ auth: JSONValue, secrets: JSONValue, refresh: JSONValue?, expiresAt: Date?, now: Date = Date()
    ) throws(DroverError) -> (secrets: JSONValue, refresh: JSONValue?, expiresAt: Date?) {
        guard case .object(var sealed) = secrets else { throw DroverError(.database, "a stored mcp_oauth secret is not an object") }
        var clear = refresh
        var expiry = expiresAt
        if auth["mcp_server_url"] != nil { throw DroverError(.invalidArgument, "auth.mcp_server_url cannot change") }
        if let token = auth["access_token"], token != .null {
            guard let text = token.stringValue, !text.isEmpty else { throw DroverError(.invalidArgument, "auth.access_token: a non-empty string") }
            sealed["access_token"] = .string(text)
        }
        if auth["expires_at"] != nil { expiry = try Self.expiry(auth["expires_at"], now: now) }
        if let given = auth["refresh"], given != .null {
            guard case .object(var fields)? = clear else { throw DroverError(.invalidArgument, "auth.refresh: this credential was created without refresh") }
            if let token = given["refresh_token"]?.stringValue {
                guard !token.isEmpty else { throw DroverError(.invalidArgument, "auth.refresh.refresh_token: a non-empty string") }
                sealed["refresh_token"] = .string(token)
            }
            if let scope = given["scope"], scope != .null { fields["scope"] = scope.stringValue.flatMap { $0.isEmpty ? nil : JSONValue.string($0) } ?? .null }
            if let secret = given["token_endpoint_auth"]?["client_secret"]?.stringValue {
                guard fields["token_endpoint_auth"]?["type"]?.stringValue != "none" else {
                    throw DroverError(.invalidArgument, "auth.refresh.token_endpoint_auth: this credential's token endpoint takes no client secret")
                }
                sealed["client_secret"] = .string(secret)
            }
            clear = .object(fields)
        }
        return (.object(sealed), clear, expiry)
    }
}
