import DroverCore
import DroverIO
import DroverSandbox
import DroverTestSupport
import Foundation
import Testing

/// The egress proxy end to end: a real pool (root, bubblewrap), sandboxes whose only way out is
/// the proxy, and HTTP servers on other loopback addresses of this host (127.0.0.2, .3), which
/// is all the traffic these tests make. The pools open 127.0.0.2 as an operator would
/// (`--allow-internal`); 127.0.0.3 stays closed whatever an environment names.
@Suite(.serialized) struct EgressTests {
    static let opened = ["--allow-internal", "127.0.0.2"]

    /// Serves `files` (path → bytes) on `host`, port chosen by the kernel.
    static func serve(_ host: String, _ files: [String: [UInt8]]) throws -> HTTPServer {
        let server = try HTTPServer(host: host, port: 0, name: "test.files", log: Log(component: "test", minimum: .error), quickHandler: { request, _ in
            if request.path == "/host" {
                return .text(200, request.headers["host"] ?? "none", contentType: "text/plain")
            } else if let body = files[request.path] {
                return .whole(status: 200, contentType: request.path.hasSuffix(".whl") ? "application/octet-stream" : "text/html", body: body, headers: [])
            }
            return .text(404, "no \(request.path)\n", contentType: "text/plain")
        })
        server.start()
        return server
    }

    static func limited(_ hosts: [String]) -> JSONValue {
        ["type": "limited", "allowed_hosts": .array(hosts.map(JSONValue.string))]
    }

    func bash(_ client: PoolClient, _ sandbox: String, _ command: String) async throws -> JSONValue {
        try await client.execute(sandbox: sandbox, callID: UUID().uuidString, name: "bash", input: ["command": .string(command)])
    }

    @Test func aLimitedEnvironmentReachesAllowedHostsOnly() async throws {
        guard geteuid() == 0 else { return }
        let allowed = try Self.serve("127.0.0.2", ["/hello": Array("hello from the allowed host\n".utf8)])
        let other = try Self.serve("127.0.0.3", ["/hello": Array("you should not read this\n".utf8)])
        defer { allowed.stop(); other.stop() }
        let pool = try await RunningPool.start(["--metrics-listen", "127.0.0.1:0"] + Self.opened)
        let client = try await pool.client()
        defer { client.close() }
        let sandbox = try await client.provision(networking: Self.limited([allowed.address]))

        // Plain HTTP through the proxy variables, as any client sends it.
        let fetched = try await bash(client, sandbox, "curl -sS http://\(allowed.address)/hello")
        #expect(fetched.output == "hello from the allowed host\n", "\(fetched.output)")
        // CONNECT (what https and any other TCP use) to the same host.
        let tunnelled = try await bash(client, sandbox, "curl -sS --proxytunnel http://\(allowed.address)/hello")
        #expect(tunnelled.output == "hello from the allowed host\n", "\(tunnelled.output)")
        // Another host: a 403 the agent can read, with a stable code.
        let refused = try await bash(client, sandbox, "curl -sS -i http://\(other.address)/hello")
        #expect(refused.output.contains("403 Forbidden") && refused.output.contains("X-Drover-Error: egress_denied"), "\(refused.output)")
        #expect(refused.output.contains("not in the environment's allowed_hosts") && !refused.output.contains("should not read"))
        let refusedTunnel = try await bash(client, sandbox, "curl -sS --proxytunnel http://\(other.address)/hello; echo \" exit=$?\"")
        #expect(refusedTunnel.output.contains("403") && !refusedTunnel.output.contains("should not read"), "\(refusedTunnel.output)")
        // The allowed port only, and a name that resolves to a loopback address is not the literal allowed.
        let port = allowed.address.split(separator: ":").last!
        let byName = try await bash(client, sandbox, "curl -sS -i http://localhost:\(port)/hello")
        #expect(byName.output.contains("egress_denied"), "\(byName.output)")
        // Without the proxy variables there is no route anywhere: the namespace is empty.
        let direct = try await bash(client, sandbox, "curl -sS --noproxy '*' --max-time 5 http://\(allowed.address)/hello; echo \" exit=$?\"")
        #expect(direct.output.contains("exit=7"), "connection refused inside the sandbox's own namespace: \(direct.output)")

        // Counted in /metrics and logged with the sandbox and host.
        let address = try #require(try await pool.daemon.waitForLog("metrics listening")["address"]?.stringValue)
        let metrics = try PrometheusText(try await PrometheusText.get(address, "/metrics").1)
        #expect((metrics.value("drover_egress_connections_total", ["decision": "allowed", "kind": "http"]) ?? 0) >= 1)
        #expect((metrics.value("drover_egress_connections_total", ["decision": "refused", "kind": "egress_denied"]) ?? 0) >= 3)
        #expect((metrics.value("drover_egress_bytes_total", ["direction": "in"]) ?? 0) > 0)
        let logged = try await pool.daemon.waitForLog("egress") { $0["decision"]?.stringValue == "refused" && $0["target"]?.stringValue?.contains("127.0.0.3") == true }
        #expect(logged["sandbox"]?.stringValue == sandbox)
        #expect(await pool.stop() == 0)
    }

