import DroverCore
import DroverIO
import DroverSandbox
import DroverTestSupport
import Foundation
import Testing

/// Model-written code is untrusted: each of these is refused or contained.
@Suite(.serialized) struct EscapeTests {
    static let secretValue = "planted-secret-" + String(UInt64.random(in: 0...UInt64.max), radix: 16)

    func withPool(_ body: (RunningPool, PoolClient, String) async throws -> Void) async throws {
        let status = try await RunningPool.withSandbox(environment: [
            "DROVER_TEST_SECRET": Self.secretValue, "ANTHROPIC_API_KEY": Self.secretValue,
        ], body)
        #expect(status == 0)
    }

    func bash(_ client: PoolClient, _ sandbox: String, _ command: String, timeoutMs: Int? = nil) async throws -> JSONValue {
        var input: [String: JSONValue] = ["command": .string(command)]
        if let timeoutMs { input["timeout"] = .number(Double(timeoutMs)) }
        return try await client.execute(sandbox: sandbox, callID: UUID().uuidString, name: "bash", input: .object(input))
    }

    @Test func theEnvironmentHasNoneOfTheDaemons() async throws {
        try await withPool { pool, client, sandbox in
            let env = try await bash(client, sandbox, "env")
            #expect(!env.output.contains(Self.secretValue))
            #expect(!env.output.contains("DATABASE_URL"))
            #expect(!env.output.contains(pool.token))
            #expect(!env.output.contains("DROVER"))
            let names = Set(env.output.split(separator: "\n").compactMap { $0.split(separator: "=").first.map(String.init) })
            #expect(names.isSubset(of: ["PATH", "HOME", "TMPDIR", "LANG", "PWD", "SHLVL", "_"]), "\(names)")
            // Not through /proc either: the daemon's environment is out of sight.
            let proc = try await bash(client, sandbox, "cat /proc/*/environ 2>/dev/null | tr '\\0' '\\n'")
            #expect(!proc.output.contains(Self.secretValue))
        }
    }

    @Test func hostFilesTheTokenAndOtherWorkspacesAreUnreadable() async throws {
        let plantedDir = NSTemporaryDirectory() + "drover-planted-" + String(UInt64.random(in: 0...UInt64.max), radix: 16)
        try FileManager.default.createDirectory(atPath: plantedDir, withIntermediateDirectories: true)
        let planted = plantedDir + "/secret.txt"
        try Self.secretValue.write(toFile: planted, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: plantedDir) }
        try await withPool { pool, client, sandbox in
            for path in [planted, pool.tokenFile, "/etc/shadow", "/etc/passwd", "/root/.bash_history", pool.workspaceRoot] {
                let attempt = try await bash(client, sandbox, "cat '\(path)' 2>&1; ls '\(path)' 2>&1")
                #expect(!attempt.output.contains(Self.secretValue), "\(path)")
                #expect(!attempt.output.contains(pool.token), "\(path)")
            }
            // Of the host's /etc, the linker's cache, the time zone and the alternatives links only
            // (and the empty folders other calls bind more of it on).
            let etc = try await bash(client, sandbox, "ls -A /etc; ls -A /etc/apt /etc/ssl")
            #expect(Set(etc.output.split(separator: "\n")).subtracting(["ssl", "ca-certificates", "apt", "dpkg", "/etc/apt:", "/etc/ssl:", ""])
                    == ["alternatives", "ld.so.cache", "localtime"], "\(etc.output)")
            // Everything writable or host-specific the sandbox can see (not /usr, the read-only system,
            // nor /proc, where grep would find its own command line).
            let places = "/etc /tmp /workspace /dev /root /home /var /run /opt /srv /mnt"
            let search = try await bash(client, sandbox, "grep -rls -e '\(Self.secretValue)' -e '\(pool.token)' \(places); echo done")
            #expect(search.output == "done\n")

