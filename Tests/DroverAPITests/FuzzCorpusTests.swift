import DroverTestSupport
import Foundation
import Testing

/// Every fuzz corpus and regression input (Tests/fuzz/, among them the `-2` chunk size that trapped
/// `drover api` and the JSON number that changed at every round trip) through the plainly built
/// `drover-fuzz`, whose targets trap when an invariant breaks. `scripts/fuzz.sh` runs the same
/// targets under libFuzzer and AddressSanitizer.
@Suite struct FuzzCorpusTests {
    @Test func everyCorpusAndRegressionInputPasses() async throws {
        let binary = TestDatabase.droverBinary.deletingLastPathComponent().appendingPathComponent("drover-fuzz").path
        let fuzz = TestDatabase.packageRoot.appendingPathComponent("Tests/fuzz").path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["replay", fuzz + "/corpus", fuzz + "/regressions"]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "\(text)")
        let count = Int(text.split(separator: " ").dropFirst().first ?? "") ?? 0
        #expect(count >= 30, "\(text)")
    }
}
