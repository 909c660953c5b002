import Foundation

/// The calendar clock deployments' schedules are read against. The system's, unless the operator
/// (a test, in practice) sets `DROVER_CLOCK=base=UNIX,rate=N[,anchor=UNIX]`: then the clock read
/// `base` at the real instant `anchor` (default: when the process started) and runs `rate` times
/// as fast. Processes given the same setting agree on the time, so several API replicas can be
/// driven through hours of schedule in seconds.
public struct WallClock: Sendable {
    let base: Double?
    let anchor: Double
    let rate: Double

    public static let system = WallClock(base: nil, anchor: 0, rate: 1)

    init(base: Double?, anchor: Double, rate: Double) {
        self.base = base
        self.anchor = anchor
        self.rate = rate
    }

    public init(setting: String) throws(DroverError) {
        var values: [String: Double] = [:]
        for item in setting.split(separator: ",") {
            let pair = item.split(separator: "=", maxSplits: 1)
            guard pair.count == 2, let value = Double(pair[1]), ["base", "rate", "anchor"].contains(String(pair[0])) else {
                throw DroverError(.invalidArgument, "DROVER_CLOCK: \(item) is not base=UNIX, rate=N or anchor=UNIX")
            }
            values[String(pair[0])] = value
        }
        guard let base = values["base"] else { throw DroverError(.invalidArgument, "DROVER_CLOCK: base=UNIX is required") }
        let rate = values["rate"] ?? 1
        guard rate > 0 else { throw DroverError(.invalidArgument, "DROVER_CLOCK: rate must be positive") }
        self.init(base: base, anchor: values["anchor"] ?? Date().timeIntervalSince1970, rate: rate)
    }

    /// `DROVER_CLOCK` when set, else the system clock.
    public static func fromEnvironment() throws(DroverError) -> WallClock {
        guard let setting = ProcessInfo.processInfo.environment["DROVER_CLOCK"], !setting.isEmpty else { return .system }
        return try WallClock(setting: setting)
    }

    public func now() -> Date {
        let real = Date().timeIntervalSince1970
        guard let base else { return Date(timeIntervalSince1970: real) }
        return Date(timeIntervalSince1970: base + (real - anchor) * rate)
    }
}
