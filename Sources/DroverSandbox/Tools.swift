import DroverCore
import DroverIO
import Foundation

/// The built-in tools, with Managed Agents' names: `bash`, `read`, `write`, `edit`, `glob`, `grep`.
/// `bash` and `grep` run as processes inside the sandbox; the file tools work on the workspace
/// from the daemon, through `Workspace`'s beneath-only opens.
struct Tools: Sendable {
    let isolation: Isolation
    /// Registers running child pids so that shutdown can kill them.
    let track: @Sendable (String, pid_t?) -> Void
    /// Threads for file tools on sandbox content, and for waiting on a call's processes.
    let files: BlockingPool
    let waits: BlockingPool
    /// Proxies networked sandboxes' connections (nil: sandboxes get no network).
    let egress: EgressProxy?

    typealias Failure = PoolProtocol.Failure

    static let names = ["bash", "read", "write", "edit", "glob", "grep"]

    /// Runs a tool. Its processes are tracked as `sandbox/call/`, so that `cancel` can kill them.
    func run(_ name: String, input: JSONValue, in sandbox: Sandbox, callID: String = UUID().uuidString) async -> Result<JSONValue, Failure> {
        do {
            return .success(try await dispatch(name, input: input, sandbox: sandbox, callID: callID))
        } catch let failure as Failure {
            return .failure(failure)
        } catch {
            return .failure(Failure(.internal, "\(error)"))
        }
    }

    private func dispatch(_ name: String, input: JSONValue, sandbox: Sandbox, callID: String) async throws -> JSONValue {
        guard case .object(let fields) = input else { throw Failure(.badRequest, "input must be a JSON object") }
        func string(_ key: String, alias: String? = nil) throws -> String {
            if let value = fields[key]?.stringValue ?? alias.flatMap({ fields[$0]?.stringValue }) { return value }
            throw Failure(.badRequest, "\(name) needs \(key) (string)")
        }
        func optionalString(_ key: String) -> String? { fields[key]?.stringValue }
        func optionalInt(_ key: String) throws -> Int? {
            guard let value = fields[key], value != .null else { return nil }
            guard let number = value.intValue else { throw Failure(.badRequest, "\(key) must be a whole number") }
            return number
        }
        let workspace = sandbox.workspace
        let keep = sandbox.resources.outputBytes
        switch name {
        case "bash":
            // The SDK toolset's `restart` reboots a persistent shell; here each call has a fresh
            // one (files persist, processes do not), so there is nothing to restart.
            if fields["restart"]?.boolValue == true && fields["command"] == nil {
                return Self.result("bash restarted: each call here runs in a fresh shell (files persist between calls, processes do not)")
            }
            let command = try string("command")
            // `timeout_ms` (the SDK toolset's name) or `timeout`, in milliseconds; capped by the sandbox's limit.
            let requested = try (optionalInt("timeout_ms") ?? optionalInt("timeout")).map { Double($0) / 1000 }
            let timeout = min(sandbox.resources.timeout, max(0.001, requested ?? sandbox.resources.timeout))
            return try await runProcess(["/bin/bash", "-c", command], sandbox: sandbox, timeout: timeout, callID: callID)
        // File tools touch the filesystem on the daemon's own bounded threads, never on Swift's
        // cooperative pool: whatever a sandbox's files are, no other client waits on them.
        case "read":
            var (path, offset, limit) = (try string("path", alias: "file_path"), try optionalInt("offset"), try optionalInt("limit"))
            // The SDK toolset's `view_range`: [first, last] lines, 1-based; a last of 0 or less reads to the end.
            if let range = fields["view_range"], range != .null {
                guard case .array(let bounds) = range, bounds.count == 2, let first = bounds[0].intValue, let last = bounds[1].intValue,
                      first >= 1, last <= 0 || last >= first else {
                    throw Failure(.badRequest, "view_range must be [first_line, last_line], 1-based (last 0 or less: to the end)")
                }
                (offset, limit) = (first, last > 0 ? last - first + 1 : nil)
            }
            let (file, first, count) = (path, offset, limit)
            let (text, truncated) = try await files.run { try workspace.read(file, offset: first, limit: count, maxBytes: keep) }
            return Self.result(text, truncated: truncated)
        case "write":
            let (path, content, maxBytes) = (try string("path", alias: "file_path"), try string("content"), sandbox.resources.diskMB << 20)
            return Self.result(try await files.run { try workspace.write(path, content: content, maxBytes: maxBytes) })
        case "edit":
            let (path, old, new) = (try string("path", alias: "file_path"), try string("old_string"), try string("new_string"))
            let replaceAll = fields["replace_all"]?.boolValue ?? false
            return Self.result(try await files.run { try workspace.edit(path, old: old, new: new, replaceAll: replaceAll) })
        case "glob":
            let (pattern, base) = (try string("pattern"), optionalString("path"))
            let (text, truncated) = try await files.run { try workspace.glob(pattern, base: base, limit: 1000) }
            return Self.result(text.isEmpty ? "no files match" : text, truncated: truncated)
        case "grep":
            return try await grep(fields, sandbox: sandbox, callID: callID)
        default:
            throw Failure(.unknownTool, "unknown tool \(name); the tools are \(Self.names.joined(separator: ", "))")
        }
    }

