import DroverCore

/// A sandbox's way out, fixed at provision: the environment's networking policy and the
/// repositories the session mounted. Without either the sandbox has no network at all (an empty
/// namespace, no proxy); with them it sees only the pool's egress proxy, at
/// `127.0.0.1:proxyPort` inside its own namespace.
struct SandboxNetwork: Sendable {
    var policy: NetworkPolicy
    var repositories: [Repository]
    /// Proves to the proxy that a connection came through this sandbox's bridge.
    var secret: String

    /// Where the proxy listens inside every networked sandbox.
    static let proxyPort = 3128
    /// The host name under which repositories appear to the sandbox (`origin` points here); the
    /// proxy forwards such requests to the real remote with the credential added.
    static let repositoryHost = "repositories.drover.internal"

    /// A `github_repository` resource: any HTTP(S) git remote and its token, which only the proxy
    /// ever holds.
    struct Repository: Sendable, Equatable {
        /// The remote, without credentials (`https://host/owner/name.git`).
        var url: String
        var token: String?
        /// Absolute path inside the sandbox, under `/workspace`.
        var mountPath: String
        /// A branch or commit to check out (nil: the remote's default branch).
        var checkout: Checkout?

        enum Checkout: Sendable, Equatable {
            case branch(String)
            case commit(String)
        }

        /// The path component naming it under `repositoryHost`.
        var relayName: String {
            String(mountPath.split(separator: "/").last ?? "repository")
        }

        /// `origin` as the sandbox sees it.
        var relayURL: String { "http://\(SandboxNetwork.repositoryHost)/\(relayName)" }

        /// Never prints the token.
        var logged: JSONValue { ["url": .string(url), "mount_path": .string(mountPath)] }
    }

    /// Reads the provision request's `networking` (Managed Agents' `config.networking`) and
    /// `repositories` (`[{url, authorization_token?, mount_path?, checkout?}]`); nil when neither
    /// lets anything out.
    static func parse(networking: JSONValue?, repositories: JSONValue?, secret: String) throws(PoolProtocol.Failure) -> SandboxNetwork? {
        if let networking, networking != .null {
            guard case .object = networking, let type = networking["type"]?.stringValue, ["none", "limited", "unrestricted"].contains(type) else {
                throw PoolProtocol.Failure(.badRequest, "networking must be {\"type\": \"none\" | \"limited\" | \"unrestricted\", …}")
            }
        }
        let policy = NetworkPolicy(environmentConfig: networking.map { ["networking": $0] })
        var list: [Repository] = []
        if let repositories, repositories != .null {
            guard case .array(let items) = repositories else { throw PoolProtocol.Failure(.badRequest, "repositories must be an array") }
            for item in items {
                list.append(try repository(item))
            }
            let names = list.map(\.relayName)
            guard Set(names).count == names.count else {
                throw PoolProtocol.Failure(.badRequest, "repositories: two mount paths end in the same name")
            }
        }
        if policy.kind == .none && list.isEmpty { return nil }
        return SandboxNetwork(policy: policy, repositories: list, secret: secret)
    }

    private static func repository(_ item: JSONValue) throws(PoolProtocol.Failure) -> Repository {
        guard let url = item["url"]?.stringValue, let parsed = RepositoryURL(url) else {
            throw PoolProtocol.Failure(.badRequest, "a repository needs url (http or https, without credentials)")
        }
        let token = item["authorization_token"]?.stringValue
        let mountPath = item["mount_path"]?.stringValue ?? "/workspace/" + parsed.name
        let parts = mountPath.split(separator: "/", omittingEmptySubsequences: true)
        guard mountPath.hasPrefix("/workspace/"), parts.count >= 2, !parts.contains(".."), !parts.contains("."),
              parts.last!.allSatisfy({ $0.isLetter || $0.isNumber || "-_.".contains($0) }) else {
            throw PoolProtocol.Failure(.badRequest, "mount_path must be a path under /workspace/ (got \(mountPath))")
        }
        var checkout: Repository.Checkout?
        if let spec = item["checkout"], spec != .null {
            switch (spec["type"]?.stringValue, spec["name"]?.stringValue, spec["sha"]?.stringValue) {
            case ("branch", let name?, _) where RepositoryURL.isSafeRef(name): checkout = .branch(name)
            case ("commit", _, let sha?) where sha.allSatisfy(\.isHexDigit) && (7...64).contains(sha.count): checkout = .commit(sha)
            default: throw PoolProtocol.Failure(.badRequest, "checkout must be {\"type\": \"branch\", \"name\"} or {\"type\": \"commit\", \"sha\"}")
            }
        }
        return Repository(url: url, token: token, mountPath: mountPath, checkout: checkout)
    }
}

/// An HTTP(S) remote split into what the proxy needs to reach it.
struct RepositoryURL: Sendable, Equatable {
    var https: Bool
    var host: String
    var port: Int
    /// The path, without a trailing slash (`/owner/name.git`).
    var path: String

    init?(_ text: String) {
        let scheme: Bool
        let rest: Substring
        if text.hasPrefix("https://") {
            (scheme, rest) = (true, text.dropFirst(8))
        } else if text.hasPrefix("http://") {
            (scheme, rest) = (false, text.dropFirst(7))
        } else {
            return nil
        }
        let authority = rest.prefix { $0 != "/" }
        guard !authority.isEmpty, !authority.contains("@") else { return nil }
        var path = String(rest.dropFirst(authority.count))
        while path.hasSuffix("/") { path.removeLast() }
        guard path.allSatisfy({ !$0.isWhitespace && $0 != "?" && $0 != "#" }) else { return nil }
        let hostPort = String(authority)
        if let colon = hostPort.lastIndex(of: ":"), !hostPort.hasSuffix("]"), let port = Int(hostPort[hostPort.index(after: colon)...]) {
            (host, self.port) = (String(hostPort[..<colon]), port)
        } else {
            (host, port) = (hostPort, scheme ? 443 : 80)
        }
        https = scheme
        self.path = path
    }

    /// The last path component without `.git`.
    var name: String {
        let last = path.split(separator: "/").last.map(String.init) ?? "repository"
        let bare = last.hasSuffix(".git") ? String(last.dropLast(4)) : last
        return bare.isEmpty ? "repository" : bare
    }

    /// A branch name git would accept and a shell cannot misread.
    static func isSafeRef(_ name: String) -> Bool {
        !name.isEmpty && !name.hasPrefix("-") && !name.contains("..")
            && name.allSatisfy { $0.isLetter || $0.isNumber || "-_./".contains($0) }
    }
}
