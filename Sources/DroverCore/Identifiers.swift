import Foundation

/// Identifies a session: `sesn_` followed by 32 hex digits, made by the database.
public struct SessionID: RawRepresentable, Hashable, Sendable, Codable, CustomStringConvertible {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public init(_ rawValue: String) { self.rawValue = rawValue }
    public var description: String { rawValue }
}

/// Identifies one harness process. It is new at every process start, so a restarted harness can
/// never be mistaken for the one whose leases it might find in the table.
public struct HarnessID: RawRepresentable, Hashable, Sendable, Codable, CustomStringConvertible {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public var description: String { rawValue }

    /// A fresh identity: host, pid and 64 random bits.
    public static func fresh(prefix: String = "hrn") -> HarnessID {
        let host = ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? "host"
        let pid = ProcessInfo.processInfo.processIdentifier
        let random = String(UInt64.random(in: 0...UInt64.max), radix: 16)
        return HarnessID(rawValue: "\(prefix)_\(host)_\(pid)_\(random)")
    }
}
