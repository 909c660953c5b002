import Foundation

#if DROVER_LIBFUZZER
import CDroverFuzz

/// libFuzzer's entry (the binary `scripts/fuzz.sh` builds with `-sanitize=fuzzer`): the target is
/// named by `DROVER_FUZZ_TARGET`.
private let selected: FuzzTarget = {
    let name = ProcessInfo.processInfo.environment["DROVER_FUZZ_TARGET"] ?? ""
    guard let target = FuzzTarget.named(name) else {
        fatalError("set DROVER_FUZZ_TARGET to one of: \(FuzzTarget.all.map(\.name).joined(separator: ", "))")
    }
    return target
}()

private func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    selected.run(data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? [])
    return 0
}
#endif

/// Built plainly, replays corpus and regression files through the targets, so that every crash
/// once found stays fixed (`make test` runs it). Built by `scripts/fuzz.sh` with libFuzzer, hands
/// the command line to libFuzzer's driver.
@main struct FuzzMain {
    static let help = """
        usage: drover-fuzz replay DIR…   run every file under DIR/<target>/ through its target
               drover-fuzz list          the targets

        A test rig, not part of the drover binary. scripts/fuzz.sh builds the same targets with
        libFuzzer (-sanitize=fuzzer) and runs each over Tests/fuzz/corpus and Tests/fuzz/regressions; see
        docs/guarantees.md.
        """

    static func main() {
        #if DROVER_LIBFUZZER
        var argc = CommandLine.argc
        var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv, fuzzOneInput))
        #else
        let arguments = Array(CommandLine.arguments.dropFirst())
        switch arguments.first {
        case "list":
            for target in FuzzTarget.all { print("\(target.name)\t\(target.summary)") }
        case "replay" where arguments.count >= 2:
            var total = 0
            for root in arguments.dropFirst() {
                for target in FuzzTarget.all {
                    let folder = URL(fileURLWithPath: root).appendingPathComponent(target.name)
                    let files = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
                    for file in files.sorted() {
                        guard let data = FileManager.default.contents(atPath: folder.appendingPathComponent(file).path) else { continue }
                        target.run(Array(data))
                        total += 1
                    }
                }
            }
            print("replayed \(total) inputs through \(FuzzTarget.all.count) targets")
        default:
            print(help)
            exit(arguments.first == "--help" || arguments.first == "-h" ? 0 : 2)
        }
        #endif
    }
}
