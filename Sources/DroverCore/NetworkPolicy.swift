/// Where an environment's tools may reach, as Managed Agents' `config.networking` says:
/// `{"type": "none"}` (the default), `{"type": "limited", "allowed_hosts": [...],
/// "allow_package_managers": bool}` or `{"type": "unrestricted"}`. Pure: the harness's `web_fetch`
/// asks it before every request (and every redirect), MCP connections and the pool's egress proxy
/// (tunnels, plain HTTP and repository remotes) before every connection.
public struct NetworkPolicy: Sendable, Equatable {
    public enum Kind: String, Sendable { case none, limited, unrestricted }

    public var kind: Kind
    /// `host`, `host:port` or `*.domain` patterns (limited).
    public var allowedHosts: [String]
    /// `limited`'s `allow_mcp_servers`: the agent's MCP servers may be reached beyond `allowedHosts`.
    public var allowsMCPServers = false

    /// Debian's, PyPI's and npm's registries, which `allow_package_managers` adds.
    public static let packageManagerHosts = [
        "deb.debian.org", "security.debian.org", "pypi.org", "files.pythonhosted.org", "registry.npmjs.org",
    ]

    public init(kind: Kind, allowedHosts: [String] = []) {
        self.kind = kind
        self.allowedHosts = allowedHosts
    }

    /// Reads an environment's config (`networking` absent is `none`); a malformed one is `none`.
    /// `packageHosts`: what `allow_package_managers` opens (a pool adds its mirrors).
    public init(environmentConfig config: JSONValue?, packageHosts: [String] = packageManagerHosts) {
        let networking = config?["networking"]
        switch networking?["type"]?.stringValue {
        case "unrestricted":
            self.init(kind: .unrestricted)
        case "limited":
            var hosts: [String] = []
            if case .array(let list)? = networking?["allowed_hosts"] { hosts = list.compactMap(\.stringValue) }
            if networking?["allow_package_managers"]?.boolValue == true { hosts += packageHosts }
            self.init(kind: .limited, allowedHosts: hosts.map { $0.lowercased() })
            allowsMCPServers = networking?["allow_mcp_servers"]?.boolValue == true
        default:
            self.init(kind: .none)
        }
    }

    /// Whether the environment lets a request to `host:port` go out, by name: `none` nothing,
    /// `unrestricted` every name, `limited` the names its patterns match. Where the name leads is
    /// the operator's `AddressRule`, checked on every resolved address: no tenant pattern, however
    /// exact, opens a loopback, private or metadata address.
    public func allows(host rawHost: String, port: Int) -> Bool {
        switch kind {
        case .none: false
        case .unrestricted: true
        case .limited: portsOfPatterns(matching: rawHost).contains { $0 == nil || $0 == port }
        }
    }

    /// Whether a `limited` pattern that matches `host` names `port` itself (CONNECT goes to 443
    /// only, unless a pattern names the port).
    public func namesPort(host rawHost: String, port: Int) -> Bool {
        kind == .limited && portsOfPatterns(matching: rawHost).contains(port)
    }

    /// The ports (nil: any) of the patterns whose host matches `host`: exactly, or as `*.domain`.
    private func portsOfPatterns(matching rawHost: String) -> [Int?] {
        let host = Self.normalized(rawHost)
        return allowedHosts.compactMap { pattern in
            let (patternHost, patternPort) = Self.split(pattern)
            let matches = patternHost == host || (patternHost.hasPrefix("*.") && host.hasSuffix(String(patternHost.dropFirst(1))))
            return matches ? .some(patternPort) : nil
        }
    }

    /// Lower case, without brackets or one trailing dot (`Example.org.` is `example.org`).
    static func normalized(_ host: String) -> String {
        var name = host.lowercased()
        if name.hasPrefix("[") && name.hasSuffix("]") { name = String(name.dropFirst().dropLast()) }
        if name.hasSuffix(".") { name.removeLast() }
        return name
    }

    static func split(_ pattern: String) -> (String, Int?) {
        guard let colon = pattern.lastIndex(of: ":"), let port = Int(pattern[pattern.index(after: colon)...]) else { return (normalized(pattern), nil) }
        return (normalized(String(pattern[..<colon])), port)
    }
}
