import DroverCore
import DroverIO
import DroverPostgres
import DroverStore
import DroverTestSupport
import Foundation
import Synchronization
import Testing

/// What reaches beyond the sandbox, through the official SDK against real processes: vaults, an
/// MCP server from the `mcp` package (bearer-checked) called with the vault's credential (and
/// probed by `mcp_oauth_validate`), and a
/// repository pushed to from bash (Tests/sdk/reach_sdk.py). Then what must not leak: the raw
/// tables hold sealed bytes, and no token is in any event, log line or /metrics.
@Suite(.serialized) struct ReachTests {
    /// The model's turns; the repository turn also searches the sandbox for the token (which
    /// travels reversed, so that the command itself, logged as an event, does not carry it).
    static func script(searchingFor token: String) -> JSONValue { [
        "turns": [["content": [["type": "text", "text": "Nothing to do."]]]],
        "variants": [
            [
                "match": "use the mcp tool",
                "turns": [
                    ["content": [["type": "tool_use", "name": "add", "input": ["a": 2, "b": 3]]]],
                    ["content": [["type": "text", "text": "The sum is 5."]]],
                ],
            ],
            ["match": "stale credential", "turns": [["content": [["type": "text", "text": "No tools today."]]]]],
            [
                "match": "change the repository",
                "turns": [
                    ["content": [["type": "tool_use", "name": "bash", "input": [
                        "command": "cd /workspace/project && echo agent >> README.md && git commit -qam 'agent change' && git push -q origin HEAD:main && echo pushed",
                    ]]]],
                    ["content": [["type": "tool_use", "name": "bash", "input": [
                        "command": .string("""
                            r='\(String(token.reversed()))'; t=''; for ((i=${#r}-1; i>=0; i--)); do t+=${r:i:1}; done
                            { grep -r -l -a -F -f /dev/fd/3 /workspace /tmp 3<<<"$t"; env | grep -a -F -f /dev/fd/3 3<<<"$t"
                              for f in /proc/[0-9]*/cmdline /proc/[0-9]*/environ; do grep -l -a -F -f /dev/fd/3 "$f" 3<<<"$t" 2>/dev/null; done; } | wc -l
                            """),
                    ]]]],
                    ["content": [["type": "text", "text": "Pushed."]]],
                ],
            ],
        ],
    ] }

