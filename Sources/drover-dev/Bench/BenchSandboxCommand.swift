import DroverCLI
import DroverCore
import DroverIO
import DroverSandbox
import Foundation

/// `drover bench sandbox`: provision and execute latency against a real pool daemon, started as a
/// child process of this command and reached over loopback TCP.
struct BenchSandboxCommand: Command {
    static let name = "bench sandbox"
    static let summary = "benchmark sandbox provisioning and tool round trips"
    static let help = """
        usage: drover bench sandbox [--samples N] [--concurrency N] [--json] [--insecure-no-isolation]

        Starts `drover sandbox-pool` on a free loopback port and measures, over TCP, with every
        isolation layer on (bubblewrap, seccomp, a control group and a disk quota per sandbox):
          provision_warm     provision when a warm sandbox is ready (then destroy)
          provision_cold     provision with an empty warm pool (a new workspace)
          provision_setup    cold provision with a setup script (`true`): a sandbox process runs
          execute_bash_true  execute bash `true` round trip
          execute_read       execute read of a small file round trip
          execute_bash_true_beside_256, live_sandboxes_cost_bash_ms
                             bash `true` with 256 idle sandboxes in the pool, and what that adds
                             to it alone (each workspace is a mount; a call must not pay for them)
          executes_per_s     bash `true` calls per second, --concurrency at once over 4 connections
          layer_cost_*       what each layer adds to warm provision and bash `true` (p50): pools
                             without seccomp, without control groups, without the disk quota and
                             without all three run beside the full one, samples interleaved
          execute_bash_true_networked, network_cost_bash_ms
                             bash `true` in a sandbox with networking (its own network namespace,
                             its listener handed to the egress proxy) beside the plain one, interleaved
          egress_fetch       curl of a small page on 127.0.0.2 through the proxy (a whole bash
                             call: curl's start, the proxy's policy check, the relay)
          hello_beside_300_silent
                             a harness's connect, hello and ping while 300 connections that never
                             say hello are open (default flags; a fresh flood each sample)

          --samples N       samples per latency (default 200)
          --concurrency N   calls in flight for the throughput run (default 16)
          --json            one JSON object instead of a table
        """
    static let options: Set<String> = ["samples", "concurrency"]
    static let flags: Set<String> = ["json", "insecure-no-isolation"]

