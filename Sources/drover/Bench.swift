struct BenchCommand: Command { static let name = "bench"; static let summary = "benchmarks"; static let help = ""; static func run(_ arguments: Arguments) async throws {} }
