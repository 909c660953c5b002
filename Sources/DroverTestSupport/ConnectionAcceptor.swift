import DroverIO
import Foundation
import Synchronization

/// Accepts connections on a thread of its own and serves each on a thread of its own, up to a
/// cap, and up to a share of it per client address: a connection past either gets `refuse` (a
/// coded answer, not a silent close) and is closed, so the cap bounds threads and memory and no
/// one client takes every place. A test rig's (`SocketHTTPServer`, for peers that write raw or
/// endless bytes): production daemons serve every socket on an `EventLoop`.
final class ConnectionAcceptor: Sendable {
    let listener: Listener
    let name: String
    let maxConnections: Int
    let maxPerClient: Int
    private struct Open {
        var sockets: [Int32: (socket: Socket, client: String)] = [:]
        var perClient: [String: Int] = [:]
    }
    private let open = Mutex(Open())

    /// `maxPerClient`: connections one peer address may hold (nil: the whole cap).
    init(listener: Listener, name: String, maxConnections: Int, maxPerClient: Int? = nil) {
        self.listener = listener
        self.name = name
        self.maxConnections = maxConnections
        self.maxPerClient = min(maxConnections, maxPerClient ?? maxConnections)
    }

    /// Starts accepting. `admitted` runs on the accept thread, in the order connections arrived;
    /// `serve` runs on the connection's thread; the socket is closed after it.
    func start(refuse: @escaping @Sendable (Socket) -> Void, admitted: @escaping @Sendable (Socket) -> Void = { _ in },
                      serve: @escaping @Sendable (Socket) -> Void) {
        let thread = Thread { [self] in
            while let socket = listener.accept() {
                let client = socket.peerAddress
                let taken = open.withLock { open -> Bool in
                    guard open.sockets.count < maxConnections, open.perClient[client, default: 0] < maxPerClient else { return false }
                    open.sockets[socket.fd] = (socket, client)
                    open.perClient[client, default: 0] += 1
                    return true
                }
                guard taken else {
                    refuse(socket)
                    socket.close()
                    continue
                }
                admitted(socket)
                let worker = Thread { [self] in
                    serve(socket)
                    open.withLock { open in
                        open.sockets[socket.fd] = nil
                        open.perClient[client, default: 1] -= 1
                        if open.perClient[client] == 0 { open.perClient[client] = nil }
                    }
                    socket.close()
                }
                worker.name = name + ".connection"
                worker.start()
            }
            // Out of `accept` for good: only now may the number be given to another socket.
            listener.close()
        }
        thread.name = name + ".accept"
        thread.start()
    }

    /// Stops accepting new connections.
    func stopAccepting() { listener.shutdown() }

    var count: Int { open.withLock { $0.sockets.count } }

    /// Ends every open connection (their readers wake with end of stream).
    func shutdownAll() { open.withLock { $0.sockets.values.map(\.socket) }.forEach { $0.shutdown() } }
}
