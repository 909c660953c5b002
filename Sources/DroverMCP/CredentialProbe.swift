import DroverCore
import DroverStore
import Foundation

/// `vaults.credentials.mcp_oauth_validate`: a live probe of an mcp_oauth credential against its
/// MCP server (`initialize` and `tools/list` with its access token, as a session would connect);
/// when the server refuses the token and the credential can be refreshed, one refresh at its
/// token endpoint and a second probe. The verdict is the SDK's `BetaManagedAgentsCredentialValidation`:
/// `valid`, `invalid` (the server or the token endpoint refused), or `unknown` (something could
/// not be reached, or failed for another reason). Responses it quotes have the credential's
/// secrets scrubbed. Reached under the operator's `AddressRule`, as every call the API makes for
/// a tenant.
public struct CredentialProbe: Sendable {
    public var rule: AddressRule

    public init(rule: AddressRule) { self.rule = rule }

    public struct Outcome: Sendable {
        public var status: String
        /// The failing probe step (`{method, http_response}`), or null.
        public var mcpProbe: JSONValue = .null
        /// The refresh attempted (`{status, http_response}`), or null when none was.
        public var refresh: JSONValue = .null
        /// A token the refresh gave, to store.
        public var refreshed: OAuthRefresher.Refreshed?
    }

    public func validate(_ credential: VaultCredentials.Credential) async -> Outcome {
        let secrets = [credential.token, credential.refresh?.refreshToken ?? "", credential.refresh?.clientSecret ?? ""].filter { !$0.isEmpty }
        var outcome = Outcome(status: "valid")
        if !credential.token.isEmpty {
            guard let first = await probe(credential, token: credential.token) else { return outcome }
            outcome.mcpProbe = Self.step(first, scrubbing: secrets)
            guard first.kind == .authentication else {
                outcome.status = "unknown"
                return outcome
            }
        }
        guard let refresh = credential.refresh else {
            outcome.status = "invalid"
            outcome.refresh = ["status": "no_refresh_token", "http_response": .null]
            return outcome
        }
        let fresh: OAuthRefresher.Refreshed
        do {
            fresh = try await OAuthRefresher(rule: rule).refresh(refresh)
        } catch {
            switch error {
            case .unreachable:
                outcome.status = "unknown"
                outcome.refresh = ["status": "connect_error", "http_response": .null]
            case .refused(let status, let contentType, let body, _):
                outcome.status = "invalid"
                outcome.refresh = ["status": "failed", "http_response": Self.response(status, contentType, body, scrubbing: secrets)]
            }
            return outcome
        }
        outcome.refreshed = fresh
        outcome.refresh = ["status": "succeeded", "http_response": .null]
        if let second = await probe(credential, token: fresh.accessToken) {
            outcome.mcpProbe = Self.step(second, scrubbing: secrets + [fresh.accessToken, fresh.refreshToken])
            outcome.status = second.kind == .authentication ? "invalid" : "unknown"
        } else {
            outcome.mcpProbe = .null
            outcome.status = "valid"
        }
        return outcome
    }

    private func probe(_ credential: VaultCredentials.Credential, token: String) async -> MCPClient.Failure? {
        // No environment here: the name is not a tenant's networking policy's to judge, the
        // address is the operator's rule's.
        let client = MCPClient(name: "validation", url: credential.mcpServerURL, token: token, policy: NetworkPolicy(kind: .unrestricted), rule: rule)
        do {
            _ = try await client.connect()
            return nil
        } catch {
            return error
        }
    }

    static func step(_ failure: MCPClient.Failure, scrubbing secrets: [String]) -> JSONValue {
        [
            "method": .string(failure.method ?? "initialize"),
            "http_response": failure.response.map { response(Int($0.status), $0.contentType, $0.body, scrubbing: secrets) } ?? .null,
        ]
    }

    /// An HTTP answer as the SDK's `BetaManagedAgentsRefreshHTTPResponse`: the body to 4 kB,
    /// every secret of the credential replaced.
    static func response(_ status: Int, _ contentType: String, _ body: [UInt8], scrubbing secrets: [String]) -> JSONValue {
        var text = String(decoding: body.prefix(maxBody), as: UTF8.self)
        for secret in secrets where !secret.isEmpty { text = text.replacingOccurrences(of: secret, with: "[redacted]") }
        return ["status_code": .number(Double(status)), "content_type": .string(contentType), "body": .string(text), "body_truncated": .bool(body.count > maxBody)]
    }

    static let maxBody = 4096
}
