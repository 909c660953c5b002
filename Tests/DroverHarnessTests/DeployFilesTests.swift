import DroverCore
import DroverIO
import DroverTestSupport
import Foundation
import Testing

/// Docker cannot run here, so the deployment files are checked instead: they parse, every drover
/// command and flag they use exists, ports agree, environment names are ones the code reads, and
/// no API key reaches a sandbox pool.
@Suite struct DeployFilesTests {
    static let root = TestDatabase.packageRoot

    /// YAML documents as JSON, read with Debian's python3 and PyYAML.
    static func yaml(_ path: String) async throws -> [JSONValue] {
        let out = NSTemporaryDirectory() + "drover-yaml-\(UInt64.random(in: 0...UInt64.max)).json"
        defer { try? FileManager.default.removeItem(atPath: out) }
        let status = try await Shell.run(
            "/usr/bin/python3 -c 'import json,sys,yaml; json.dump(list(yaml.safe_load_all(open(sys.argv[1]))), open(sys.argv[2], \"w\"))' '\(root.path)/\(path)' '\(out)'")
        #expect(status == 0, "\(path) does not parse as YAML")
        guard case .array(let documents) = try JSONValue.parse(Array(try Data(contentsOf: URL(fileURLWithPath: out)))) else { return [] }
        return documents
    }

    /// `drover CMD --help` for every subcommand a file runs, to check its flags exist.
    static func help(_ command: String) async throws -> String {
        let result = try await DroverProcess.run([command, "--help"], database: nil)
        #expect(result.status == 0, "no drover command \(command)")
        return result.stdout
    }

    static func checkCommand(_ args: [String], _ where_: String) async throws {
        guard let command = args.first else { Issue.record("\(where_): no command"); return }
        let help = try await Self.help(command)
        for flag in args.dropFirst() where flag.hasPrefix("--") {
            #expect(help.contains(flag.split(separator: "=")[0]), "\(where_): drover \(command) has no \(flag)")
        }
    }

    static func strings(_ value: JSONValue?) -> [String] {
        if case .array(let items)? = value { return items.compactMap(\.stringValue) }
        return []
    }

    /// Environment names the code reads (as string literals in Sources).
    static func readByCode(_ name: String) -> Bool {
        let sources = FileManager.default.enumerator(atPath: root.appendingPathComponent("Sources").path)?.compactMap { $0 as? String } ?? []
        return sources.contains { file in
            file.hasSuffix(".swift") && ((try? String(contentsOf: root.appendingPathComponent("Sources/\(file)"), encoding: .utf8))?.contains("\"\(name)\"") ?? false)
        }
    }

    static func metricsPort(_ args: [String]) -> Int? {
        guard let index = args.firstIndex(of: "--metrics-listen"), index + 1 < args.count else { return nil }
        return Int(args[index + 1].split(separator: ":").last ?? "")
    }

