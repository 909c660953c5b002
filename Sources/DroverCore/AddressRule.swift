/// The one rule for every outbound connection a tenant can cause (the egress proxy, `web_fetch`,
/// MCP servers, repository remotes): the name is resolved once, each resolved *address* is checked
/// here, and the connection goes to exactly a checked address. Public addresses pass; loopback,
/// private, link-local (cloud metadata among them), shared, multicast, reserved and unspecified
/// addresses, and the host's own addresses, pass only where the **operator** allows a range
/// (`--allow-internal` / `DROVER_ALLOW_INTERNAL`), never because a tenant's environment names
/// them. Pure; `OutboundResolver` (DroverIO) performs the resolving.
public struct AddressRule: Sendable, Equatable {
    /// Ranges the operator opened: internal addresses in them may be reached.
    public var allowedInternal: [CIDR]
    /// The addresses of the machine itself (its interfaces): internal whatever their range.
    public var ownAddresses: Set<IPAddress>

    public init(allowedInternal: [CIDR] = [], ownAddresses: Set<IPAddress> = []) {
        self.allowedInternal = allowedInternal
        self.ownAddresses = ownAddresses
    }

    /// The operator's setting: ranges separated by commas or spaces (`127.0.0.0/8,10.1.2.3`).
    public static func parseAllowed(_ text: String) throws(DroverError) -> [CIDR] {
        try text.split(whereSeparator: { $0 == "," || $0 == " " }).map { item throws(DroverError) -> CIDR in
            guard let range = CIDR(String(item)) else {
                throw DroverError(.invalidArgument, "\(item) is not an address range (10.0.0.0/8, ::1/128 or an address)")
            }
            return range
        }
    }

    /// Nil when `address` may be connected; otherwise why not, in words an agent can read.
    public func refusal(for address: IPAddress) -> String? {
        let why: String
        if let range = address.specialRange {
            why = range
        } else if ownAddresses.contains(address) || address.embeddedV4.map(ownAddresses.contains) == true {
            why = "an address of this host"
        } else {
            return nil
        }
        if allowedInternal.contains(where: { $0.contains(address) }) { return nil }
        return "\(address) is \(why), which the operator has not opened"
    }
}
