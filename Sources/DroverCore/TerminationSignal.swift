import Dispatch
import Foundation

/// Waits for SIGTERM or SIGINT through dispatch signal sources. (On Linux, libdispatch installs
/// its own handler, so the signals are not set to SIG_IGN, which children would inherit.)
public enum TerminationSignal {
    /// Returns the number of the first SIGTERM or SIGINT received.
    public static func wait() async -> Int32 {
        let (stream, continuation) = AsyncStream.makeStream(of: Int32.self)
        let sources = [SIGTERM, SIGINT].map { number in
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { continuation.yield(number) }
            source.resume()
            return source
        }
        defer { sources.forEach { $0.cancel() } }
        for await number in stream { return number }
        return SIGTERM
    }
}
