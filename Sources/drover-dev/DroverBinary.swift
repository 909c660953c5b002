import Foundation

/// The `drover` installed beside this binary: the daemons (api, harness, sandbox-pool) the rigs
/// start are the production ones, not a copy linked into the rig.
enum DroverBinary {
    static var path: String {
        URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent().appendingPathComponent("drover").path
    }
}
