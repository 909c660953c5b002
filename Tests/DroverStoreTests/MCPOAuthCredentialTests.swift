import DroverCore
import Foundation
import Testing

@testable import DroverStore

/// An mcp_oauth credential's `auth`, split into what is sealed and what is answered, without I/O.
@Suite struct MCPOAuthCredentialTests {
    static let now = Date(timeIntervalSince1970: 1_800_000_000)
    static let auth: JSONValue = [
        "type": "mcp_oauth", "mcp_server_url": "https://mcp.example/mcp", "access_token": "at", "expires_at": "2027-06-01T00:00:00Z",
        "refresh": ["refresh_token": "rt", "client_id": "c", "token_endpoint": "https://auth.example/token",
                    "token_endpoint_auth": ["type": "client_secret_post", "client_secret": "cs"], "scope": "read"],
    ]

    @Test func secretsAreSealedApartFromWhatIsAnswered() throws {
        let credential = try MCPOAuthCredential(creating: Self.auth, now: Self.now)
        #expect(credential.secrets == ["access_token": "at", "refresh_token": "rt", "client_secret": "cs"])
        #expect(credential.refresh == ["client_id": "c", "token_endpoint": "https://auth.example/token",
                                       "token_endpoint_auth": ["type": "client_secret_post"], "scope": "read", "resource": .null])
        #expect(!(credential.refresh?.text ?? "").contains("cs") && !(credential.refresh?.text ?? "").contains("rt"))
        let updated = try MCPOAuthCredential.updating(["type": "mcp_oauth", "access_token": "at2", "refresh": ["scope": ""]],
                                                      secrets: credential.secrets, refresh: credential.refresh, expiresAt: nil, now: Self.now)
        #expect(updated.secrets["access_token"] == "at2" && updated.refresh?["scope"] == .null)
    }

    @Test func everyRuleRefusesWithAReason() {
        func refused(_ change: (inout [String: JSONValue]) -> Void) -> Bool {
            guard case .object(var fields) = Self.auth else { return false }
            change(&fields)
            return (try? MCPOAuthCredential(creating: .object(fields), now: Self.now)) == nil
        }
        #expect(refused { $0["access_token"] = "" })
        #expect(refused { $0["mcp_server_url"] = "ftp://x" })
        #expect(refused { $0["expires_at"] = "2020-01-01T00:00:00Z" }, "an expiry in the past")
        #expect(refused { $0["expires_at"] = "tomorrow" })
        #expect(refused { $0["refresh"] = ["refresh_token": "rt", "client_id": "c", "token_endpoint": "https://a/t", "token_endpoint_auth": ["type": "client_secret_basic"]] })
        #expect(refused { $0["refresh"] = ["refresh_token": "rt", "client_id": "c", "token_endpoint": "https://a/t", "token_endpoint_auth": ["type": "private_key_jwt"]] })
        #expect(refused { $0["refresh"] = ["client_id": "c", "token_endpoint": "https://a/t", "token_endpoint_auth": ["type": "none"]] })
    }
}
