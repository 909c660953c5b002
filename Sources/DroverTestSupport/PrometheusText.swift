import DroverCore
import DroverModel
import Foundation

/// A strict reader of the Prometheus text format (0.0.4) for tests: every line must be a HELP or
/// TYPE comment or a well-formed sample of a declared family.
public struct PrometheusText: Sendable {
    public struct Sample: Sendable, Equatable {
        public var name: String
        public var labels: [String: String]
        public var value: Double
    }

    public var samples: [Sample]
    public var types: [String: String]

    public init(_ text: String) throws {
        var samples: [Sample] = []
        var types: [String: String] = [:]
        var helped = Set<String>()
        for line in text.split(separator: "\n").map(String.init) {
            if line.hasPrefix("# HELP ") {
                helped.insert(String(line.dropFirst(7).split(separator: " ")[0]))
                continue
            }
            if line.hasPrefix("# TYPE ") {
                let parts = line.dropFirst(7).split(separator: " ")
                guard parts.count == 2, ["counter", "gauge", "histogram"].contains(parts[1]) else { throw Self.bad(line) }
                types[String(parts[0])] = String(parts[1])
                continue
            }
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { throw Self.bad(line) }
            let series = String(line[..<space])
            var name = series
            var labels: [String: String] = [:]
            if let brace = series.firstIndex(of: "{") {
                guard series.hasSuffix("}") else { throw Self.bad(line) }
                name = String(series[..<brace])
                let body = series[series.index(after: brace)..<series.index(before: series.endIndex)]
                for pair in body.split(separator: ",") {
                    guard let equals = pair.firstIndex(of: "="), pair[pair.index(after: equals)...].hasPrefix("\""), pair.hasSuffix("\"") else {
                        throw Self.bad(line)
                    }
                    labels[String(pair[..<equals])] = String(pair[pair.index(equals, offsetBy: 2)..<pair.index(before: pair.endIndex)])
                }
            }
            let family = ["_bucket", "_sum", "_count"].reduce(name) { $0.hasSuffix($1) && types[String($0.dropLast($1.count))] == "histogram" ? String($0.dropLast($1.count)) : $0 }
            guard types[family] != nil, helped.contains(family), name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) else { throw Self.bad(line) }
            samples.append(Sample(name: name, labels: labels, value: value))
        }
        self.samples = samples
        self.types = types
        try checkHistograms()
    }

    /// The value of the series with exactly these labels, if present.
    public func value(_ name: String, _ labels: [String: String] = [:]) -> Double? {
        samples.first { $0.name == name && $0.labels == labels }?.value
    }

    private func checkHistograms() throws {
        for (family, type) in types where type == "histogram" {
            let buckets = samples.filter { $0.name == family + "_bucket" }
            var groups: [[String: String]: [(Double, Double)]] = [:]
            for bucket in buckets {
                var key = bucket.labels
                let bound = key.removeValue(forKey: "le") == "+Inf" ? Double.infinity : Double(bucket.labels["le"] ?? "") ?? .nan
                groups[key, default: []].append((bound, bucket.value))
            }
            for (labels, values) in groups {
                let sorted = values.sorted { $0.0 < $1.0 }
                guard zip(sorted, sorted.dropFirst()).allSatisfy({ $0.1 <= $1.1 }), sorted.last?.0 == .infinity,
                      sorted.last?.1 == value(family + "_count", labels) else {
                    throw DroverError(.invalidArgument, "histogram \(family) \(labels) is not cumulative up to +Inf = _count")
                }
            }
        }
    }

    private static func bad(_ line: String) -> DroverError { DroverError(.invalidArgument, "not exposition format: \(line)") }

    /// GETs `path` from `address`; returns status and body.
    public static func get(_ address: String, _ path: String) async throws -> (Int, String) {
        let (head, body) = try await HTTPClient().fetch(HTTPRequest(url: "http://\(address)\(path)", method: "GET"))
        return (head.status, String(decoding: body, as: UTF8.self))
    }
}
