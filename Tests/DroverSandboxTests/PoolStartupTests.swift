import DroverCore
import DroverIO
import DroverTestSupport
import Foundation
import Testing

/// Issue #27 (7): a pool whose port cannot be bound made its warm sandboxes and its control groups
/// first and left them behind when it gave up.
@Suite struct PoolStartupTests {
    @Test func aPoolThatCannotBindItsPortLeavesNothingBehind() async throws {
        let taken = try Listener(host: "127.0.0.1", port: 0)
        defer { taken.close() }
        let root = NSTemporaryDirectory() + "drover-startup-" + String(UInt64.random(in: 0...UInt64.max), radix: 16)
        defer { try? FileManager.default.removeItem(atPath: root) }
        let pool = try ChildDaemon(
            binary: TestDatabase.droverBinary.path,
            ["sandbox-pool", "--listen", "127.0.0.1:\(taken.port)", "--warm", "2", "--workspace-root", root], environment: ["DROVER_POOL_TOKEN": "t"])
        let status = await pool.wait(timeout: 30)
        #expect(status != nil && status != 0, "it cannot serve: \(pool.log.suffix(500))")
        let left = (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
        #expect(left.filter { $0.hasPrefix("sb_") }.isEmpty, "workspaces left: \(left)")
        // Its control groups (drover-<pool id>) are gone too, where it could make them.
        let poolID = pool.log.split(separator: "\n").compactMap { try? JSONValue.parse(String($0)) }.compactMap { $0["pool"]?.stringValue }.first
        if let poolID {
            let name = "drover-" + String(poolID.map { $0.isLetter || $0.isNumber || $0 == "-" ? $0 : "_" })
            let found = try await Shell.run("find /sys/fs/cgroup -maxdepth 7 -name '\(name)' 2>/dev/null | head -1 | grep -q . && exit 1 || exit 0")
            #expect(found == 0, "\(name) is still in /sys/fs/cgroup")
        }
    }
}