    /// `grep`: GNU grep inside the sandbox, argv only (no shell). Modes: `files_with_matches`
    /// (default), `content` (file:line:text), `count`.
    private func grep(_ fields: [String: JSONValue], sandbox: Sandbox, callID: String) async throws -> JSONValue {
        guard let pattern = fields["pattern"]?.stringValue else { throw Failure(.badRequest, "grep needs pattern (string)") }
        let path = try sandbox.workspace.relative(fields["path"]?.stringValue ?? Isolation.workspaceMount)
        var argv = ["/usr/bin/grep", "-r", "-E", "-I"]
        switch fields["output_mode"]?.stringValue ?? "files_with_matches" {
        case "files_with_matches": argv.append("-l")
        case "content": argv.append("-n")
        case "count": argv.append("-c")
        case let other: throw Failure(.badRequest, "output_mode \(other) is not files_with_matches, content or count")
        }
        if fields["case_insensitive"]?.boolValue == true || fields["-i"]?.boolValue == true { argv.append("-i") }
        if let glob = fields["glob"]?.stringValue { argv.append("--include=\(glob)") }
        argv += ["-e", pattern, "--", isolation.commandPath(path, workspace: sandbox.workspace.path)]
        var result = try await runProcess(argv, sandbox: sandbox, timeout: sandbox.resources.timeout, callID: callID)
        // grep exits 1 for "no match": not an error for the model.
        if result["exit_code"]?.intValue == 1, case .object(var members) = result {
            members["output"] = "no matches"
            members["is_error"] = false
            result = .object(members)
        }
        return result
    }

    private func runProcess(_ command: [String], sandbox: Sandbox, timeout: Double, callID: String) async throws -> JSONValue {
        let network = egress != nil ? sandbox.network : nil
        let launch = isolation.launch(
            command, workspace: sandbox.workspace, uid: sandbox.uid, resources: sandbox.resources, cgroup: sandbox.cgroup, networked: network != nil,
            layer: sandbox.layer)
        let limits = ProcessRunner.Limits(timeout: timeout, keep: sandbox.resources.outputBytes, drainLimit: max(8 << 20, sandbox.resources.outputBytes * 4))
        let key = ProcessTable.key(sandbox: sandbox.id, call: callID)
        let (track, cgroup) = (self.track, sandbox.cgroup)
        // The OOM counter is a file: read on the pool's threads too, before the spawn and after the wait.
        let spawn: @Sendable () throws -> (ProcessRunner.Started, oomBefore: Int?) = {
            (try ProcessRunner.start(launch, environment: Isolation.spawnEnvironment) { track(key, $0) }, cgroup?.oomKills)
        }
        // Born in the sandbox's groups when a spawner thread lives there (v1); else it joins them.
        let (started, oomBefore) = if let spawner = cgroup?.spawner { try await spawner.run(spawn) } else { try await waits.run(spawn) }
        // While the call runs, the proxy serves what the sandbox connects to 127.0.0.1:3128.
        var gate: EgressProxy.Gate?
        if let listener = started.proxyListener, let network, let egress { gate = egress.open(listener, for: sandbox, network: network) }
        defer { gate?.close() }
        let (outcome, oomAfter) = try await waits.run { (ProcessRunner.collect(started, limits: limits) { track(key, $0) }, cgroup?.oomKills) }
        // Any bytes: NUL and invalid UTF-8 are shown as symbols, and the exact bytes travel too.
        var (text, exact) = ToolText.render(outcome.output)
        if outcome.timedOut { text += "\n[killed: the command timed out after \(Self.seconds(timeout))]" }
        if outcome.outputLimitHit { text += "\n[killed: the command wrote more than \(limits.drainLimit) bytes]" }
        if let before = oomBefore, let after = oomAfter, after > before {
            text += "\n[the sandbox ran out of memory (memory_mb \(sandbox.resources.memoryMB)): the kernel killed \(after - before) process(es)]"
        }
        var result: [String: JSONValue] = [
            "output": .string(text), "is_error": .bool(outcome.exitCode != 0 || outcome.timedOut),
            "exit_code": .number(Double(outcome.exitCode)), "truncated": .bool(outcome.truncated),
        ]
        if let exact { result["output_base64"] = .string(exact) }
        if outcome.timedOut { result["timed_out"] = true }
        return .object(result)
    }

    static func result(_ text: String, truncated: Bool = false) -> JSONValue {
        ["output": .string(text), "is_error": false, "truncated": .bool(truncated)]
    }

    private static func seconds(_ value: Double) -> String {
        value == value.rounded() ? "\(Int(value)) s" : String(format: "%.1f s", value)
    }
}
