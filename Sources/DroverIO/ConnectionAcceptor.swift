import Foundation
import Synchronization

/// Accepts connections on a thread of its own and serves each on a thread of its own, up to a
/// cap: a connection past the cap gets `refuse` (a coded answer, not a silent close) and is
/// closed, so the cap bounds threads and memory. Shared by the pool and the API.
public final class ConnectionAcceptor: Sendable {
    let listener: Listener
    let name: String
    let maxConnections: Int
    private let open = Mutex<[Int32: Socket]>([:])

    public init(listener: Listener, name: String, maxConnections: Int) {
        self.listener = listener
        self.name = name
        self.maxConnections = maxConnections
    }

    /// Starts accepting. `serve` runs on the connection's thread; the socket is closed after it.
    public func start(refuse: @escaping @Sendable (Socket) -> Void, serve: @escaping @Sendable (Socket) -> Void) {
        let thread = Thread { [self] in
            while let socket = listener.accept() {
                let admitted = open.withLock { open -> Bool in
                    guard open.count < maxConnections else { return false }
                    open[socket.fd] = socket
                    return true
                }
                guard admitted else {
                    refuse(socket)
                    socket.close()
                    continue
                }
                let worker = Thread { [self] in
                    serve(socket)
                    open.withLock { _ = $0.removeValue(forKey: socket.fd) }
                    socket.close()
                }
                worker.name = name + ".connection"
                worker.start()
            }
        }
        thread.name = name + ".accept"
        thread.start()
    }

    /// Stops accepting new connections.
    public func stopAccepting() { listener.shutdown() }

    public var count: Int { open.withLock { $0.count } }

    /// Ends every open connection (their readers wake with end of stream).
    public func shutdownAll() { open.withLock { Array($0.values) }.forEach { $0.shutdown() } }
}