    @Test func dockerCompose() async throws {
        let compose = try #require(try await Self.yaml("docker-compose.yml").first)
        guard case .object(let services)? = compose["services"] else { Issue.record("no services"); return }
        #expect(Set(services.keys).isSuperset(of: ["postgres", "migrate", "harness-1", "harness-2", "sandbox-pool", "scripted-model", "api"]))
        for (name, service) in services where service["image"]?.stringValue == "drover:latest" {
            let command = Self.strings(service["command"])
            try await Self.checkCommand(command, "compose \(name)")
            guard case .object(let env)? = service["environment"] else { continue }
            for key in env.keys { #expect(Self.readByCode(key), "compose \(name): the code never reads \(key)") }
            if let port = Self.metricsPort(command) {
                #expect(Self.strings(service["healthcheck"]?["test"]).contains { $0.contains("localhost:\(port)/readyz") }, "compose \(name): health check port")
            }
            let isHarness = command.first == "harness"
            #expect((env["ANTHROPIC_API_KEY"] != nil) == isHarness, "compose \(name): the API key goes to harnesses only")
        }
        let pool = try #require(services["sandbox-pool"])
        #expect(pool["environment"]?["DATABASE_URL"]?.stringValue?.contains("drover_pool:") == true, "the pool uses its registry-only role")
        #expect(pool["privileged"] == nil && pool["cap_add"] == nil)
        #expect(Self.strings(pool["security_opt"]).contains("seccomp=unconfined"))
        #expect(Self.strings(pool["volumes"]).contains("/run/drover:/run/drover"), "the pool containers of a host share the uid locks")
        let modelCommand = Self.strings(services["scripted-model"]?["command"])
        #expect(modelCommand.contains("/usr/local/share/drover/demo/turns.json"))
        #expect(FileManager.default.fileExists(atPath: Self.root.appendingPathComponent("deploy/postgres-init.sh").path))
        #expect(compose["services"]?["harness-1"]?["build"]?["dockerfile"]?.stringValue == "deploy/Dockerfile")
    }

    @Test func dockerfile() throws {
        let text = try String(contentsOf: Self.root.appendingPathComponent("deploy/Dockerfile"), encoding: .utf8)
        for line in text.split(separator: "\n") where line.hasPrefix("COPY ") && !line.contains("--from") {
            let source = String(line.split(separator: " ")[1])
            #expect(FileManager.default.fileExists(atPath: Self.root.appendingPathComponent(source).path), "COPY \(source) is not in the repo")
        }
        #expect(text.contains("FROM swift:") && text.contains("FROM debian:bookworm-slim"), "multi-stage: Swift image, then slim Debian")
        for package in ["libpq5", "libcurl4", "bubblewrap", "tini"] { #expect(text.contains(package)) }
        #expect(text.contains(#"ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/drover"]"#))
        // The binary finds migrations beside it: bin/../share/drover/migrations.
        #expect(text.contains("COPY migrations /usr/local/share/drover/migrations"))
        // The API finds the console at bin/../share/drover/console.
        #expect(text.contains("COPY Sources/DroverAPI/Console /usr/local/share/drover/console"))
    }

    @Test func kubernetes() async throws {
        var documents: [JSONValue] = []
        for file in ["secrets", "migrate-job", "harness-deployment", "sandbox-pool-deployment", "api-deployment", "networkpolicy"] {
            documents += try await Self.yaml("deploy/kubernetes/\(file).yaml")
        }
        let secrets = Set(documents.filter { $0["kind"]?.stringValue == "Secret" }.compactMap { $0["metadata"]?["name"]?.stringValue })
        var byComponent: [String: JSONValue] = [:]
        for document in documents {
            guard case .array(let containers)? = (document["spec"]?["template"]?["spec"]?["containers"]) else { continue }
            for container in containers {
                let args = Self.strings(container["args"])
                try await Self.checkCommand(args, "kubernetes \(container["name"]?.stringValue ?? "?")")
                let refs: [String]
                if case .array(let sources)? = container["envFrom"] { refs = sources.compactMap { $0["secretRef"]?["name"]?.stringValue } } else { refs = [] }
                for ref in refs { #expect(secrets.contains(ref), "secret \(ref) is not defined") }
                if let port = Self.metricsPort(args) {
                    #expect(container["readinessProbe"]?["httpGet"]?["port"]?.intValue == port)
                    #expect(container["livenessProbe"]?["httpGet"]?["path"]?.stringValue == "/healthz")
                }
                if args.first == "sandbox-pool" {
                    #expect(!refs.contains("drover-anthropic") && !refs.contains("drover-database"), "no API key nor main database for pools")
                    #expect(container["securityContext"]?["privileged"] == nil)
                    // The pools of a node share the uid ranges' lock files.
                    #expect(container["volumeMounts"]?[0]?["mountPath"]?.stringValue == "/run/drover")
                    #expect(document["spec"]?["template"]?["spec"]?["volumes"]?[0]?["hostPath"]?["path"]?.stringValue == "/run/drover")
                }
                byComponent[args.first ?? ""] = document
            }
        }
        #expect(Set(byComponent.keys) == ["migrate", "harness", "sandbox-pool", "api"])
        let api = try #require(byComponent["api"]?["spec"]?["template"]?["spec"]?["containers"]?[0])
        if case .array(let sources)? = api["envFrom"] {
            #expect(sources.compactMap { $0["secretRef"]?["name"]?.stringValue } == ["drover-database", "drover-vault-key"],
                    "the API gets the database and the vault key only")
        }
        let policy = try #require(documents.first { $0["kind"]?.stringValue == "NetworkPolicy" })
        #expect(policy["spec"]?["podSelector"]?["matchLabels"]?["component"]?.stringValue == "sandbox-pool")
        #expect(policy["spec"]?["ingress"]?[0]?["from"]?[0]?["podSelector"]?["matchLabels"]?["component"]?.stringValue == "harness")
        #expect(policy["spec"]?["ingress"]?[0]?["ports"]?[0]?["port"]?.intValue == 7420)
    }

    @Test func systemdUnits() async throws {
        for (unit, command) in [("drover-harness.service", "harness"), ("drover-sandbox-pool.service", "sandbox-pool"), ("drover-api.service", "api")] {
            let text = try String(contentsOf: Self.root.appendingPathComponent("deploy/systemd/\(unit)"), encoding: .utf8)
            var section = ""
            var keys: [String: String] = [:]
            for line in text.split(separator: "\n").map(String.init) where !line.hasPrefix("#") && !line.isEmpty {
                if line.hasPrefix("[") {
                    section = line
                    continue
                }
                let parts = line.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                #expect(parts.count == 2 && !section.isEmpty, "\(unit): not key=value in a section: \(line)")
                keys[String(parts[0])] = parts.count == 2 ? String(parts[1]) : ""
            }
            let exec = (keys["ExecStart"] ?? "").split(separator: " ").map(String.init)
            #expect(exec.first == "/usr/local/bin/drover" && exec.dropFirst().first == command, "\(unit) runs drover \(command)")
            try await Self.checkCommand(Array(exec.dropFirst()), unit)
            #expect(keys["KillSignal"] == "SIGTERM" && keys["ProtectSystem"] == "strict")
        }
    }
}
