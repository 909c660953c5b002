import DroverCore
import DroverIO
import Foundation

/// What the egress proxy does with one request a sandbox sent it. Pure: the proxy parses the
/// request head, asks here, and performs the answer (`EgressProxy`).
///
/// A sandbox speaks to the proxy as to any HTTP proxy: `CONNECT host:port` for TLS (and any other
/// TCP), or an absolute-form request (`GET http://host/path`) for plain HTTP. Requests for
/// `SandboxNetwork.repositoryHost` go to the session's repositories, with the credential added.
enum EgressPlanner {
    enum Plan: Equatable, Sendable {
        /// Reply `200 Connection established`, then relay bytes both ways.
        case tunnel(host: String, port: Int)
        /// Send `head` (rewritten to origin form) to host:port, then relay bytes both ways.
        case forward(host: String, port: Int, head: String)
        /// Like `forward`, to a repository's remote (under the environment's policy like any host).
        case repository(host: String, port: Int, https: Bool, head: String)
        case refuse(Refusal)
    }

    struct Refusal: Equatable, Sendable, Error {
        var status: Int
        /// A stable code, also sent as `X-Drover-Error`.
        var code: String
        var message: String

        static func denied(_ host: String, _ port: Int, _ policy: NetworkPolicy) -> Refusal {
            let why: String
            switch policy.kind {
            case .none: why = "this environment has no network access (networking: none)"
            case .unrestricted: why = "it is not allowed (networking: unrestricted)"
            case .limited: why = "it is not in the environment's allowed_hosts (networking: limited)"
            }
            return Refusal(status: 403, code: "egress_denied", message: "\(host):\(port) is refused: \(why)")
        }
    }

    typealias Head = HTTPRequestParser.Head

    /// Headers a proxy consumes (hop-by-hop) or a sandbox may not set toward a repository.
    static let dropped: Set<String> = ["proxy-connection", "proxy-authorization", "connection", "keep-alive", "te", "upgrade"]

    static func plan(_ head: Head, network: SandboxNetwork) -> Plan {
        let policy = network.policy
        if head.method == "CONNECT" {
            guard let (host, port) = splitAuthority(head.target, defaultPort: nil) else {
                return .refuse(Refusal(status: 400, code: "bad_proxy_request", message: "CONNECT needs host:port"))
            }
            if host == SandboxNetwork.repositoryHost {
                return .refuse(Refusal(status: 400, code: "bad_proxy_request", message: "repositories are reached over plain http://\(host)/"))
            }
            guard policy.allows(host: host, port: port) else { return .refuse(.denied(host, port, policy)) }
            // A tunnel is for TLS: port 443, or a port an allowed_hosts pattern names itself.
            guard port == 443 || policy.namesPort(host: host, port: port) else {
                return .refuse(Refusal(status: 403, code: "egress_denied",
                                       message: "CONNECT goes to port 443 only, unless an allowed_hosts pattern names \(host):\(port)"))
            }
            return .tunnel(host: host, port: port)
        }
        guard head.target.lowercased().hasPrefix("http://") else {
            let message = head.target.hasPrefix("/")
                ? "this is a proxy: send absolute-form requests (http://host/path) or CONNECT host:port"
                : "only http:// targets are forwarded; use CONNECT for https"
            return .refuse(Refusal(status: 400, code: "bad_proxy_request", message: message))
        }
        let rest = head.target.dropFirst(7)
        let authority = String(rest.prefix { $0 != "/" && $0 != "?" })
        var path = String(rest.dropFirst(authority.count))
        if path.isEmpty || path.hasPrefix("?") { path = "/" + path }
        guard let (host, port) = splitAuthority(authority, defaultPort: 80) else {
            return .refuse(Refusal(status: 400, code: "bad_proxy_request", message: "no host in \(head.target)"))
        }
        if host == SandboxNetwork.repositoryHost {
            return repositoryPlan(head, path: path, network: network)
        }
        guard policy.allows(host: host, port: port) else { return .refuse(.denied(host, port, policy)) }
        // The checked host goes upstream as Host, never the sandbox's own (domain fronting).
        var headers = head.fields.filter { !dropped.contains($0.name.lowercased()) && $0.name.lowercased() != "host" }.map { ($0.name, $0.value) }
        headers.insert(("Host", hostHeader(host, port, defaultPort: 80)), at: 0)
        headers.append(("Connection", "close"))
        return .forward(host: host, port: port, head: render(head.method, path, headers))
    }

