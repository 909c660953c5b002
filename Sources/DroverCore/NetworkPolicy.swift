/// Where an environment's tools may reach, as Managed Agents' `config.networking` says:
/// `{"type": "none"}` (the default), `{"type": "limited", "allowed_hosts": [...],
/// "allow_package_managers": bool}` or `{"type": "unrestricted"}`. Pure: the harness's `web_fetch`
/// asks it before every request (and every redirect), and the pool's egress proxy before every
/// connection a sandbox opens, once for the name and once for each address it resolves to.
public struct NetworkPolicy: Sendable, Equatable {
    public enum Kind: String, Sendable { case none, limited, unrestricted }

    public var kind: Kind
    /// `host`, `host:port` or `*.domain` patterns (limited).
    public var allowedHosts: [String]

    /// Debian's, PyPI's and npm's registries, which `allow_package_managers` adds.
    public static let packageManagerHosts = [
        "deb.debian.org", "security.debian.org", "pypi.org", "files.pythonhosted.org", "registry.npmjs.org",
    ]

    public init(kind: Kind, allowedHosts: [String] = []) {
        self.kind = kind
        self.allowedHosts = allowedHosts
    }

    /// Reads an environment's config (`networking` absent is `none`); a malformed one is `none`.
    public init(environmentConfig config: JSONValue?) {
        let networking = config?["networking"]
        switch networking?["type"]?.stringValue {
        case "unrestricted":
            self.init(kind: .unrestricted)
        case "limited":
            var hosts: [String] = []
            if case .array(let list)? = networking?["allowed_hosts"] { hosts = list.compactMap(\.stringValue) }
            if networking?["allow_package_managers"]?.boolValue == true { hosts += Self.packageManagerHosts }
            self.init(kind: .limited, allowedHosts: hosts.map { $0.lowercased() })
        default:
            self.init(kind: .none)
        }
    }

    /// Whether a request to `host:port` may go out. Loopback and private addresses are refused
    /// unless a `limited` pattern names them explicitly (a wildcard does not).
    public func allows(host rawHost: String, port: Int) -> Bool {
        let host = rawHost.lowercased()
        switch kind {
        case .none:
            return false
        case .unrestricted:
            return !Self.isPrivate(host)
        case .limited:
            for pattern in allowedHosts {
                let (patternHost, patternPort) = Self.split(pattern)
                if let patternPort, patternPort != port { continue }
                if patternHost == host { return true }
                if patternHost.hasPrefix("*."), !Self.isPrivate(host), host.hasSuffix(String(patternHost.dropFirst(1))) { return true }
            }
            return false
        }
    }

    /// Whether `host` (already allowed by name) may be reached at the resolved `address`: a
    /// private or loopback address only when a `limited` pattern names that host exactly, so a
    /// public name that resolves inward (or a wildcard) cannot reach the pool's own network.
    public func allows(address: String, host rawHost: String, port: Int) -> Bool {
        guard Self.isPrivate(address) else { return true }
        guard kind == .limited else { return false }
        let host = rawHost.lowercased()
        return allowedHosts.contains { pattern in
            let (patternHost, patternPort) = Self.split(pattern)
            return patternHost == host && (patternPort == nil || patternPort == port)
        }
    }

    static func split(_ pattern: String) -> (String, Int?) {
        guard let colon = pattern.lastIndex(of: ":"), let port = Int(pattern[pattern.index(after: colon)...]) else { return (pattern, nil) }
        return (String(pattern[..<colon]), port)
    }

    /// Loopback, private, link-local and unspecified IPv4 literals, IPv6 loopback and local
    /// ranges, and `localhost`.
    public static func isPrivate(_ host: String) -> Bool {
        if host == "localhost" || host.hasSuffix(".localhost") || host == "::1" || host == "[::1]" { return true }
        let bare = String(host.filter { $0 != "[" && $0 != "]" }).lowercased()
        if bare == "::" || bare.hasPrefix("::ffff:") { return bare == "::" || isPrivate(String(bare.dropFirst(7))) }
        if bare.hasPrefix("fc") || bare.hasPrefix("fd") || bare.hasPrefix("fe80") { return bare.contains(":") }
        let parts = bare.split(separator: ".").compactMap { Int($0) }
        guard parts.count == 4, parts.allSatisfy({ (0...255).contains($0) }) else { return false }
        switch (parts[0], parts[1]) {
        case (127, _), (10, _), (0, _), (169, 254), (192, 168): return true
        case (172, let second) where (16...31).contains(second): return true
        case (100, let second) where (64...127).contains(second): return true
        default: return false
        }
    }
}
