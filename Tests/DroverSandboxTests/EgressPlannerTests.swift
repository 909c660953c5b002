import DroverCore
import DroverIO
import Foundation
import Testing

@testable import DroverSandbox

/// The egress proxy's decisions, without I/O: what a request head becomes under a policy.
struct EgressPlannerTests {
    static func network(_ policy: NetworkPolicy, repositories: [RepositoryResource] = []) -> SandboxNetwork {
        SandboxNetwork(policy: policy, repositories: repositories)
    }

    static func head(_ text: String) -> EgressPlanner.Head {
        let bytes = Array(text.utf8)
        return try! HTTPRequestParser.head(bytes[..<HTTPRequestParser.find([13, 10, 13, 10], in: bytes[...])!]).get()
    }

    @Test func connectIsTunnelledOnlyWhenThePolicyAllowsTheHostAndPort() {
        let limited = Self.network(NetworkPolicy(kind: .limited, allowedHosts: ["pypi.org", "127.0.0.2:8080", "*.example.com"]))
        let plan = { (target: String) in EgressPlanner.plan(Self.head("CONNECT \(target) HTTP/1.1\r\nHost: \(target)\r\n\r\n"), network: limited) }
        #expect(plan("pypi.org:443") == .tunnel(host: "pypi.org", port: 443))
        #expect(plan("127.0.0.2:8080") == .tunnel(host: "127.0.0.2", port: 8080))
        #expect(plan("files.example.com:443") == .tunnel(host: "files.example.com", port: 443))
        guard case .refuse(let wrongPort) = plan("127.0.0.2:9090"), case .refuse(let other) = plan("evil.test:443") else {
            Issue.record("refusals expected")
            return
        }
        #expect(wrongPort.code == "egress_denied" && wrongPort.status == 403)
        #expect(other.message.contains("allowed_hosts"))
        guard case .refuse(let noPort) = plan("pypi.org") else { Issue.record("CONNECT without a port"); return }
        #expect(noPort.code == "bad_proxy_request")
    }

    @Test func plainHTTPIsRewrittenToOriginFormWithoutProxyHeaders() {
        let open = Self.network(NetworkPolicy(kind: .unrestricted))
        let plan = EgressPlanner.plan(
            Self.head("GET http://example.org/a/b?c=1 HTTP/1.1\r\nHost: example.org\r\nProxy-Connection: keep-alive\r\nProxy-Authorization: x\r\nAccept: */*\r\n\r\n"),
            network: open)
        #expect(plan == .forward(host: "example.org", port: 80, head: "GET /a/b?c=1 HTTP/1.1\r\nHost: example.org\r\nAccept: */*\r\nConnection: close\r\n\r\n"))
        // Unrestricted never reaches private or loopback literals.
        guard case .refuse = EgressPlanner.plan(Self.head("GET http://10.0.0.1/ HTTP/1.1\r\n\r\n"), network: open) else {
            Issue.record("a private address was allowed")
            return
        }
        // Origin-form requests are not proxy requests.
        guard case .refuse(let originForm) = EgressPlanner.plan(Self.head("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), network: open) else { return }
        #expect(originForm.code == "bad_proxy_request")
    }

    @Test func repositoryRequestsGoToTheRemoteWithTheCredentialAndNotTheSandboxs() throws {
        let repository = try RepositoryResource(json: [
            "url": "https://git.example.com/team/project.git", "authorization_token": "tok", "mount_path": "/workspace/project",
        ])
        let network = Self.network(NetworkPolicy(kind: .none), repositories: [repository])
        let plan = EgressPlanner.plan(
            Self.head("GET http://repositories.drover.internal/project/info/refs?service=git-upload-pack HTTP/1.1\r\nHost: repositories.drover.internal\r\nAuthorization: Basic forged\r\nGit-Protocol: version=2\r\n\r\n"),
            network: network)
        let basic = "Basic " + Data("x-access-token:tok".utf8).base64EncodedString()
        #expect(plan == .repository(
            host: "git.example.com", port: 443, https: true,
            head: "GET /team/project.git/info/refs?service=git-upload-pack HTTP/1.1\r\nHost: git.example.com\r\nGit-Protocol: version=2\r\nAuthorization: \(basic)\r\nConnection: close\r\n\r\n"))
        guard case .refuse(let unknown) = EgressPlanner.plan(Self.head("GET http://repositories.drover.internal/other/x HTTP/1.1\r\n\r\n"), network: network) else { return }
        #expect(unknown.code == "unknown_repository" && !unknown.message.contains("tok"))
        // networking none: nothing else goes out.
        guard case .refuse = EgressPlanner.plan(Self.head("CONNECT git.example.com:443 HTTP/1.1\r\n\r\n"), network: network) else {
            Issue.record("networking none let a tunnel through")
            return
        }
    }

    @Test func resolvedAddressesAreCheckedAgain() {
        let limited = NetworkPolicy(kind: .limited, allowedHosts: ["127.0.0.2:80", "*.example.com", "intranet.test"])
        #expect(limited.allows(address: "127.0.0.2", host: "127.0.0.2", port: 80))
        #expect(limited.allows(address: "10.1.2.3", host: "intranet.test", port: 443), "named exactly: its private address is meant")
        #expect(!limited.allows(address: "10.1.2.3", host: "a.example.com", port: 443), "a wildcard never reaches inward")
        #expect(!NetworkPolicy(kind: .unrestricted).allows(address: "::ffff:127.0.0.1", host: "rebound.test", port: 80))
        #expect(!NetworkPolicy(kind: .unrestricted).allows(address: "::1", host: "x", port: 80))
        #expect(NetworkPolicy(kind: .unrestricted).allows(address: "93.184.216.34", host: "x", port: 80))
    }

    @Test func repositoryResourcesAreCheckedWhereTheyEnter() {
        func refused(_ json: JSONValue) -> Bool { (try? RepositoryResource(json: json)) == nil }
        #expect(refused(["url": "https://user:pass@host/x.git"]), "credentials in the URL")
        #expect(refused(["url": "ssh://host/x.git"]))
        #expect(refused(["url": "https://host/x.git", "mount_path": "/etc/x"]))
        #expect(refused(["url": "https://host/x.git", "mount_path": "/workspace/../etc"]))
        #expect(refused(["url": "https://host/x.git", "mount_path": "/workspace/a b"]))
        #expect(refused(["url": "https://host/x.git", "checkout": ["type": "branch", "name": "--upload-pack=evil"]]))
        #expect(refused(["url": "https://host/x.git", "checkout": ["type": "commit", "sha": "not-hex"]]))
        let parsed = try? RepositoryResource(json: ["url": "http://127.0.0.2:9000/team/app.git", "checkout": ["type": "branch", "name": "feature/x"]])
        #expect(parsed?.mountPath == "/workspace/app" && parsed?.relayURL == "http://repositories.drover.internal/app" && parsed?.checkout == .branch("feature/x"))
    }
}
