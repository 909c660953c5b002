import DroverCore
import Foundation

/// Why an outbound connection a tenant asked for is not made: the name does not resolve, or no
/// address it resolves to passes the `AddressRule`. `code` is stable (`egress_denied`,
/// `unresolvable`); the message names the address and its range, never a response body.
public struct OutboundRefusal: Error, Sendable, Equatable, CustomStringConvertible {
    public var code: String
    public var message: String
    public var description: String { "\(code): \(message)" }

    public init(code: String, message: String) {
        self.code = code
        self.message = message
    }
}

/// Performs the address rule: resolves a name once (names and every numeric form the C resolver
/// accepts, `2130706433` and `0177.0.0.1` included, so the check sees what a connect would), and
/// keeps the addresses the rule allows. The caller connects to exactly one of those.
public enum OutboundResolver {
    /// Blocking (getaddrinfo): call it from a thread that may block, never Swift's cooperative pool.
    public static func resolve(host: String, port: Int, rule: AddressRule) throws(OutboundRefusal) -> [IPAddress] {
        let name = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        guard !name.isEmpty, name.utf8.allSatisfy({ $0 > 32 && $0 < 127 }) else {
            throw OutboundRefusal(code: "unresolvable", message: "\(host.debugDescription) is not a host name")
        }
        let addresses = lookUp(name, port: port)
        guard !addresses.isEmpty else { throw OutboundRefusal(code: "unresolvable", message: "\(name) does not resolve") }
        let allowed = addresses.filter { rule.refusal(for: $0) == nil }
        guard !allowed.isEmpty else {
            let refusal = rule.refusal(for: addresses[0]) ?? ""
            throw OutboundRefusal(code: "egress_denied", message: "\(name) resolves to \(refusal)")
        }
        return allowed
    }

    /// Every address `name` resolves to, in the resolver's order, without duplicates.
    static func lookUp(_ name: String, port: Int) -> [IPAddress] {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_family = AF_UNSPEC
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(name, String(port), &hints, &list) == 0, let first = list else { return [] }
        defer { freeaddrinfo(first) }
        var seen: [IPAddress] = []
        for entry in sequence(first: first, next: { $0.pointee.ai_next }) {
            if let address = IPAddress(sockaddr: entry.pointee.ai_addr), !seen.contains(address) { seen.append(address) }
        }
        return seen
    }

    /// The addresses of this host's interfaces (internal to the rule whatever their range: a
    /// sandbox must not reach the pool host's services on its public address either).
    public static func ownAddresses() -> Set<IPAddress> {
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0, let first = list else { return [] }
        defer { freeifaddrs(first) }
        var addresses: Set<IPAddress> = []
        for entry in sequence(first: first, next: { $0.pointee.ifa_next }) {
            if let address = IPAddress(sockaddr: entry.pointee.ifa_addr) { addresses.insert(address) }
        }
        return addresses
    }

    /// The operator's rule: `DROVER_ALLOW_INTERNAL` (or a daemon's `--allow-internal`, given as
    /// `allowed`), with this host's own addresses.
    public static func operatorRule(allowed: String?) throws(DroverError) -> AddressRule {
        let text = allowed ?? ProcessInfo.processInfo.environment["DROVER_ALLOW_INTERNAL"] ?? ""
        return AddressRule(allowedInternal: try AddressRule.parseAllowed(text), ownAddresses: ownAddresses())
    }
}

extension IPAddress {
    /// The IP address of a `sockaddr_in` or `sockaddr_in6` (nil for another family).
    public init?(sockaddr raw: UnsafePointer<sockaddr>?) {
        guard let raw else { return nil }
        switch Int32(raw.pointee.sa_family) {
        case AF_INET:
            var inner = raw.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr }
            self.init(bytes: withUnsafeBytes(of: &inner) { Array($0) })
        case AF_INET6:
            var inner = raw.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee.sin6_addr }
            self.init(bytes: withUnsafeBytes(of: &inner) { Array($0) })
        default:
            return nil
        }
    }
}