    /// Issue #27, defect 1: a call's listener was accepted on by a thread that could outlive it,
    /// so a later call's listener, given the same descriptor number, was served under the earlier
    /// sandbox's policy. Now every listener and connection belongs to the proxy's loop, which
    /// stops watching a call's listener before closing it. Two sandboxes with opposite policies,
    /// calls back to back and side by side: each call only ever gets its own sandbox's policy.
    @Test func eachCallIsServedUnderItsOwnSandboxsPolicyOnly() async throws {
        guard geteuid() == 0 else { return }
        let first = try Self.serve("127.0.0.2", ["/hello": Array("first\n".utf8)])
        let second = try Self.serve("127.0.0.2", ["/hello": Array("second\n".utf8)])
        defer { first.stop(); second.stop() }
        let pool = try await RunningPool.start(Self.opened)
        let client = try await pool.client()
        defer { client.close() }
        let a = try await client.provision(networking: Self.limited([first.address]))
        let b = try await client.provision(networking: Self.limited([second.address]))
        let probe = "curl -s -o /dev/null -w '%{http_code} ' http://\(first.address)/hello; curl -s -o /dev/null -w '%{http_code}' http://\(second.address)/hello"
        for _ in 0..<12 {
            async let fromA = bash(client, a, probe)
            async let fromB = bash(client, b, probe)
            let (seenA, seenB) = try await (fromA, fromB)
            #expect(seenA.output == "200 403", "sandbox A: \(seenA.output)")
            #expect(seenB.output == "403 200", "sandbox B: \(seenB.output)")
        }
        #expect(await pool.stop() == 0)
    }

    @Test func aNoneEnvironmentHasNoProxyAtAll() async throws {
        guard geteuid() == 0 else { return }
        let server = try Self.serve("127.0.0.2", ["/hello": Array("unreachable\n".utf8)])
        defer { server.stop() }
        try await RunningPool.withSandbox { _, client, _ in
            let sandbox = try await client.provision(networking: ["type": "none"])
            let shown = try await bash(client, sandbox, "env | grep -i proxy; curl -sS --max-time 5 http://127.0.0.1:3128/ ; echo \" exit=$?\"; curl -sS --max-time 5 http://\(server.address)/hello; echo \" exit=$?\"")
            #expect(!shown.output.lowercased().contains("http_proxy"), "\(shown.output)")
            #expect(shown.output.components(separatedBy: "exit=7").count == 3, "nothing listens, nothing routes: \(shown.output)")
        }
    }

    @Test func noRawOrUnixSocketBypassesTheProxy() async throws {
        guard geteuid() == 0 else { return }
        // An abstract Unix socket on the host: abstract names belong to a network namespace.
        let abstract = "drover-egress-test-" + String(UInt64.random(in: 0...UInt64.max), radix: 16)
        // …and one in the host's filesystem, which no sandbox sees.
        let hostSocket = NSTemporaryDirectory() + abstract + ".sock"
        let holder = try AnnouncingProcess("/usr/bin/python3", [
            "-c",
            "import socket,time; s=socket.socket(socket.AF_UNIX); s.bind('\\0\(abstract)'); s.listen(); f=socket.socket(socket.AF_UNIX); f.bind('\(hostSocket)'); f.listen(); print('ready', flush=True); time.sleep(60)",
        ])
        defer {
            holder.stop()
            unlink(hostSocket)
        }
        let pool = try await RunningPool.start()
        let client = try await pool.client()
        defer { client.close() }
        let sandbox = try await client.provision(networking: ["type": "unrestricted"])
        let script = """
            import socket, errno
            def attempt(name, make, target=None):
                try:
                    s = make()
                    if target is not None: s.connect(target)
                    print(name, "open")
                except OSError as e:
                    print(name, errno.errorcode.get(e.errno, e.errno))
            attempt("raw", lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP))
            attempt("raw6", lambda: socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6))
            attempt("packet", lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW))
            attempt("vsock", lambda: socket.socket(40, socket.SOCK_STREAM))
            attempt("alg", lambda: socket.socket(38, socket.SOCK_SEQPACKET))
            attempt("bluetooth", lambda: socket.socket(31, socket.SOCK_STREAM))
            attempt("unix_ok", lambda: socket.socket(socket.AF_UNIX))
            attempt("netlink_ok", lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0))
            attempt("host_socket", lambda: socket.socket(socket.AF_UNIX), "\(hostSocket)")
            attempt("abstract", lambda: socket.socket(socket.AF_UNIX), "\\0\(abstract)")
            attempt("tcp_direct", lambda: socket.create_connection(("127.0.0.1", 5432), 3))
            """
        _ = try await client.execute(sandbox: sandbox, callID: "w", name: "write", input: ["file_path": "/workspace/probe.py", "content": .string(script)])
        let probed = try await bash(client, sandbox, "python3 probe.py")
        let lines = Set(probed.output.split(separator: "\n").map(String.init))
        #expect(lines.contains("raw EPERM") && lines.contains("raw6 EPERM") && lines.contains("packet EPERM"), "\(probed.output)")
        // Issue #20: every family but unix, inet, inet6 and netlink is refused (vsock and alg were open).
        #expect(lines.contains("vsock EPERM") && lines.contains("alg EPERM") && lines.contains("bluetooth EPERM"), "\(probed.output)")
        #expect(lines.contains("unix_ok open") && lines.contains("netlink_ok open"), "\(probed.output)")
        #expect(lines.contains("host_socket ENOENT"), "the host's sockets are not in the sandbox: \(probed.output)")
        #expect(lines.contains("abstract ECONNREFUSED"), "the host's abstract sockets are another namespace's: \(probed.output)")
        #expect(lines.contains("tcp_direct ECONNREFUSED"), "\(probed.output)")
        // Even unrestricted, the host's own loopback and private addresses are refused.
        let inward = try await bash(client, sandbox, "curl -sS -i http://127.0.0.1:5432/")
        #expect(inward.output.contains("egress_denied"), "\(inward.output)")
        #expect(await pool.stop() == 0)
    }

