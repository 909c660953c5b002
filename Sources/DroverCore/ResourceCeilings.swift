/// The most a tenant may ask of one sandbox (`config.resources` of an environment): the
/// operator's ceilings, refused above with a clear error by the API (at environment create and
/// update, `invalid_request_error`) and by the pool (at provision, `resources_above_ceiling`),
/// so a tenant cannot book a host's memory, processes or disk for itself. Defaults are documented
/// in docs/guarantees.md; `--max-resources memory_mb=4096,processes=512` changes them.
public struct ResourceCeilings: Sendable, Equatable {
    public private(set) var limits: [String: Double] = Self.defaults

    public static let defaults: [String: Double] = [
        "timeout_s": 3600, "cpu_s": 3600, "memory_mb": 8192, "disk_mb": 16384, "processes": 1024,
    ]

    public init() {}

    /// `key=value` pairs separated by commas (keys of `defaults`); unnamed keys keep their default.
    public init(parsing text: String) throws(DroverError) {
        for pair in text.split(separator: ",") where !pair.isEmpty {
            let parts = pair.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, Self.defaults[parts[0]] != nil, let value = Double(parts[1]), value > 0, value < 1e9 else {
                throw DroverError(.invalidArgument, "\(pair) is not KEY=N with a KEY of \(Self.defaults.keys.sorted().joined(separator: ", "))")
            }
            limits[parts[0]] = value
        }
    }

    /// Why `resources` asks for more than a ceiling allows, or nil.
    public func violation(in resources: JSONValue?) -> String? {
        guard case .object(let fields)? = resources else { return nil }
        for key in limits.keys.sorted() {
            guard let asked = fields[key]?.doubleValue, let ceiling = limits[key], asked > ceiling else { continue }
            return "resources.\(key) of \(Self.format(asked)) is above this deployment's ceiling of \(Self.format(ceiling))"
        }
        return nil
    }

    static func format(_ value: Double) -> String { value == value.rounded() && abs(value) < 1e15 ? String(Int(value)) : String(value) }
}