    static func run(_ arguments: Arguments) async throws {
        let samples = try arguments.int("samples") ?? 200
        let concurrency = try arguments.int("concurrency") ?? 16
        let token = "bench-" + String(UInt64.random(in: 0...UInt64.max), radix: 16)
        let self_ = DroverBinary.path
        let isolation = arguments.has("insecure-no-isolation") ? ["--insecure-no-isolation"] : []
        var results: [BenchResult] = []

        func startPool(warm: Int, _ extra: [String] = []) async throws -> (ChildDaemon, String) {
            let daemon = try ChildDaemon(
                // The networking phase's page is on 127.0.0.2, which a pool opens only when told.
                binary: self_, ["sandbox-pool", "--listen", "127.0.0.1:0", "--warm", String(warm), "--capacity", "512", "--allow-internal", "127.0.0.2/32"]
                    + isolation + extra,
                environment: ["DROVER_POOL_TOKEN": token, "DATABASE_URL": ""])
            let listening = try await daemon.waitForLog("listening")
            guard let address = listening["address"]?.stringValue else { throw DroverError(.invalidArgument, "the pool logged no address") }
            return (daemon, address)
        }
        func stop(_ daemon: ChildDaemon) async {
            daemon.signal(SIGTERM)
            _ = await daemon.wait(timeout: 20)
        }
        func add(_ name: String, _ latencies: Latencies) {
            results.append(BenchResult(name: name + "_p50_ms", value: latencies.percentile(50), unit: "ms"))
            results.append(BenchResult(name: name + "_p95_ms", value: latencies.percentile(95), unit: "ms"))
        }

        // Warm provision and bash `true`, with every layer and without each, side by side: a pool
        // per configuration (each with a warm pool of 4, refilled between samples), samples
        // interleaved so that the machine's drift touches all alike.
        let layers: [(name: String, args: [String])] = isolation.isEmpty
            ? [("all", []), ("seccomp", ["--no-seccomp"]), ("cgroups", ["--no-cgroups", "--allow-unenforced-limits"]),
               ("disk_quota", ["--no-disk-quota"]), ("all_layers", ["--no-seccomp", "--no-cgroups", "--allow-unenforced-limits", "--no-disk-quota"])]
            : [("all", [])]
        var pools: [(daemon: ChildDaemon, address: String, client: PoolClient, sandbox: String)] = []
        for layer in layers {
            let (daemon, address) = try await startPool(warm: 4, layer.args)
            let client = try await PoolClient.connect(address, token: token)
            pools.append((daemon, address, client, try await client.provision()))
        }
        var warmByLayer = Array(repeating: Latencies(), count: layers.count)
        var bashByLayer = Array(repeating: Latencies(), count: layers.count)
        for index in 0..<samples {
            try await Task.sleep(for: .milliseconds(3))
            for (slot, pool) in pools.enumerated() {
                let id = try await warmByLayer[slot].measure { try await pool.client.provision() }
                try await pool.client.destroy(sandbox: id)
                _ = try await bashByLayer[slot].measure {
                    try await pool.client.execute(sandbox: pool.sandbox, callID: "l\(index)", name: "bash", input: ["command": "true"])
                }
            }
        }
        let warm = warmByLayer[0]
        add("provision_warm", warm)
        for (slot, layer) in layers.enumerated() {
            Progress.say(String(format: "%@: warm provision p50 %.3f ms, bash true p50 %.3f ms (interleaved)", layer.name,
                                warmByLayer[slot].percentile(50), bashByLayer[slot].percentile(50)))
        }
        Progress.say("warm provision p50 \(String(format: "%.3f", warm.percentile(50))) ms")
        for slot in layers.indices.dropFirst() {
            let name = layers[slot].name
            results.append(BenchResult(
                name: "layer_cost_\(name)_provision_ms", value: warm.percentile(50) - warmByLayer[slot].percentile(50), unit: "ms"))
            results.append(BenchResult(
                name: "layer_cost_\(name)_bash_ms", value: bashByLayer[0].percentile(50) - bashByLayer[slot].percentile(50), unit: "ms"))
            Progress.say(String(
                format: "%@: provision %+.3f ms, bash true %+.3f ms", name,
                warm.percentile(50) - warmByLayer[slot].percentile(50), bashByLayer[0].percentile(50) - bashByLayer[slot].percentile(50)))
        }
        for pool in pools.dropFirst() {
            pool.client.close()
            await stop(pool.daemon)
        }
        let (warmDaemon, warmAddress, client) = (pools[0].daemon, pools[0].address, pools[0].client)

        let sandbox = try await client.provision()
        _ = try await client.execute(sandbox: sandbox, callID: "setup", name: "write", input: ["path": "f.txt", "content": "hello\n"])
        var bash = Latencies()
        var read = Latencies()
        for index in 0..<samples {
            _ = try await bash.measure {
                try await client.execute(sandbox: sandbox, callID: "b\(index)", name: "bash", input: ["command": "true"])
            }
            _ = try await read.measure {
                try await client.execute(sandbox: sandbox, callID: "r\(index)", name: "read", input: ["path": "f.txt"])
            }
        }
        add("execute_bash_true", bash)
        add("execute_read", read)
        Progress.say("bash true p50 \(String(format: "%.3f", bash.percentile(50))) ms, read p50 \(String(format: "%.3f", read.percentile(50))) ms")

        // The same call beside 256 idle sandboxes (each, with quotas, a mount of its own), between
        // two runs of it alone (the one above and one after): what a call pays for every other
        // live sandbox of its pool.
        Progress.say("provisioning 256 idle sandboxes")
        var idle: [String] = []
        for _ in 0..<256 { idle.append(try await client.provision()) }
        var beside = Latencies()
        for index in 0..<samples {
            _ = try await beside.measure {
                try await client.execute(sandbox: sandbox, callID: "m\(index)", name: "bash", input: ["command": "true"])
            }
        }
        for id in idle { try await client.destroy(sandbox: id) }
        var alone = bash
        for index in 0..<samples {
            _ = try await alone.measure {
                try await client.execute(sandbox: sandbox, callID: "a\(index)", name: "bash", input: ["command": "true"])
            }
        }
        add("execute_bash_true_beside_256", beside)
        results.append(BenchResult(name: "live_sandboxes_cost_bash_ms", value: beside.percentile(50) - alone.percentile(50), unit: "ms (256 idle)"))
        Progress.say(String(format: "bash true beside 256 idle sandboxes p50 %.3f ms (alone, before and after: %.3f)", beside.percentile(50), alone.percentile(50)))

        // Networking's cost (root with bubblewrap only: that is where sandboxes get a network).
        if geteuid() == 0 && isolation.isEmpty {
            let page = try HTTPServer(host: "127.0.0.2", port: 0, name: "bench.page", log: Log(component: "bench", minimum: .error), quickHandler: { _, _ in
                .text(200, "ok\n", contentType: "text/plain")
            })
            page.start()
            defer { page.stop() }
            let networked = try await client.provision(networking: ["type": "limited", "allowed_hosts": [.string(page.address)]])
            var plain = Latencies()
            var netted = Latencies()
            var fetch = Latencies()
            for index in 0..<samples {
                _ = try await plain.measure {
                    try await client.execute(sandbox: sandbox, callID: "p\(index)", name: "bash", input: ["command": "true"])
                }
                _ = try await netted.measure {
                    try await client.execute(sandbox: networked, callID: "n\(index)", name: "bash", input: ["command": "true"])
                }
                let fetched = try await fetch.measure {
                    try await client.execute(sandbox: networked, callID: "f\(index)", name: "bash", input: ["command": .string("curl -sS http://\(page.address)/")])
                }
                guard fetched["output"]?.stringValue == "ok\n" else { throw DroverError(.invalidArgument, "the proxied fetch failed: \(fetched.text)") }
            }
            add("execute_bash_true_networked", netted)
            add("egress_fetch", fetch)
            results.append(BenchResult(name: "network_cost_bash_ms", value: netted.percentile(50) - plain.percentile(50), unit: "ms"))
            Progress.say(String(format: "networked bash true p50 %.3f ms (plain %.3f, interleaved), proxied fetch p50 %.3f ms",
                                netted.percentile(50), plain.percentile(50), fetch.percentile(50)))
        }

        var clients = [client]
        for _ in 1..<4 { clients.append(try await PoolClient.connect(warmAddress, token: token)) }
        var sandboxes: [String] = []
        for index in 0..<8 { sandboxes.append(try await clients[index % 4].provision()) }
        let total = max(concurrency, samples * 2)
        let (connections, targets) = (clients, sandboxes)
        let started = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<concurrency {
                group.addTask {
                    var call = worker
                    while call < total {
                        _ = try await connections[call % 4].execute(
                            sandbox: targets[call % 8], callID: "t\(call)", name: "bash", input: ["command": "true"])
                        call += concurrency
                    }
                }
            }
            try await group.waitForAll()
        }
        let rate = Double(total) / (ContinuousClock.now - started).seconds
        results.append(BenchResult(name: "executes_per_s", value: rate, unit: "calls/s"))
        Progress.say("\(Int(rate)) executes/s at concurrency \(concurrency)")
        clients.forEach { $0.close() }
        await stop(warmDaemon)