    /// pip installs from a local package index only when the index's host is allowed.
    @Test func pipInstallsFromAnAllowedIndexOnly() async throws {
        guard geteuid() == 0 else { return }
        let wheel = try await Self.buildWheel()
        let index = "<html><body><a href=\"/files/drover_probe-1.0-py3-none-any.whl\">drover_probe-1.0-py3-none-any.whl</a></body></html>"
        let server = try Self.serve("127.0.0.2", [
            "/simple/drover-probe/": Array(index.utf8), "/files/drover_probe-1.0-py3-none-any.whl": wheel,
        ])
        defer { server.stop() }
        let pool = try await RunningPool.start(Self.opened)
        let client = try await pool.client()
        defer { client.close() }
        let install = "python3 -m pip install -v --no-cache-dir --disable-pip-version-check --target /workspace/lib --index-url http://\(server.address)/simple/ drover-probe 2>&1; echo \"exit=$?\""
        let allowedBox = try await client.provision(networking: Self.limited([server.address]))
        let installed = try await bash(client, allowedBox, install + "; PYTHONPATH=/workspace/lib python3 -c 'import drover_probe; print(drover_probe.VALUE)'")
        #expect(installed.output.contains("exit=0") && installed.output.hasSuffix("installed through the proxy\n"), "\(installed.output)")
        let otherBox = try await client.provision(networking: Self.limited(["pypi.org"]))
        let refused = try await bash(client, otherBox, install)
        #expect(!refused.output.contains("exit=0") && refused.output.contains("No matching distribution"), "\(refused.output)")
        // pip reads the 403 as "no such package"; the proxy's log says why.
        let logged = try await pool.daemon.waitForLog("egress") { $0["sandbox"]?.stringValue == otherBox }
        #expect(logged["decision"]?.stringValue == "refused" && logged["code"]?.stringValue == "egress_denied", "\(logged.text)")
        #expect(await pool.stop() == 0)
    }

    @Test func aPoolWithoutNetworkRefusesNetworkedProvisions() async throws {
        try await RunningPool.withSandbox(["--no-network"]) { _, client, _ in
            do {
                _ = try await client.provision(networking: ["type": "unrestricted"])
                Issue.record("provisioned a networked sandbox on a pool started with --no-network")
            } catch let failure as PoolProtocol.Failure {
                #expect(failure.code == .networkUnavailable, "\(failure)")
            }
            do {
                _ = try await client.provision(networking: ["type": "everything"])
                Issue.record("accepted an unknown networking type")
            } catch let failure as PoolProtocol.Failure {
                #expect(failure.code == .badRequest, "\(failure)")
            }
            // none stays provisionable.
            _ = try await client.provision(networking: ["type": "none"])
        }
    }

