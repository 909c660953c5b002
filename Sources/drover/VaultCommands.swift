import DroverCLI
import DroverCore
import DroverStore
import Foundation

struct VaultNewKeyCommand: Command {
    static let name = "vault new-key"
    static let summary = "print a fresh vault key (for DROVER_VAULT_KEY or a key file)"
    static let help = """
        usage: drover vault new-key

        Prints 64 random hex characters. Give the same key to `drover api` and every harness,
        as DROVER_VAULT_KEY or in the file DROVER_VAULT_KEY_FILE names; the database never holds
        it. Losing it loses every secret sealed with it.
        """

    static func run(_ arguments: Arguments) async throws {
        Output.line(VaultKey.generate())
    }
}

struct VaultCreateCommand: Command {
    static let name = "vault create"
    static let summary = "create a vault for an organisation"
    static let help = """
        usage: drover vault create --org NAME --name DISPLAY_NAME

        Prints the vault as JSON (its id is vlt_…), as POST /v1/vaults would.
        """
    static let options: Set<String> = ["org", "name"]

    static func run(_ arguments: Arguments) async throws {
        guard let org = arguments.value("org"), let name = arguments.value("name") else { throw UsageError("--org NAME and --name DISPLAY_NAME are required") }
        let pool = try Environment.pool(maxConnections: 1)
        defer { pool.close() }
        let store = TenantStore(pool: pool)
        Output.line(try await store.createVault(org: try await store.organization(named: org), ["display_name": .string(name)]).json.text)
    }
}

struct VaultAddCredentialCommand: Command {
    static let name = "vault add-credential"
    static let summary = "add a static bearer credential for an MCP server (token from a file or stdin)"
    static let help = """
        usage: drover vault add-credential --org NAME --vault VAULT_ID --mcp-server-url URL
                                           [--token-file FILE] [--name DISPLAY_NAME]

        Seals the token with DROVER_VAULT_KEY (or DROVER_VAULT_KEY_FILE) and stores it; prints
        the credential without it. The token is read from --token-file or standard input, never
        from the command line (which other users of the host can read).
        """
    static let options: Set<String> = ["org", "vault", "mcp-server-url", "token-file", "name"]

    static func run(_ arguments: Arguments) async throws {
        guard let org = arguments.value("org"), let vault = arguments.value("vault"), let url = arguments.value("mcp-server-url") else {
            throw UsageError("--org, --vault and --mcp-server-url are required")
        }
        let raw: String
        if let file = arguments.value("token-file") {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { throw UsageError("cannot read --token-file \(file)") }
            raw = text
        } else {
            raw = String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
        }
        let token = raw.trimmingCharacters(in: .whitespacesAndNewlines)
        let pool = try Environment.pool(maxConnections: 1)
        defer { pool.close() }
        let store = TenantStore(pool: pool)
        var body: [String: JSONValue] = ["auth": ["type": "static_bearer", "token": .string(token), "mcp_server_url": .string(url)]]
        if let name = arguments.value("name") { body["display_name"] = .string(name) }
        Output.line(try await store.createCredential(
            org: try await store.organization(named: org), vault: vault, .object(body), key: try VaultKey.fromEnvironment()).json.text)
    }
}

struct VaultRotateKeyCommand: Command {
    static let name = "vault rotate-key"
    static let summary = "re-seal every vault secret under a new key, in one transaction"
    static let help = """
        usage: drover vault rotate-key --new-key-file FILE

        Opens every secret sealed with the current key (DROVER_VAULT_KEY or DROVER_VAULT_KEY_FILE)
        and seals it with the key in FILE, in one transaction: either all move or none. Secrets
        sealed with another key are left as they are. Then restart `drover api` and the harnesses
        with the new key (a harness with the old key refuses secrets with vault_key_mismatch until
        then). Prints how many secrets moved.
        """
    static let options: Set<String> = ["new-key-file"]

    static func run(_ arguments: Arguments) async throws {
        guard let file = arguments.value("new-key-file") else { throw UsageError("--new-key-file FILE is required") }
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { throw UsageError("cannot read --new-key-file \(file)") }
        guard let old = try VaultKey.fromEnvironment() else { throw UsageError("the current key is needed: DROVER_VAULT_KEY or DROVER_VAULT_KEY_FILE") }
        let pool = try Environment.pool(maxConnections: 1)
        defer { pool.close() }
        let moved = try await TenantStore(pool: pool).rotateVaultKey(old: old, new: text.trimmingCharacters(in: .whitespacesAndNewlines))
        Output.line("re-sealed \(moved) secret(s)")
    }
}