        // Cold: no warm pool at all.
        let (coldDaemon, coldAddress) = try await startPool(warm: 0)
        let coldClient = try await PoolClient.connect(coldAddress, token: token)
        var cold = Latencies()
        var setup = Latencies()
        for _ in 0..<samples {
            let id = try await cold.measure { try await coldClient.provision() }
            try await coldClient.destroy(sandbox: id)
            let prepared = try await setup.measure { try await coldClient.provision(resources: ["setup": "true"]) }
            try await coldClient.destroy(sandbox: prepared)
        }
        add("provision_cold", cold)
        add("provision_setup", setup)
        coldClient.close()

        // A harness's connect and hello (then a ping) while 300 connections that never say hello
        // hold the pool's door (default flags): a fresh flood for each sample.
        guard let (host, port) = parseHostPort(coldAddress) else { throw DroverError(.invalidArgument, "the pool's address: \(coldAddress)") }
        var hello = Latencies()
        for _ in 0..<min(samples, 20) {
            let silent = try (0..<300).map { _ in try Socket.connect(host: host, port: port) }
            _ = try await hello.measure {
                let harness = try await PoolClient.connect(coldAddress, token: token)
                defer { harness.close() }
                return try await harness.request("ping")
            }
            silent.forEach { $0.close() }
        }
        add("hello_beside_300_silent", hello)
        Progress.say(String(format: "hello beside 300 silent connections p50 %.3f ms, p95 %.3f ms", hello.percentile(50), hello.percentile(95)))
        await stop(coldDaemon)

        BenchReport.print("drover bench sandbox", results, json: arguments.has("json"), extra: [
            ("benchmark", "sandbox"), ("cores", String(ProcessInfo.processInfo.activeProcessorCount)),
            ("isolation", isolation.isEmpty ? "bubblewrap" : "none"), ("samples", String(samples)),
            ("concurrency", String(concurrency)),
        ])
    }
}