    @Test func vaultsMCPAndRepositoriesThroughTheOfficialSDK() async throws {
        guard geteuid() == 0 else { return }
        let mcp = try MCPTestServer()
        let git = try GitServer()
        // An OAuth token endpoint (RFC 6749, 6): it hands out the MCP server's token for a refresh.
        let refreshes = Mutex<[HTTPServerRequest]>([])
        let tokens = try SocketHTTPServer(host: "127.0.0.2", port: 0)
        tokens.start { request, socket in
            refreshes.withLock { $0.append(request) }
            let answer: JSONValue = ["access_token": .string(mcp.token), "token_type": "Bearer", "expires_in": 3600, "refresh_token": "refresh-2"]
            SocketHTTPServer.respond(socket, status: 200, contentType: "application/json", body: Array(answer.text.utf8))
        }
        defer {
            mcp.stop()
            git.stop()
            tokens.stop()
        }
        // The MCP and git servers listen on 127.0.0.2, which the harness and the pool open as an
        // operator would; the environment names them in its allowed_hosts.
        let opened = ["--allow-internal", "127.0.0.2"]
        try await APIRig.withClusterAndAPI(
            script: Self.script(searchingFor: git.token), apiArgs: ["--metrics-listen", "127.0.0.1:0"] + opened, harnessArgs: opened, poolArgs: opened
        ) { cluster, api in
            let key = try await api.key(org: "team-reach")
            try await APIRig.python("Tests/sdk/reach_sdk.py", environment: [
                "DROVER_API_URL": "http://\(api.address)", "DROVER_KEY": key, "MCP_URL": mcp.url, "MCP_TOKEN": mcp.token,
                "GIT_URL": git.url, "GIT_TOKEN": git.token, "TOKEN_URL": "http://\(tokens.address)/oauth/token",
            ])
            // The harness refreshed the expiring mcp_oauth token once, as the credential says; then
            // mcp_oauth_validate refreshed the stale one once (and the stored result the second time).
            let asked = refreshes.withLock { $0 }
            #expect(asked.count == 2 && asked.first?.method == "POST" && asked.first?.path == "/oauth/token")
            #expect(asked.last.map { String(decoding: $0.body, as: UTF8.self) } == "grant_type=refresh_token&refresh_token=refresh-9")
            #expect(asked.first?.headers["authorization"] == "Basic " + Data("drover+test:s3cret".utf8).base64EncodedString())
            #expect(asked.first.map { String(decoding: $0.body, as: UTF8.self) } == "grant_type=refresh_token&refresh_token=refresh-1&scope=tools")
            #expect(cluster.model.refusals.isEmpty, "the model server refused: \(cluster.model.refusals.map(\.message))")
            #expect(try git.log().first == "agent change", "the push arrived")
            // The session's own search of its sandbox found the token nowhere (files, env, /proc).
            let results = try await cluster.sql.query(
                """
                SELECT payload->>'content' FROM drover.events
                 WHERE type = 'agent.tool_result' AND session_id = (SELECT session_id FROM drover.session_resources) ORDER BY seq
                """).map { try $0.decode(0) as String }
            #expect(results.count == 2 && results.last == "0\n", "the sandbox search found the token: \(results)")

            // Sealed at rest: the raw columns are pgp messages, not the tokens.
            let sql = cluster.sql
            let credentials = try await sql.query(
                "SELECT position(convert_to($1, 'UTF8') IN secret), length(secret) FROM drover.vault_credentials", [mcp.token])
            #expect(credentials.count == 7)  // three of the sessions', four of mcp_oauth_validate's probes
            for row in credentials {
                let (found, length) = (try row.decode(0) as Int32, try row.decode(1) as Int32)
                #expect(found == 0 && length > Int32(mcp.token.utf8.count))
            }
            let resources = try await sql.query("SELECT position(convert_to($1, 'UTF8') IN secret) FROM drover.session_resources", [git.token])
            let tokenFound = try resources[0].decode(0) as Int32
            #expect(resources.count == 1 && tokenFound == 0)
            // Opened only with the key; another key is refused with a code.
            let opened = try await sql.query("SELECT drover.vault_open(secret, key_id, $1) FROM drover.session_resources", [TestDatabase.vaultKey])
            #expect(try opened[0].decode(0) as String == git.token)
            await #expect(throws: PostgresError.self) {
                _ = try await sql.query("SELECT drover.vault_open(secret, key_id, $1) FROM drover.session_resources", ["another-key-of-enough-length-0000"])
            }

            // Never in an event, a log line or /metrics.
            let events = try await sql.query("SELECT payload::text FROM drover.events")
            for row in events {
                let payload: String = try row.decode(0)
                #expect(!payload.contains(mcp.token) && !payload.contains(git.token), "a token in an event: \(payload)")
            }
            let logs = [api.daemon.log, cluster.pool.daemon.log] + cluster.harnessProcesses.map(\.log)
            for log in logs { #expect(!log.contains(mcp.token) && !log.contains(git.token), "a token in a log") }
            let metricsAddress = try #require(try await api.daemon.waitForLog("listening")["metrics"]?.stringValue)
            let metrics = try await PrometheusText.get(metricsAddress, "/metrics").1
            #expect(!metrics.contains(mcp.token) && metrics.contains("/v1/vaults/{id}/credentials"))
        }
    }

    /// `drover vault rotate-key` re-seals every secret in one transaction; the old key then opens nothing.
    @Test func rotatingTheVaultKeyResealsEverySecret() async throws {
        try await TestDatabase.with { database in
            let pool = database.pool()
            defer { pool.close() }
            let store = TenantStore(pool: pool)
            let org = try await store.organization(named: "rotation")
            let vault = try await store.createVault(org: org, ["display_name": "v"])
            let vaultID = vault.id
            _ = try await store.createCredential(
                org: org, vault: vaultID, ["auth": ["type": "static_bearer", "token": "secret-one", "mcp_server_url": "http://127.0.0.2:1/mcp"]],
                key: TestDatabase.vaultKey)
            await #expect(throws: DroverError.self) {
                _ = try await store.createCredential(
                    org: org, vault: vaultID, ["auth": ["type": "static_bearer", "token": "x", "mcp_server_url": "http://h/mcp"]], key: nil)
            }
            let newKey = VaultKey.generate()
            let tokenFile = NSTemporaryDirectory() + "drover-new-key-" + String(UInt64.random(in: 0...UInt64.max), radix: 16)
            try newKey.write(toFile: tokenFile, atomically: true, encoding: .utf8)
            defer { try? FileManager.default.removeItem(atPath: tokenFile) }
            let result = try await DroverProcess.run(
                program: TestDatabase.droverBinary.path, ["vault", "rotate-key", "--new-key-file", tokenFile],
                environment: ["DATABASE_URL": database.conninfo, "DROVER_VAULT_KEY": TestDatabase.vaultKey])
            #expect(result.status == 0 && result.stdout.contains("re-sealed 1 secret"), "\(result.stdout) \(result.stderr)")
            let rows = try await pool.query("SELECT drover.vault_open(secret, key_id, $1) FROM drover.vault_credentials", [newKey])
            #expect(try rows[0].decode(0) as String == "secret-one")
            do {
                _ = try await pool.query("SELECT drover.vault_open(secret, key_id, $1) FROM drover.vault_credentials", [TestDatabase.vaultKey])
                Issue.record("the old key still opens the secret")
            } catch {
                #expect("\(error)".contains("DR020") || "\(error)".contains("another vault key"), "\(error)")
            }
        }
    }
}
