import DroverCore
import DroverIO
import DroverModel
import DroverStore
import Foundation

/// Refreshes an `mcp_oauth` credential's access token at its token endpoint (RFC 6749, section 6:
/// `grant_type=refresh_token`), with the client authentication the credential names: HTTP Basic
/// (`client_secret_basic`), the form body (`client_secret_post`) or the client id alone (`none`).
/// The harness does it before connecting an MCP server whose token has expired or expires within
/// `margin`; the endpoint's address obeys the operator's `AddressRule` like every call the
/// harness makes for a tenant.
public struct OAuthRefresher: Sendable {
    public var rule: AddressRule
    public var timeout: Double = 15
    /// A token this close to its expiry is refreshed first: a connection made with it could
    /// outlive it.
    static let margin: TimeInterval = 60
    let client = HTTPClient()

    public static func needsRefresh(_ credential: VaultCredentials.Credential, now: Date = Date()) -> Bool {
        guard credential.refresh != nil, let expiresAt = credential.expiresAt else { return false }
        return expiresAt.timeIntervalSince(now) < margin
    }

    public struct Refreshed: Sendable, Equatable {
        public var accessToken: String
        public var expiresAt: Date?
        /// The refresh token to keep: the endpoint's new one if it rotated it, else the same.
        public var refreshToken: String
    }

    public init(rule: AddressRule, timeout: Double = 15) {
        self.rule = rule
        self.timeout = timeout
    }

    /// The token request (method, headers, form body): pure, so its encoding is tested alone.
    static func request(_ refresh: VaultCredentials.OAuthRefresh) -> (headers: [(String, String)], body: String) {
        var form = [("grant_type", "refresh_token"), ("refresh_token", refresh.refreshToken)]
        var headers = [("content-type", "application/x-www-form-urlencoded"), ("accept", "application/json")]
        switch refresh.method {
        case "client_secret_basic":
            // RFC 6749, 2.3.1: the id and secret are form-encoded, then joined and base64-encoded.
            let pair = formEncode(refresh.clientID) + ":" + formEncode(refresh.clientSecret ?? "")
            headers.append(("authorization", "Basic " + Data(pair.utf8).base64EncodedString()))
        case "client_secret_post":
            form += [("client_id", refresh.clientID), ("client_secret", refresh.clientSecret ?? "")]
        default:
            form.append(("client_id", refresh.clientID))
        }
        if let scope = refresh.scope { form.append(("scope", scope)) }
        if let resource = refresh.resource { form.append(("resource", resource)) }
        return (headers, form.map { formEncode($0.0) + "=" + formEncode($0.1) }.joined(separator: "&"))
    }

    /// `application/x-www-form-urlencoded`: unreserved characters kept, space as `+`, the rest %XX.
    static func formEncode(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            case UInt8(ascii: " "): out += "+"
            default: out += String(format: "%%%02X", byte)
            }
        }
        return out
    }

    /// Why a refresh did not give a token: the endpoint was out of reach, or it answered
    /// something else (kept, for `mcp_oauth_validate`: status, content type, the body's first 4 kB).
    public enum Failure: Error, Sendable, CustomStringConvertible {
        case unreachable(String)
        case refused(status: Int, contentType: String, body: [UInt8], reason: String?)

        public var description: String {
            switch self {
            case .unreachable(let why): "the token endpoint could not be reached: \(why)"
            case .refused(let status, _, _, let reason): "the token endpoint refused the refresh: HTTP \(status)" + (reason.map { " (\($0))" } ?? "")
            }
        }
    }

    public func refresh(_ refresh: VaultCredentials.OAuthRefresh, now: Date = Date()) async throws(Failure) -> Refreshed {
        let (headers, body) = Self.request(refresh)
        var request = HTTPRequest(url: refresh.tokenEndpoint, method: "POST", headers: headers, body: Array(body.utf8),
                                  connectTimeout: 5, idleTimeout: timeout)
        request.addressRule = rule
        request.maxResponseBytes = 64 * 1024
        request.totalTimeout = timeout
        let head: HTTPResponseHead
        let bytes: [UInt8]
        do {
            (head, bytes) = try await client.fetch(request)
        } catch let error as HTTPError {
            throw .unreachable(error.refusal?.message ?? error.message)
        } catch {
            throw .unreachable("\(error)")
        }
        let json = try? JSONValue.parse(bytes)
        guard (200..<300).contains(head.status), let token = json?["access_token"]?.stringValue, !token.isEmpty else {
            throw .refused(status: head.status, contentType: head.headers["content-type"] ?? "", body: Array(bytes.prefix(4097)),
                           reason: json?["error"]?.stringValue)
        }
        let expiresAt = json?["expires_in"]?.doubleValue.map { now.addingTimeInterval($0) }
        return Refreshed(accessToken: token, expiresAt: expiresAt, refreshToken: json?["refresh_token"]?.stringValue ?? refresh.refreshToken)
    }
}
