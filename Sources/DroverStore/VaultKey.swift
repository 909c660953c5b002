import DroverCore
import Foundation

/// The key that seals vault secrets (migration 0013), which the database never stores: read by
/// `drover api` (to seal) and harnesses (to open) from `DROVER_VAULT_KEY`, or from the file named
/// by `DROVER_VAULT_KEY_FILE` (a Kubernetes or systemd secret). At least 32 characters; `drover
/// vault new-key` prints a fresh one.
public enum VaultKey {
    public static let minimumLength = 32

    /// The configured key, nil when neither variable is set.
    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws -> String? {
        var key = environment["DROVER_VAULT_KEY"].flatMap { $0.isEmpty ? nil : $0 }
        if key == nil, let file = environment["DROVER_VAULT_KEY_FILE"], !file.isEmpty {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
                throw DroverError(.invalidArgument, "cannot read DROVER_VAULT_KEY_FILE \(file)")
            }
            key = text.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        guard let key else { return nil }
        try check(key)
        return key
    }

    public static func check(_ key: String) throws {
        guard key.count >= minimumLength else {
            throw DroverError(.invalidArgument, "a vault key needs at least \(minimumLength) characters (drover vault new-key prints one)")
        }
    }

    /// 32 random bytes, hex.
    public static func generate() -> String {
        (0..<4).map { _ in String(format: "%016llx", UInt64.random(in: 0...UInt64.max)) }.joined()
    }

    static func required(_ key: String?) throws -> String {
        guard let key else {
            throw DroverError(.vaultKeyMissing, "this server has no vault key (DROVER_VAULT_KEY or DROVER_VAULT_KEY_FILE), so it cannot store secrets")
        }
        return key
    }
}
