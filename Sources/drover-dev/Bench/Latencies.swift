import DroverCLI
import DroverCore
import Foundation

/// Latency samples in seconds, summarised by nearest-rank percentiles.
struct Latencies {
    private(set) var samples: [Double] = []

    mutating func record(_ seconds: Double) { samples.append(seconds) }

    /// Times `body` and records it.
    mutating func measure<T>(_ body: () async throws -> T) async rethrows -> T {
        let start = ContinuousClock.now
        let value = try await body()
        record((ContinuousClock.now - start).seconds)
        return value
    }

    /// The p-th percentile (0…100) in milliseconds.
    func percentile(_ p: Double) -> Double {
        guard !samples.isEmpty else { return .nan }
        let sorted = samples.sorted()
        let rank = max(0, min(sorted.count - 1, Int((p / 100 * Double(sorted.count)).rounded(.up)) - 1))
        return sorted[rank] * 1000
    }
}

extension Duration {
    var seconds: Double {
        let (s, attoseconds) = components
        return Double(s) + Double(attoseconds) / 1e18
    }
}

/// Progress for long steps, on standard error so that `--json` output stays clean.
enum Progress {
    static func say(_ text: String) {
        FileHandle.standardError.write(Data(("bench: " + text + "\n").utf8))
    }
}

/// One row of a benchmark report: a name, a value and its unit.
struct BenchResult {
    var name: String
    var value: Double
    var unit: String
}

enum BenchReport {
    /// Prints a table, or with `json` one JSON object holding the results and `extra` facts.
    static func print(_ title: String, _ results: [BenchResult], json: Bool, extra: [(String, String)]) {
        if json {
            let members = extra.map { ($0.0, JSONText.quote($0.1)) }
                + results.map { ($0.name, $0.value.isFinite ? String(format: "%.3f", $0.value) : "null") }
            Output.line("{" + members.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}")
            return
        }
        Output.line(title)
        for (key, value) in extra { Output.line("  \(key): \(value)") }
        Output.line(Output.table(
            ["METRIC", "VALUE", "UNIT"],
            results.map { [$0.name, String(format: $0.value >= 100 ? "%.0f" : "%.3f", $0.value), $0.unit] }))
    }
}
