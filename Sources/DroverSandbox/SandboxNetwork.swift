import DroverCore

/// A sandbox's way out, fixed at provision: the environment's networking policy and the
/// repositories the session mounted. Without either the sandbox has no network at all (an empty
/// namespace, no proxy); with them it sees only the pool's egress proxy, at
/// `127.0.0.1:proxyPort` inside each call's own namespace.
struct SandboxNetwork: Sendable {
    var policy: NetworkPolicy
    var repositories: [RepositoryResource]

    /// Where the proxy listens inside every networked sandbox.
    static let proxyPort = 3128
    /// The host name under which repositories appear to the sandbox (`origin` points here).
    static let repositoryHost = RepositoryResource.relayHost

    /// Reads the provision request's `networking` (Managed Agents' `config.networking`) and
    /// `repositories` (`[{url, authorization_token?, mount_path?, checkout?}]`); nil when neither
    /// lets anything out. `packageHosts`: the registries `allow_package_managers` opens (the
    /// public ones and the pool's mirrors).
    static func parse(networking: JSONValue?, repositories: JSONValue?, packageHosts: [String] = NetworkPolicy.packageManagerHosts)
        throws(PoolProtocol.Failure) -> SandboxNetwork? {
        if let networking, networking != .null {
            guard case .object = networking, let type = networking["type"]?.stringValue, ["none", "limited", "unrestricted"].contains(type) else {
                throw PoolProtocol.Failure(.badRequest, "networking must be {\"type\": \"none\" | \"limited\" | \"unrestricted\", …}")
            }
        }
        let policy = NetworkPolicy(environmentConfig: networking.map { ["networking": $0] }, packageHosts: packageHosts)
        var list: [RepositoryResource] = []
        if let repositories, repositories != .null {
            guard case .array(let items) = repositories else { throw PoolProtocol.Failure(.badRequest, "repositories must be an array") }
            for item in items {
                do {
                    list.append(try RepositoryResource(json: item))
                } catch {
                    throw PoolProtocol.Failure(.badRequest, error.message)
                }
            }
            let names = list.map(\.relayName)
            guard Set(names).count == names.count else {
                throw PoolProtocol.Failure(.badRequest, "repositories: two mount paths end in the same name")
            }
        }
        if policy.kind == .none && list.isEmpty { return nil }
        return SandboxNetwork(policy: policy, repositories: list)
    }
}