    /// A minimal wheel (a module and its metadata), built with Python's zipfile.
    static func buildWheel() async throws -> [UInt8] {
        let path = NSTemporaryDirectory() + "drover-probe-" + String(UInt64.random(in: 0...UInt64.max), radix: 16) + ".whl"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let script = """
            import zipfile, hashlib, base64, sys
            files = {
                "drover_probe/__init__.py": "VALUE = 'installed through the proxy'\\n",
                "drover_probe-1.0.dist-info/METADATA": "Metadata-Version: 2.1\\nName: drover-probe\\nVersion: 1.0\\n",
                "drover_probe-1.0.dist-info/WHEEL": "Wheel-Version: 1.0\\nGenerator: drover-test\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n",
            }
            record = []
            with zipfile.ZipFile(sys.argv[1], "w") as z:
                for name, text in files.items():
                    data = text.encode()
                    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
                    record.append(f"{name},sha256={digest},{len(data)}")
                    z.writestr(name, data)
                record.append("drover_probe-1.0.dist-info/RECORD,,")
                z.writestr("drover_probe-1.0.dist-info/RECORD", "\\n".join(record) + "\\n")
            """
        let built = try await DroverProcess.run(program: "/usr/bin/python3", ["-c", script, path], environment: [:])
        guard built.status == 0 else { throw DroverError(.invalidArgument, "the wheel was not built: \(built.stderr)") }
        return Array(try Data(contentsOf: URL(fileURLWithPath: path)))
    }

    /// Issue #20: a tenant's environment cannot open the pool host's network. allowed_hosts may name
    /// a loopback or private address, in any spelling, and unrestricted may try metadata: only the
    /// operator's --allow-internal opens an internal address, checked on the address connected.
    @Test func aTenantCannotOpenThePoolHostsNetwork() async throws {
        guard geteuid() == 0 else { return }
        let closed = try Self.serve("127.0.0.3", ["/hello": Array("you should not read this\n".utf8)])
        defer { closed.stop() }
        let port = closed.address.split(separator: ":").last!
        let pool = try await RunningPool.start(Self.opened)
        let client = try await pool.client()
        defer { client.close() }
        // 127.0.0.3 spelled as the tenant likes: a literal, a number, octal, short, a name.
        let spellings = ["127.0.0.3", "2130706435", "0177.0.0.3", "127.3", "localhost", "localhost."]
        let named = try await client.provision(networking: Self.limited(spellings.map { "\($0):\(port)" }))
        for spelling in spellings {
            for tunnel in ["", "--proxytunnel "] {
                let reply = try await bash(client, named, "curl -sS -i \(tunnel)http://\(spelling):\(port)/hello; echo \" exit=$?\"")
                #expect(!reply.output.contains("should not read"), "\(tunnel)\(spelling): \(reply.output)")
                // Refused by the rule (403 egress_denied), or unresolvable (502) where the resolver has no such name.
                #expect(reply.output.contains("403") || reply.output.contains("502"), "\(tunnel)\(spelling): \(reply.output)")
            }
        }
        let unrestricted = try await client.provision(networking: ["type": "unrestricted"])
        for target in ["http://169.254.169.254/latest/meta-data/", "http://[::ffff:127.0.0.3]:\(port)/hello", "http://0:\(port)/hello"] {
            let reply = try await bash(client, unrestricted, "curl -sS -i --max-time 5 '\(target)'; echo \" exit=$?\"")
            #expect(reply.output.contains("egress_denied") && !reply.output.contains("should not read"), "\(target): \(reply.output)")
        }
        #expect(await pool.stop() == 0)
    }

    /// Issue #20: the proxy sends the checked Host upstream, never the sandbox's (domain fronting),
    /// and a bare host pattern opens its port 443 to CONNECT, not every port.
    @Test func theProxySendsItsOwnHostAndTunnelsTo443Only() async throws {
        guard geteuid() == 0 else { return }
        let allowed = try Self.serve("127.0.0.2", ["/hello": Array("hello\n".utf8)])
        defer { allowed.stop() }
        let pool = try await RunningPool.start(Self.opened)
        let client = try await pool.client()
        defer { client.close() }
        let bare = try await client.provision(networking: Self.limited(["127.0.0.2"]))
        let fronted = try await bash(client, bare, "curl -sS -H 'Host: internal-admin.test' http://\(allowed.address)/host")
        #expect(fronted.output == allowed.address, "\(fronted.output)")
        let plain = try await bash(client, bare, "curl -sS http://\(allowed.address)/hello")
        #expect(plain.output == "hello\n", "plain HTTP to any port of a bare pattern: \(plain.output)")
        let tunnel = try await bash(client, bare, "curl -sS -i --proxytunnel http://\(allowed.address)/hello; echo \" exit=$?\"")
        #expect(tunnel.output.contains("403") && !tunnel.output.contains("hello\n"), "\(tunnel.output)")
        #expect(await pool.stop() == 0)
    }
}
