import DroverCore

/// What one sandbox may use. Every field has a default, so `provision` may omit any of them.
public struct SandboxResources: Sendable, Equatable {
    /// Wall-clock limit of one tool call, in seconds (a call may ask for less).
    public var timeout: Double = PoolProtocol.defaultCallTimeout
    /// CPU seconds per process (RLIMIT_CPU).
    public var cpuSeconds: Int = 120
    /// Memory of the whole sandbox in MiB (its control group; files under a disk quota count,
    /// being in memory). Without control groups: address space per process (RLIMIT_AS).
    public var memoryMB: Int = 2048
    /// Bytes the sandbox may hold in `/workspace` and `/tmp` together, in MiB, where the pool
    /// gives quotas; else the largest file a process may write (RLIMIT_FSIZE). Also caps `write`.
    public var diskMB: Int = 1024
    /// Processes the sandbox may run at once (its control group's pids.max; RLIMIT_NPROC too).
    public var processes: Int = 256
    /// Only "none" (loopback inside the sandbox only) is supported.
    public var network: String = "none"
    /// Output kept per call, in bytes; more is dropped and the result marked `truncated`.
    public var outputBytes: Int = 100 * 1024
    /// A bash script run once at provision, e.g. to prepare the workspace.
    public var setup: String?
    /// The keys the request named (a pool refuses limits it cannot enforce only when asked for).
    public var named: Set<String> = []

    public init() {}

    /// The most output a call may keep: even rendered at its worst (every byte a control
    /// character, escaped as six, plus the exact bytes in base64) a reply stays under
    /// `PoolProtocol.maxReplyLength`.
    public static let maxOutputBytes = 8 << 20

    /// Reads `{"timeout_s", "cpu_s", "memory_mb", "disk_mb", "processes", "network", "output_bytes", "setup"}`.
    public init(json: JSONValue?) throws(PoolProtocol.Failure) {
        guard let json, json != .null else { return }
        guard case .object(let fields) = json else {
            throw PoolProtocol.Failure(.badRequest, "resources must be an object")
        }
        named = Set(fields.filter { $0.value != .null }.keys)
        func positive(_ key: String) throws(PoolProtocol.Failure) -> Double? {
            guard let value = fields[key], value != .null else { return nil }
            guard let number = value.doubleValue, number > 0, number < 1e9 else {
                throw PoolProtocol.Failure(.badRequest, "resources.\(key) must be a positive number")
            }
            return number
        }
        if let value = try positive("timeout_s") { timeout = value }
        if let value = try positive("cpu_s") { cpuSeconds = Int(value.rounded(.up)) }
        if let value = try positive("memory_mb") { memoryMB = Int(value) }
        if let value = try positive("disk_mb") { diskMB = Int(value) }
        if let value = try positive("processes") { processes = Int(value) }
        if let value = try positive("output_bytes") {
            guard value <= Double(Self.maxOutputBytes) else {
                throw PoolProtocol.Failure(.badRequest, "resources.output_bytes may be at most \(Self.maxOutputBytes)")
            }
            outputBytes = Int(value)
        }
        if let value = fields["network"], value != .null {
            guard value.stringValue == "none" else {
                throw PoolProtocol.Failure(.badRequest, "resources.network: only \"none\" is supported")
            }
        }
        if let value = fields["setup"], value != .null {
            guard let script = value.stringValue else { throw PoolProtocol.Failure(.badRequest, "resources.setup must be a string") }
            setup = script
        }
    }

    public var json: JSONValue {
        [
            "timeout_s": .number(timeout), "cpu_s": .number(Double(cpuSeconds)), "memory_mb": .number(Double(memoryMB)),
            "disk_mb": .number(Double(diskMB)), "processes": .number(Double(processes)), "network": .string(network),
            "output_bytes": .number(Double(outputBytes)),
        ]
    }
}