            let other = try await client.provision()
            _ = try await client.execute(sandbox: other, callID: "w", name: "write", input: ["path": "mine.txt", "content": .string(Self.secretValue)])
            let look = try await bash(client, sandbox, "find / -name mine.txt 2>/dev/null; echo end")
            #expect(look.output == "end\n")
            let hostPath = pool.workspaceRoot
            for path in [hostPath, "/workspace/../\(hostPath)", "/proc/1/root/etc/passwd"] {
                do {
                    let result = try await client.execute(sandbox: sandbox, callID: UUID().uuidString, name: "read", input: ["path": .string(path)])
                    Issue.record("read \(path) gave \(result.text)")
                } catch let failure as PoolProtocol.Failure {
                    #expect(failure.code == .pathOutsideSandbox, "\(path): \(failure)")
                }
            }
        }
    }

    @Test func noHostProcessesAndNoNetwork() async throws {
        try await withPool { pool, client, sandbox in
            let ps = try await bash(client, sandbox, "for p in /proc/[0-9]*; do cat $p/cmdline | tr '\\0' ' '; echo; done")
            #expect(!ps.output.contains("sandbox-pool"))
            #expect(!ps.output.contains("postgres"))
            #expect(ps.output.split(separator: "\n").count <= 4, "\(ps.output)")
            // The Postgres port on 127.0.0.1 (and any other) is unreachable: only an empty loopback.
            let port = URLComponents(string: ProcessInfo.processInfo.environment["DATABASE_URL"] ?? "")?.port ?? 5432
            let net = try await bash(client, sandbox, "(echo > /dev/tcp/127.0.0.1/\(port)) 2>&1 && echo CONNECTED; (echo > /dev/tcp/\(pool.address.split(separator: ":")[0])/\(pool.address.split(separator: ":")[1])) 2>&1 && echo CONNECTED; ip addr 2>/dev/null | grep -c inet; cat /proc/net/dev | wc -l")
            #expect(!net.output.contains("CONNECTED"), "\(net.output)")
        }
    }

    @Test func writesOutsideTheWorkspaceFailAndPathTricksAreRefused() async throws {
        try await withPool { pool, client, sandbox in
            let writes = try await bash(client, sandbox, "for p in /usr/x /etc/x /x /proc/x /workspace/../x; do touch $p 2>/dev/null && echo WROTE $p; done; echo checked")
            #expect(writes.output == "checked\n")
            _ = try await bash(client, sandbox, "ln -s /etc/passwd abs; ln -s ../../.. up; mkdir d; ln -s ../.. d/upup; echo inside > real.txt; ln -s real.txt rel")
            let tricks: [(String, JSONValue)] = [
                ("read", ["path": "../etc/passwd"]), ("read", ["path": "/etc/passwd"]), ("read", ["path": "abs"]),
                ("read", ["path": "up/etc/passwd"]), ("read", ["path": "d/upup/x"]), ("write", ["path": "up/evil.txt", "content": "x"]),
                ("write", ["path": "abs", "content": "x"]), ("write", ["path": "../evil.txt", "content": "x"]),
                ("edit", ["path": "abs", "old_string": "root", "new_string": "toor"]), ("edit", ["path": "/workspace/../../etc/hosts", "old_string": "a", "new_string": "b"]),
                ("write", ["path": "d/upup/evil.txt", "content": "x"]),
            ]
            for (tool, input) in tricks {
                do {
                    let result = try await client.execute(sandbox: sandbox, callID: UUID().uuidString, name: tool, input: input)
                    Issue.record("\(tool) \(input.text) gave \(result.text)")
                } catch let failure as PoolProtocol.Failure {
                    #expect(failure.code == .pathOutsideSandbox, "\(tool) \(input.text): \(failure)")
                }
            }
            // A symlink that stays inside is fine.
            #expect(try await client.execute(sandbox: sandbox, callID: "ok", name: "read", input: ["path": "rel"]).output == "     1\tinside\n")
            #expect(!FileManager.default.fileExists(atPath: (pool.workspaceRoot as NSString).deletingLastPathComponent + "/evil.txt"))
        }
    }

    @Test func noDescriptorOfTheDaemonLeaksIn() async throws {
        try await withPool { _, client, sandbox in
            // Only stdin, stdout, stderr (and the one `ls` opens to read the directory).
            let fds = try await bash(client, sandbox, "ls /proc/self/fd")
            #expect(Set(fds.output.split(separator: "\n")).isSubset(of: ["0", "1", "2", "3"]), "\(fds.output)")
            let sockets = try await bash(client, sandbox, "ls -l /proc/*/fd 2>/dev/null | grep -c socket")
            #expect(sockets.output == "0\n")
        }
    }

    @Test func aForkBombIsContainedAndThePoolKeepsServing() async throws {
        try await withPool { _, client, _ in
            let bomb = try await client.provision(resources: ["processes": 64, "timeout_s": 4])
            #expect(try await bash(client, bomb, "ulimit -u").output == "64\n")
            let result = try await bash(client, bomb, "bomb() { bomb | bomb & }; bomb; sleep 2; echo survived")
            #expect(result.isError || result.output.contains("survived") || result["timed_out"]?.boolValue == true)
            // Another sandbox still works right away, and so does the bombed one.
            let other = try await client.provision()
            #expect(try await bash(client, other, "echo fine").output == "fine\n")
            #expect(try await bash(client, bomb, "echo fine too").output == "fine too\n")
        }
    }

    @Test func runawayOutputIsCappedAndMarkedTruncated() async throws {
        try await withPool { _, client, sandbox in
            let result = try await bash(client, sandbox, "yes", timeoutMs: 20_000)
            #expect(result["truncated"]?.boolValue == true)
            #expect(result.output.utf8.count <= 100 * 1024 + 200)
            #expect(result.output.hasPrefix("y\ny\ny\n"))
            let small = try await client.provision(resources: ["output_bytes": 10])
            let capped = try await bash(client, small, "echo 0123456789abcdef")
            #expect(capped.output == "0123456789" && capped["truncated"]?.boolValue == true && capped.exitCode == 0)
        }
    }

    /// With quotas every workspace is a mount, and bubblewrap reads the whole mount table at each
    /// of its mounts: a call's launcher keeps only its own workspace of the pool's, so that a
    /// call costs the same beside 1 live sandbox or 500, and never sees another's. Read from the
    /// call's bubblewrap process (which stays in the launcher's namespace) while it runs.
    @Test func aCallsMountNamespaceHoldsNoOtherWorkspace() async throws {
        guard geteuid() == 0 else { return }
        try await withPool { pool, client, sandbox in
            let others = [try await client.provision(), try await client.provision()]
            for other in others { _ = try await bash(client, other, "echo other > mine.txt") }
            let running = Task { try await bash(client, sandbox, "sleep 1; cat /workspace/mine.txt 2>&1; echo done") }
            var launcher: String?
            let deadline = ContinuousClock.now + .seconds(10)
            while launcher == nil && ContinuousClock.now < deadline {
                launcher = Self.processes(mentioning: pool.workspacePrefix).first { $0.contains("sleep 1") }
                    .flatMap { $0.split(separator: ":").first.map(String.init) }
                    .flatMap { KernelFile.read("/proc/\($0)/mountinfo") }
                if launcher == nil { try await Task.sleep(for: .milliseconds(20)) }
            }
            let host = (KernelFile.read("/proc/self/mountinfo") ?? "").split(separator: "\n").filter { $0.contains(pool.workspaceRoot + "/") }
            #expect(host.count >= 4, "the parent and three workspaces are mounted on the host: \(host)")
            let seen = launcher?.split(separator: "\n").filter { $0.contains(pool.workspaceRoot + "/") } ?? []
            #expect(seen.count == 1, "the call's own workspace alone: \(seen)")
            #expect(seen.first.map { !$0.contains("/ws_") } == true, "at the parent's path")
            #expect(try await running.value.output.hasSuffix("No such file or directory\ndone\n"))
        }
    }

    @Test func aLongCommandIsKilledAtTheTimeoutWithAClearResult() async throws {
        try await withPool { pool, client, sandbox in
            let started = ContinuousClock.now
            let result = try await bash(client, sandbox, "sleep 1000 & sleep 1000", timeoutMs: 1000)
            #expect(ContinuousClock.now - started < .seconds(5))
            #expect(result.isError)
            #expect(result["timed_out"]?.boolValue == true)
            #expect(result.output.contains("timed out after 1 s"))
            // Nothing of it is left running.
            try await Task.sleep(for: .milliseconds(200))
            #expect(try await client.request("stats")["running_calls"]?.intValue == 0)
            #expect(Self.processes(mentioning: pool.workspacePrefix).isEmpty)
        }
    }

    /// Host processes whose command line mentions `text` (bwrap's mentions the workspace).
    static func processes(mentioning text: String) -> [String] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.filter { $0.allSatisfy(\.isNumber) }.compactMap { pid in
            guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return nil }
            let line = String(decoding: data.map { $0 == 0 ? 32 : $0 }, as: UTF8.self)
            return line.contains(text) ? "\(pid): \(line)" : nil
        }
    }
}
