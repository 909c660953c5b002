import Foundation

/// An IPv4 or IPv6 address as its bytes (4 or 16), with what the address rule needs to know of
/// it: which special range it is in. Built from what a resolver returned or from a strict literal,
/// never from a host name, so `2130706433`, `127.1` and `0177.0.0.1` are never read here: they
/// are names, which the resolver turns into the addresses that would be connected.
public struct IPAddress: Hashable, Sendable, CustomStringConvertible {
    public let bytes: [UInt8]

    public init?(bytes: [UInt8]) {
        guard bytes.count == 4 || bytes.count == 16 else { return nil }
        self.bytes = bytes
    }

    /// A strict literal: dotted-quad IPv4 (`inet_pton`'s form) or IPv6, with or without brackets.
    public init?(_ text: String) {
        var literal = text
        if literal.hasPrefix("[") && literal.hasSuffix("]") { literal = String(literal.dropFirst().dropLast()) }
        var v4 = in_addr()
        if inet_pton(AF_INET, literal, &v4) == 1 {
            self.bytes = withUnsafeBytes(of: &v4) { Array($0) }
            return
        }
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, literal, &v6) == 1 else { return nil }
        self.bytes = withUnsafeBytes(of: &v6) { Array($0) }
    }

    public var isV4: Bool { bytes.count == 4 }

    public var description: String {
        var buffer = [CChar](repeating: 0, count: 64)
        let family = isV4 ? AF_INET : AF_INET6
        let written = bytes.withUnsafeBytes { inet_ntop(family, $0.baseAddress, &buffer, socklen_t(buffer.count)) }
        return written == nil ? "?" : String(cString: buffer)
    }

    /// The IPv4 address an IPv6 address carries and is routed to: v4-mapped (`::ffff:a.b.c.d`),
    /// v4-compatible (`::a.b.c.d`), NAT64 (`64:ff9b::/96`) and 6to4 (`2002:AABB:CCDD::/48`).
    public var embeddedV4: IPAddress? {
        guard !isV4 else { return nil }
        let prefix = bytes[0..<12]
        if prefix.elementsEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]) { return IPAddress(bytes: Array(bytes[12...])) }
        if prefix.allSatisfy({ $0 == 0 }) && bytes[12...].contains(where: { $0 != 0 }) && !(bytes[12...15].elementsEqual([0, 0, 0, 1])) {
            return IPAddress(bytes: Array(bytes[12...]))
        }
        if prefix.elementsEqual([0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0]) { return IPAddress(bytes: Array(bytes[12...])) }
        if bytes[0] == 0x20 && bytes[1] == 0x02 { return IPAddress(bytes: Array(bytes[2..<6])) }
        return nil
    }

    /// Why the address is not a public one (loopback, private, link-local and cloud metadata,
    /// shared, multicast, reserved, unspecified), or nil for a public address. An IPv6 address that
    /// carries an IPv4 one is judged by that.
    public var specialRange: String? {
        if let v4 = embeddedV4 { return v4.specialRange }
        return isV4 ? v4Range : v6Range
    }

    private var v4Range: String? {
        let (a, b, c) = (bytes[0], bytes[1], bytes[2])
        switch (a, b) {
        case (0, _): return "unspecified (0.0.0.0/8)"
        case (10, _): return "private (10.0.0.0/8)"
        case (100, 64...127): return "shared (100.64.0.0/10)"
        case (127, _): return "loopback (127.0.0.0/8)"
        case (169, 254): return bytes == [169, 254, 169, 254] ? "cloud metadata (169.254.169.254)" : "link-local (169.254.0.0/16)"
        case (172, 16...31): return "private (172.16.0.0/12)"
        case (192, 168): return "private (192.168.0.0/16)"
        case (192, 0) where c == 0 || c == 2: return "reserved (192.0.0.0/24, 192.0.2.0/24)"
        case (198, 18...19): return "benchmarking (198.18.0.0/15)"
        case (198, 51) where c == 100: return "documentation (198.51.100.0/24)"
        case (203, 0) where c == 113: return "documentation (203.0.113.0/24)"
        case (224...239, _): return "multicast (224.0.0.0/4)"
        case (240...255, _): return "reserved (240.0.0.0/4)"
        default: return nil
        }
    }

    private var v6Range: String? {
        if bytes.allSatisfy({ $0 == 0 }) { return "unspecified (::)" }
        if bytes[0..<15].allSatisfy({ $0 == 0 }) && bytes[15] == 1 { return "loopback (::1)" }
        switch bytes[0] {
        case 0xfc, 0xfd: return "unique local (fc00::/7)"
        case 0xfe where bytes[1] & 0xc0 == 0x80: return "link-local (fe80::/10)"
        case 0xfe where bytes[1] & 0xc0 == 0xc0: return "site-local (fec0::/10)"
        case 0xff: return "multicast (ff00::/8)"
        default: break
        }
        if bytes[0..<4].elementsEqual([0x20, 0x01, 0x0d, 0xb8]) { return "documentation (2001:db8::/32)" }
        if bytes[0..<8].elementsEqual([0x01, 0, 0, 0, 0, 0, 0, 0]) { return "discard (100::/64)" }
        if bytes[0] == 0 { return "reserved (::/8)" }
        return nil
    }
}

/// An address range: `10.0.0.0/8`, `::1/128`, or one address.
public struct CIDR: Hashable, Sendable, CustomStringConvertible {
    public let network: IPAddress
    public let prefix: Int

    public init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1).map(String.init)
        guard let first = parts.first, let network = IPAddress(first) else { return nil }
        let bits = network.bytes.count * 8
        if parts.count == 2 {
            guard let prefix = Int(parts[1]), (0...bits).contains(prefix), parts[1].allSatisfy(\.isASCII) else { return nil }
            self.prefix = prefix
        } else {
            prefix = bits
        }
        self.network = network
    }

    public var description: String { "\(network)/\(prefix)" }

    public func contains(_ address: IPAddress) -> Bool {
        let candidate = address.bytes.count == network.bytes.count ? address : address.embeddedV4
        guard let candidate, candidate.bytes.count == network.bytes.count else { return false }
        var remaining = prefix
        for (mine, theirs) in zip(network.bytes, candidate.bytes) where remaining > 0 {
            let mask: UInt8 = remaining >= 8 ? 0xff : ~(0xff >> UInt8(remaining))
            if mine & mask != theirs & mask { return false }
            remaining -= 8
        }
        return true
    }
}
