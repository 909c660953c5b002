import DroverCore
import DroverIO
import DroverSandbox
import DroverTestSupport
import Foundation
import Testing

/// Repositories mounted at provision: cloned through the egress proxy's relay, so that `origin`
/// inside the sandbox is a plain-HTTP URL and the token stays with the proxy. The remote is a real
/// `git http-backend` that demands the token (Tests/git/git_http_server.py) on 127.0.0.2, which
/// the pools here open to sandboxes as an operator would (`--allow-internal 127.0.0.2`), and which
/// each environment names in its allowed_hosts.
@Suite(.serialized) struct RepositoryTests {
    static let opened = ["--allow-internal", "127.0.0.2"]

    func bash(_ client: PoolClient, _ sandbox: String, _ command: String) async throws -> JSONValue {
        try await client.execute(sandbox: sandbox, callID: UUID().uuidString, name: "bash", input: ["command": .string(command)])
    }

    @Test func cloneEditCommitAndPushWithoutTheTokenEverEnteringTheSandbox() async throws {
        guard geteuid() == 0 else { return }
        let git = try GitServer()
        defer { git.stop() }
        let pool = try await RunningPool.start(Self.opened)
        let client = try await pool.client()
        defer { client.close() }
        // The environment allows the remote only: the repository relay is the sandbox's only way out.
        let sandbox = try await client.provision(
            networking: git.networking,
            repositories: [["url": .string(git.url), "authorization_token": .string(git.token), "checkout": ["type": "branch", "name": "main"]]])

        let cloned = try await bash(client, sandbox, "cd /workspace/project && cat README.md && git remote get-url origin")
        #expect(cloned.output == "# project\nhttp://repositories.drover.internal/project\n", "\(cloned.output)")
        let pushed = try await bash(client, sandbox, """
            cd /workspace/project && echo 'made in a sandbox' > NOTES.md && git add NOTES.md \
            && git commit --quiet -m 'agent: add notes' && git push --quiet origin HEAD:main 2>&1 && echo pushed
            """)
        #expect(pushed.output.hasSuffix("pushed\n"), "\(pushed.output)")
        #expect(try git.log() == ["agent: add notes", "first"], "the push arrived")

        // fetch and pull work too: a commit made on the server side comes in.
        let seed = git.root + "/seed"
        try GitServer.git(["-C", seed, "pull", "--quiet", git.root + "/project.git", "main"])
        try "from upstream\n".write(toFile: seed + "/UPSTREAM.md", atomically: true, encoding: .utf8)
        try GitServer.git(["-C", seed, "add", "UPSTREAM.md"])
        try GitServer.git(["-C", seed, "-c", "user.name=u", "-c", "user.email=u@example.invalid", "commit", "--quiet", "-m", "upstream change"])
        try GitServer.git(["-C", seed, "push", "--quiet", git.root + "/project.git", "main"])
        let pulled = try await bash(client, sandbox, "cd /workspace/project && git pull --quiet origin main 2>&1 && cat UPSTREAM.md")
        #expect(pulled.output.hasSuffix("from upstream\n"), "\(pulled.output)")

        // The token is nowhere the sandbox can read: files, environment, process list.
        // The search itself must not carry the token on a command line: it travels reversed, and
        // grep reads it from a descriptor.
        let reversed = String(git.token.reversed())
        let searched = try await bash(client, sandbox, """
            r='\(reversed)'; t=''; for ((i=${#r}-1; i>=0; i--)); do t+=${r:i:1}; done
            grep -r -l -a -F -f /dev/fd/3 /workspace /tmp 3<<<"$t"
            env | grep -a -F -f /dev/fd/3 3<<<"$t"
            for f in /proc/[0-9]*/cmdline /proc/[0-9]*/environ; do grep -l -a -F -f /dev/fd/3 "$f" 3<<<"$t" 2>/dev/null; done
            git -C /workspace/project config --list | grep -F -f /dev/fd/3 3<<<"$t"; echo "searched ${#t}"
            """)
        #expect(searched.output == "searched \(git.token.count)\n", "found the token: \(searched.output)")
        // …nor in the proxy's replies (a request the relay answers itself).
        let reply = try await bash(client, sandbox, "curl -sS -i http://repositories.drover.internal/nope/info/refs")
        #expect(reply.output.contains("unknown_repository") && !reply.output.contains(git.token))
        #expect(!pool.daemon.log.contains(git.token), "the pool never logs the token")
        #expect(await pool.stop() == 0)
    }

