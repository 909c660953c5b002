import Foundation
import Synchronization

/// Metrics in the Prometheus text exposition format (version 0.0.4): counters, gauges and
/// histograms with labels, rendered on demand for `/metrics`.
public final class MetricsRegistry: Sendable {
    private enum Kind: String { case counter, gauge, histogram }

    private struct Family {
        var kind: Kind
        var help: String
        var buckets: [Double]
        /// Label set (rendered `k="v",…`) → value, or bucket counts + sum + count.
        var values: [String: Double] = [:]
        var histograms: [String: (counts: [Int], sum: Double, count: Int)] = [:]
    }

    private let families = Mutex([String: Family]())
    private let gauges = Mutex([String: @Sendable () -> Double]())

    public init() {}

    public static let latencyBuckets: [Double] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]

    /// Declares a counter; `inc` adds to it.
    public func counter(_ name: String, _ help: String) -> Counter {
        declare(name, Family(kind: .counter, help: help, buckets: []))
        return Counter(registry: self, name: name)
    }

    /// Declares a histogram with `buckets` (upper bounds); `observe` records a value.
    public func histogram(_ name: String, _ help: String, buckets: [Double] = MetricsRegistry.latencyBuckets) -> Histogram {
        declare(name, Family(kind: .histogram, help: help, buckets: buckets.sorted()))
        return Histogram(registry: self, name: name)
    }

    /// Declares a gauge read from `value` at each scrape.
    public func gauge(_ name: String, _ help: String, _ value: @escaping @Sendable () -> Double) {
        declare(name, Family(kind: .gauge, help: help, buckets: []))
        gauges.withLock { $0[name] = value }
    }

    private func declare(_ name: String, _ family: Family) {
        families.withLock { if $0[name] == nil { $0[name] = family } }
    }

    fileprivate func add(_ name: String, labels: [String: String], _ amount: Double) {
        let key = Self.render(labels)
        families.withLock { $0[name]?.values[key, default: 0] += amount }
    }

    fileprivate func observe(_ name: String, labels: [String: String], _ value: Double) {
        let key = Self.render(labels)
        families.withLock { families in
            guard var family = families[name] else { return }
            var entry = family.histograms[key] ?? (Array(repeating: 0, count: family.buckets.count), 0, 0)
            for (index, bound) in family.buckets.enumerated() where value <= bound { entry.counts[index] += 1 }
            entry.sum += value
            entry.count += 1
            family.histograms[key] = entry
            families[name] = family
        }
    }

    /// The exposition text.
    public func render() -> String {
        let readers = gauges.withLock { $0 }
        let gaugeValues = readers.mapValues { $0() }
        return families.withLock { families in
            var out = ""
            for (name, family) in families.sorted(by: { $0.key < $1.key }) {
                out += "# HELP \(name) \(family.help)\n# TYPE \(name) \(family.kind.rawValue)\n"
                switch family.kind {
                case .counter:
                    for (labels, value) in family.values.sorted(by: { $0.key < $1.key }) {
                        out += "\(name)\(labels.isEmpty ? "" : "{\(labels)}") \(Self.number(value))\n"
                    }
                case .gauge:
                    out += "\(name) \(Self.number(gaugeValues[name] ?? 0))\n"
                case .histogram:
                    for (labels, entry) in family.histograms.sorted(by: { $0.key < $1.key }) {
                        let prefix = labels.isEmpty ? "" : labels + ","
                        for (bound, count) in zip(family.buckets, entry.counts) {
                            out += "\(name)_bucket{\(prefix)le=\"\(Self.number(bound))\"} \(count)\n"
                        }
                        out += "\(name)_bucket{\(prefix)le=\"+Inf\"} \(entry.count)\n"
                        out += "\(name)_sum\(labels.isEmpty ? "" : "{\(labels)}") \(Self.number(entry.sum))\n"
                        out += "\(name)_count\(labels.isEmpty ? "" : "{\(labels)}") \(entry.count)\n"
                    }
                }
            }
            return out
        }
    }

    private static func render(_ labels: [String: String]) -> String {
        labels.sorted { $0.key < $1.key }.map { key, value in "\(key)=\"\(escaped(value))\"" }.joined(separator: ",")
    }

    /// A label value as the exposition format writes it; called at every `inc` and `observe`, so
    /// a value with nothing to escape (nearly all) is returned as it is.
    private static func escaped(_ value: String) -> String {
        guard value.utf8.contains(where: { $0 == UInt8(ascii: "\\") || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\n") }) else { return value }
        var out = ""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    private static func number(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : String(value)
    }
}

public struct Counter: Sendable {
    fileprivate let registry: MetricsRegistry
    fileprivate let name: String
    public func inc(_ labels: [String: String] = [:], by amount: Double = 1) { registry.add(name, labels: labels, amount) }
}

public struct Histogram: Sendable {
    fileprivate let registry: MetricsRegistry
    fileprivate let name: String
    public func observe(_ value: Double, _ labels: [String: String] = [:]) { registry.observe(name, labels: labels, value) }
}
