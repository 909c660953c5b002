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
        let limited = Self.network(NetworkPolicy(kind: .limited, allowedHosts: ["pypi.org", "127.0.0.2:8080", "*.example.com", "127.0.0.2:9091"]))
        let plan = { (target: String) in EgressPlanner.plan(Self.head("CONNECT \(target) HTTP/1.1\r\nHost: \(target)\r\n\r\n"), network: limited) }
        #expect(plan("pypi.org:443") == .tunnel(host: "pypi.org", port: 443))
        #expect(plan("127.0.0.2:8080") == .tunnel(host: "127.0.0.2", port: 8080), "a pattern naming the port opens it")
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
        // Origin-form requests are not proxy requests.
        guard case .refuse(let originForm) = EgressPlanner.plan(Self.head("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), network: open) else { return }
        #expect(originForm.code == "bad_proxy_request")
    }

    @Test func repositoryRequestsGoToTheRemoteWithTheCredentialAndNotTheSandboxs() throws {
        let repository = try RepositoryResource(json: [
            "url": "https://git.example.com/team/project.git", "authorization_token": "tok", "mount_path": "/workspace/project",
        ])
        let network = Self.network(NetworkPolicy(kind: .limited, allowedHosts: ["git.example.com"]), repositories: [repository])
        let plan = EgressPlanner.plan(
            Self.head("GET http://repositories.drover.internal/project/info/refs?service=git-upload-pack HTTP/1.1\r\nHost: repositories.drover.internal\r\nAuthorization: Basic forged\r\nGit-Protocol: version=2\r\n\r\n"),
            network: network)
        let basic = "Basic " + Data("x-access-token:tok".utf8).base64EncodedString()
        #expect(plan == .repository(
            host: "git.example.com", port: 443, https: true,
            head: "GET /team/project.git/info/refs?service=git-upload-pack HTTP/1.1\r\nHost: git.example.com\r\nGit-Protocol: version=2\r\nAuthorization: \(basic)\r\nConnection: close\r\n\r\n"))
        guard case .refuse(let unknown) = EgressPlanner.plan(Self.head("GET http://repositories.drover.internal/other/x HTTP/1.1\r\n\r\n"), network: network) else { return }
        #expect(unknown.code == "unknown_repository" && !unknown.message.contains("tok"))
        // Only what the policy names goes out.
        guard case .refuse = EgressPlanner.plan(Self.head("CONNECT other.example.com:443 HTTP/1.1\r\n\r\n"), network: network) else {
            Issue.record("an unnamed host was tunnelled")
            return
        }
    }

    /// Issue #20: a tunnel goes to 443 unless a pattern names the port itself (a wildcard or a bare
    /// name does not open every port of a host).
    @Test func connectGoesTo443UnlessAPatternNamesThePort() {
        let limited = Self.network(NetworkPolicy(kind: .limited, allowedHosts: ["pypi.org", "*.example.com", "db.example.com:5432"]))
        let plan = { (target: String) in EgressPlanner.plan(Self.head("CONNECT \(target) HTTP/1.1\r\nHost: \(target)\r\n\r\n"), network: limited) }
        #expect(plan("pypi.org:443") == .tunnel(host: "pypi.org", port: 443))
        #expect(plan("db.example.com:5432") == .tunnel(host: "db.example.com", port: 5432))
        for target in ["pypi.org:22", "files.example.com:6379", "pypi.org:80"] {
            guard case .refuse(let refusal) = plan(target) else {
                Issue.record("\(target) was tunnelled")
                continue
            }
            #expect(refusal.code == "egress_denied")
        }
        let open = Self.network(NetworkPolicy(kind: .unrestricted))
        guard case .refuse = EgressPlanner.plan(Self.head("CONNECT example.org:25 HTTP/1.1\r\n\r\n"), network: open) else {
            Issue.record("unrestricted tunnelled to port 25")
            return
        }
    }

    /// Issue #20: the Host sent upstream is the checked one, never the sandbox's (domain fronting).
    @Test func theCheckedHostIsSentUpstreamNotTheSandboxs() {
        let limited = Self.network(NetworkPolicy(kind: .limited, allowedHosts: ["allowed.test:8080"]))
        let plan = EgressPlanner.plan(
            Self.head("GET http://allowed.test:8080/x HTTP/1.1\r\nHost: internal-admin.test\r\nHOST: other\r\nAccept: */*\r\n\r\n"), network: limited)
        #expect(plan == .forward(host: "allowed.test", port: 8080, head: "GET /x HTTP/1.1\r\nHost: allowed.test:8080\r\nAccept: */*\r\nConnection: close\r\n\r\n"))
    }

    /// Issue #20: a repository's remote follows the environment's policy, and relay paths stay in
    /// the repository (`..` carried the token to other paths of the remote's host).
    @Test func repositoryRemotesFollowThePolicyAndPathsStayInside() throws {
        let repository = try RepositoryResource(json: ["url": "https://git.example.com/team/project.git", "authorization_token": "tok"])
        let relay = { (path: String, policy: NetworkPolicy) in
            EgressPlanner.plan(Self.head("GET http://repositories.drover.internal/project\(path) HTTP/1.1\r\n\r\n"),
                               network: Self.network(policy, repositories: [repository]))
        }
        let allowed = NetworkPolicy(kind: .limited, allowedHosts: ["git.example.com"])
        guard case .repository = relay("/info/refs?service=git-upload-pack", allowed) else {
            Issue.record("an allowed remote was refused")
            return
        }
        guard case .refuse(let none) = relay("/info/refs", NetworkPolicy(kind: .none)) else {
            Issue.record("networking none reached the remote")
            return
        }
        #expect(none.code == "egress_denied" && none.message.contains("git.example.com") && !none.message.contains("tok"))
        for escape in ["/../../other/repo.git/info/refs", "/%2e%2e/x", "/.%2E/x", "/a%2fb", "/a%5c..", "/./x", "-evil/x"] {
            guard case .refuse(let refusal) = relay(escape, allowed) else {
                Issue.record("\(escape) left the repository")
                continue
            }
            #expect(refusal.code == "bad_proxy_request" || refusal.code == "unknown_repository", "\(escape)")
        }
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