    /// An HTTPS remote: the proxy speaks TLS to it (checking its certificate against the pool's
    /// trusted roots, here the test's own CA) and adds the credential inside the encrypted stream.
    @Test func anHTTPSRemoteIsRelayedOverTLS() async throws {
        guard geteuid() == 0 else { return }
        let git = try GitServer(https: true)
        defer { git.stop() }
        let pool = try await RunningPool.start(Self.opened, environment: ["DROVER_EGRESS_CA_FILE": try #require(git.certificate)])
        let client = try await pool.client()
        defer { client.close() }
        let sandbox = try await client.provision(
            networking: git.networking, repositories: [["url": .string(git.url), "authorization_token": .string(git.token)]])
        let pushed = try await bash(client, sandbox, """
            cd /workspace/project && echo tls >> README.md && git commit --quiet -am 'over tls' && git push --quiet origin HEAD:main 2>&1 && echo pushed
            """)
        #expect(pushed.output.hasSuffix("pushed\n"), "\(pushed.output)")
        #expect(try git.log().first == "over tls")
        #expect(await pool.stop() == 0)
        // Without the CA the certificate is refused, so the clone fails: TLS is checked, not just spoken.
        let strict = try await RunningPool.start(Self.opened)
        let strictClient = try await strict.client()
        defer { strictClient.close() }
        await #expect(throws: PoolProtocol.Failure.self) {
            _ = try await strictClient.provision(
                networking: git.networking, repositories: [["url": .string(git.url), "authorization_token": .string(git.token)]])
        }
        let refused = try await strict.daemon.waitForLog("egress") { $0["decision"]?.stringValue == "refused" }
        #expect(refused["code"]?.stringValue == "upstream_unreachable", "\(refused.text)")
        #expect(await strict.stop() == 0)
    }

    @Test func aWrongTokenFailsTheProvisionWithACode() async throws {
        guard geteuid() == 0 else { return }
        let git = try GitServer()
        defer { git.stop() }
        try await RunningPool.withSandbox(Self.opened) { _, client, _ in
            do {
                _ = try await client.provision(networking: git.networking, repositories: [["url": .string(git.url), "authorization_token": "wrong"]])
                Issue.record("cloned with a wrong token")
            } catch let failure as PoolProtocol.Failure {
                #expect(failure.code == .repositoryFailed, "\(failure)")
                // The remote answered 401 and git, with no terminal, could not ask for credentials.
                #expect(failure.message.contains("terminal prompts disabled") || failure.message.contains("401"), "\(failure)")
                #expect(!failure.message.contains("wrong"), "the message does not echo the token: \(failure.message)")
            }
            do {
                _ = try await client.provision(repositories: [["url": .string(git.url), "mount_path": "/etc/project"]])
                Issue.record("mounted outside /workspace")
            } catch let failure as PoolProtocol.Failure {
                #expect(failure.code == .badRequest, "\(failure)")
            }
        }
    }

    /// Issue #20: a remote is reached only where the environment's networking names it and the
    /// operator opened its address; the relay keeps requests inside the repository.
    @Test func aRemoteFollowsTheEnvironmentsPolicyAndTheOperatorsRule() async throws {
        guard geteuid() == 0 else { return }
        let git = try GitServer()
        defer { git.stop() }
        let repositories: [JSONValue] = [["url": .string(git.url), "authorization_token": .string(git.token)]]
        // networking none (it used to reach the remote all the same).
        try await RunningPool.withSandbox(Self.opened) { _, client, _ in
            do {
                _ = try await client.provision(networking: ["type": "none"], repositories: repositories)
                Issue.record("cloned under networking none")
            } catch let failure as PoolProtocol.Failure {
                #expect(failure.code == .repositoryFailed && failure.message.contains("not allowed by the environment's networking"), "\(failure)")
            }
        }
        // Named by the environment, but on an address the operator did not open.
        try await RunningPool.withSandbox { _, client, _ in
            do {
                _ = try await client.provision(networking: git.networking, repositories: repositories)
                Issue.record("a tenant's allowed_hosts opened the pool host's loopback")
            } catch let failure as PoolProtocol.Failure {
                #expect(failure.code == .repositoryFailed && failure.message.contains("operator has not opened"), "\(failure)")
            }
        }
        // Allowed: paths that would leave the repository are refused, not forwarded with the token.
        try await RunningPool.withSandbox(Self.opened) { _, client, _ in
            let sandbox = try await client.provision(networking: git.networking, repositories: repositories)
            for escape in ["/project/../other.git/info/refs", "/project/%2e%2e/x", "/project/a%2fb"] {
                let reply = try await bash(client, sandbox, "curl -sS -i --path-as-is 'http://repositories.drover.internal\(escape)'")
                #expect(reply.output.contains("bad_proxy_request") && !reply.output.contains(git.token), "\(escape): \(reply.output)")
            }
        }
    }
}
