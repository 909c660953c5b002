import DroverCore
import DroverIO
import Foundation
import Synchronization
import Testing

/// Issue #27: the harness's connection to a pool belongs to an event loop. Its requests were
/// written with a blocking `send` from the caller's task, so a pool that stopped reading held
/// Swift's cooperative threads (two, on two cores) and with them every task of the process.
@Suite struct PoolClientTests {
    @Test func aPoolThatStopsReadingHoldsUpNoThread() async throws {
        // A "pool" that accepts and never reads: the kernel's buffers fill, then nothing moves.
        let silent = try Listener(host: "127.0.0.1", port: 0)
        defer { silent.close() }
        let client = try await PoolClient.connect("127.0.0.1:\(silent.port)", token: nil)
        defer { client.close() }
        let big = JSONValue.string(String(repeating: "x", count: 2 << 20))
        let started = ContinuousClock.now
        // Meanwhile, a task that should tick every 20 ms.
        let ticks = Mutex(0)
        let ticker = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(20))
                ticks.withLock { $0 += 1 }
            }
        }
        let outcomes = await withTaskGroup(of: String.self) { group in
            for _ in 0..<8 {
                group.addTask {
                    do {
                        _ = try await client.request("put_file", ["data_base64": big], deadline: 1)
                        return "answered"
                    } catch let failure as PoolProtocol.Failure {
                        return failure.code.rawValue
                    } catch {
                        return "\(error)"
                    }
                }
            }
            return await group.reduce(into: [String]()) { $0.append($1) }
        }
        ticker.cancel()
        #expect(outcomes == Array(repeating: "timeout", count: 8), "\(outcomes)")
        #expect(ContinuousClock.now - started < .seconds(60), "with the old client they never ended")
        // About fifty ticks in the second the requests waited; a blocked cooperative pool gives none
        // (and the requests never time out: their deadlines are tasks too).
        #expect(ticks.withLock { $0 } >= 10, "\(ticks.withLock { $0 }) ticks")
    }
}