    /// `http://repositories.drover.internal/<name>/<rest>` → the remote's `<path>/<rest>`, with
    /// the credential as HTTP Basic (`x-access-token:<token>`, which GitHub, GitLab and Gitea
    /// accept) and the sandbox's own Authorization dropped.
    private static func repositoryPlan(_ head: Head, path: String, network: SandboxNetwork) -> Plan {
        let name = path.dropFirst().prefix { $0 != "/" && $0 != "?" }
        guard let repository = network.repositories.first(where: { $0.relayName == name }), let remote = RepositoryURL(repository.url) else {
            return .refuse(Refusal(status: 404, code: "unknown_repository", message: "no repository named \(name) is mounted in this session"))
        }
        guard network.policy.allows(host: remote.host, port: remote.port) else {
            return .refuse(Refusal(
                status: 403, code: "egress_denied",
                message: "the repository \(name)'s remote \(remote.host):\(remote.port) is not allowed by the environment's networking (\(network.policy.kind.rawValue))"))
        }
        let rest = String(path.dropFirst(1 + name.count))
        guard confined(rest) else {
            return .refuse(Refusal(status: 400, code: "bad_proxy_request", message: "a repository path may not leave the repository (.., encoded / or \\)"))
        }
        var headers = head.fields.filter { !dropped.contains($0.name.lowercased()) && !["host", "authorization"].contains($0.name.lowercased()) }
            .map { ($0.name, $0.value) }
        let defaultPort = remote.https ? 443 : 80
        headers.insert(("Host", hostHeader(remote.host, remote.port, defaultPort: defaultPort)), at: 0)
        if let token = repository.token {
            headers.append(("Authorization", "Basic " + Data("x-access-token:\(token)".utf8).base64EncodedString()))
        }
        headers.append(("Connection", "close"))
        return .repository(host: remote.host, port: remote.port, https: remote.https, head: render(head.method, remote.path + rest, headers))
    }

    /// Whether what follows a repository's name stays inside it: empty, a query, or a path whose
    /// segments, percent-decoded, are never `.` or `..` and hold no `/` or `\\` of their own.
    static func confined(_ rest: String) -> Bool {
        guard rest.isEmpty || rest.hasPrefix("/") || rest.hasPrefix("?") else { return false }
        let path = rest.prefix { $0 != "?" }
        for segment in path.split(separator: "/", omittingEmptySubsequences: false).dropFirst() {
            let lowered = segment.lowercased()
            if lowered.contains("%2f") || lowered.contains("%5c") || segment.contains("\\") { return false }
            let decoded = segment.removingPercentEncoding ?? String(segment)
            if decoded == "." || decoded == ".." || (segment.contains("%") && segment.removingPercentEncoding == nil) { return false }
        }
        return true
    }

    static func hostHeader(_ host: String, _ port: Int, defaultPort: Int) -> String {
        let name = host.contains(":") ? "[\(host)]" : host
        return port == defaultPort ? name : "\(name):\(port)"
    }

    static func render(_ method: String, _ target: String, _ headers: [(name: String, value: String)]) -> String {
        var text = "\(method) \(target.isEmpty ? "/" : target) HTTP/1.1\r\n"
        for (name, value) in headers { text += "\(name): \(value)\r\n" }
        return text + "\r\n"
    }

    /// `host:port`, `[v6]:port` or `host` (with a default port).
    static func splitAuthority(_ text: String, defaultPort: Int?) -> (String, Int)? {
        guard !text.isEmpty, !text.contains("@") else { return nil }
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            let host = String(text[text.index(after: text.startIndex)..<close])
            let after = text[text.index(after: close)...]
            if after.isEmpty { return defaultPort.map { (host, $0) } }
            guard after.hasPrefix(":"), let port = Int(after.dropFirst()), (1...65535).contains(port) else { return nil }
            return (host, port)
        }
        if let colon = text.lastIndex(of: ":") {
            guard let port = Int(text[text.index(after: colon)...]), (1...65535).contains(port), colon != text.startIndex else { return nil }
            return (String(text[..<colon]).lowercased(), port)
        }
        return defaultPort.map { (text.lowercased(), $0) }
    }

    /// The answer to a refused request: a short text the agent can read.
    static func refusal(_ refusal: Refusal) -> String {
        let body = "drover egress proxy: \(refusal.message)\n"
        return "HTTP/1.1 \(refusal.status) \(HTTPResponse.reason(refusal.status))\r\nContent-Type: text/plain; charset=utf-8\r\nX-Drover-Error: \(refusal.code)\r\n"
            + "Content-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n" + body
    }
}
