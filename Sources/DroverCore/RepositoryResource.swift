/// A session's `github_repository` resource (any HTTP(S) git remote, as Managed Agents shapes it):
/// `{url, authorization_token?, mount_path?, checkout?}`. Checked where it enters (the API, the
/// pool), so that the values reaching git and a shell are plain. The token is only ever held by
/// the API (to seal it), the harness (to pass it on) and the pool's egress proxy (to use it).
public struct RepositoryResource: Sendable, Equatable {
    /// The remote, without credentials (`https://host/owner/name.git`).
    public var url: String
    public var token: String?
    /// Absolute path inside the sandbox, under `/workspace`.
    public var mountPath: String
    /// A branch or commit to check out (nil: the remote's default branch).
    public var checkout: Checkout?

    public enum Checkout: Sendable, Equatable {
        case branch(String)
        case commit(String)

        public var json: JSONValue {
            switch self {
            case .branch(let name): ["type": "branch", "name": .string(name)]
            case .commit(let sha): ["type": "commit", "sha": .string(sha)]
            }
        }
    }

    /// Why a resource was refused.
    public struct Invalid: Error, Sendable {
        public var message: String
    }

    /// The host name under which repositories appear inside a sandbox (`origin` points there); the
    /// pool's egress proxy forwards such requests to the real remote with the credential added.
    public static let relayHost = "repositories.drover.internal"

    public init(url: String, token: String?, mountPath: String, checkout: Checkout?) {
        self.url = url
        self.token = token
        self.mountPath = mountPath
        self.checkout = checkout
    }

    public init(json item: JSONValue) throws(Invalid) {
        guard let url = item["url"]?.stringValue, let parsed = RepositoryURL(url) else {
            throw Invalid(message: "a repository needs url (http or https, without credentials)")
        }
        let mountPath = item["mount_path"]?.stringValue ?? "/workspace/" + parsed.name
        let parts = mountPath.split(separator: "/", omittingEmptySubsequences: true)
        guard mountPath.hasPrefix("/workspace/"), parts.count >= 2, !parts.contains(".."), !parts.contains("."),
              parts.allSatisfy({ $0.allSatisfy { $0.isLetter || $0.isNumber || "-_.".contains($0) } }) else {
            throw Invalid(message: "mount_path must be a path under /workspace/ of letters, digits, - _ . (got \(mountPath))")
        }
        var checkout: Checkout?
        if let spec = item["checkout"], spec != .null {
            switch (spec["type"]?.stringValue, spec["name"]?.stringValue, spec["sha"]?.stringValue) {
            case ("branch", let name?, _) where RepositoryURL.isSafeRef(name): checkout = .branch(name)
            case ("commit", _, let sha?) where sha.allSatisfy(\.isHexDigit) && (7...64).contains(sha.count): checkout = .commit(sha)
            default: throw Invalid(message: "checkout must be {\"type\": \"branch\", \"name\"} or {\"type\": \"commit\", \"sha\"}")
            }
        }
        let token = item["authorization_token"]?.stringValue
        self.init(url: url, token: token.flatMap { $0.isEmpty ? nil : $0 }, mountPath: mountPath, checkout: checkout)
    }

    /// As the pool's provision request carries it (with the token).
    public var provisionJSON: JSONValue {
        var fields: [String: JSONValue] = ["url": .string(url), "mount_path": .string(mountPath)]
        if let token { fields["authorization_token"] = .string(token) }
        if let checkout { fields["checkout"] = checkout.json }
        return .object(fields)
    }

    /// The path component naming it under `relayHost`.
    public var relayName: String {
        String(mountPath.split(separator: "/").last ?? "repository")
    }

    /// `origin` as the sandbox sees it.
    public var relayURL: String { "http://\(Self.relayHost)/\(relayName)" }

    /// Never prints the token.
    public var logged: JSONValue { ["url": .string(url), "mount_path": .string(mountPath)] }
}

/// An HTTP(S) remote split into what the proxy needs to reach it.
public struct RepositoryURL: Sendable, Equatable {
    public var https: Bool
    public var host: String
    public var port: Int
    /// The path, without a trailing slash (`/owner/name.git`).
    public var path: String

    public init?(_ text: String) {
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
    public var name: String {
        let last = path.split(separator: "/").last.map(String.init) ?? "repository"
        let bare = last.hasSuffix(".git") ? String(last.dropLast(4)) : last
        return bare.isEmpty ? "repository" : bare
    }

    /// A branch name git would accept and a shell cannot misread.
    public static func isSafeRef(_ name: String) -> Bool {
        !name.isEmpty && !name.hasPrefix("-") && !name.contains("..")
            && name.allSatisfy { $0.isLetter || $0.isNumber || "-_./".contains($0) }
    }
}
