import CLibPQ
import DroverIO
import Foundation
import Synchronization

/// One libpq connection, driven by an event loop in libpq's non-blocking mode.
///
/// Nothing waits on the network: a statement is sent (`PQsendQueryPrepared`, flushed as the socket
/// takes it) and its results are read when epoll says the socket is readable, all on the loop's
/// thread, and the caller's task resumes with them. Every connection of a process shares one loop
/// (`EventLoop.shared()`), so a pool of fifty connections costs one thread, not fifty; the socket stays
/// registered while idle, so a connection the server ended is noticed at once, and a listener's
/// notifications arrive the same way.
///
/// State marked loop-confined is only touched on the loop's thread; `@unchecked Sendable` rests on
/// that rule. Statements sent concurrently on one connection run one after another, in order.
public final class PostgresConnection: @unchecked Sendable {
    let loop: EventLoop
    /// The server process id serving this connection (for `pg_terminate_backend` in tests).
    public let backendPID: Int32
    private let broken = Atomic<Bool>(false)

    // Loop-confined.
    private var conn: OpaquePointer?
    private var socket: Int32
    /// Prepared statement names by SQL text.
    private var prepared: [String: String] = [:]
    private var queued: [Request] = []
    private var inFlight: InFlight?
    private var closedWaiters: [CheckedContinuation<Void, Never>] = []
    /// A listener's: each notification, on the loop.
    var onNotification: ((PostgresNotification) -> Void)?

    private struct Request {
        var sql: String
        /// nil: a script, sent with the simple query protocol (several statements, no parameters).
        var params: [String?]?
        var continuation: CheckedContinuation<PostgresRows, any Error>
    }

    private struct InFlight {
        var request: Request
        /// The statement being prepared before the request's execution, by its name.
        var preparing: String?
        var firstError: PostgresError?
        var rows: PostgresRows?
    }

    private init(conn: OpaquePointer, loop: EventLoop) {
        self.conn = conn
        self.loop = loop
        self.socket = PQsocket(conn)
        self.backendPID = PQbackendPID(conn)
    }

    deinit {
        // Only a connection never closed gets here (its handler holds it weakly): hand libpq's
        // handle to the loop, which stops watching the socket before freeing it.
        guard let conn else { return }
        let socket = self.socket
        let handle = Handle(conn)
        loop.execute { [loop] in
            loop.unregister(socket)
            PQfinish(handle.conn)
        }
    }

    /// Opens a connection (`conninfo` is a libpq keyword string or a `postgresql://` URL) and sets
    /// UTC and ISO dates so that timestamps decode the same everywhere. A host name is resolved
    /// by libpq on the loop; `hostaddr` avoids the lookup.
    public static func connect(_ conninfo: String, on loop: EventLoop? = nil) async throws -> PostgresConnection {
        let loop = try loop ?? EventLoop.shared()
        let connection: PostgresConnection = try await withCheckedThrowingContinuation { continuation in
            loop.execute { Connecting.start(conninfo, loop: loop, continuation) }
        }
        do {
            try await connection.execute(script: "SET TimeZone = 'UTC'; SET DateStyle = 'ISO'")
        } catch {
            connection.close()
            throw error
        }
        return connection
    }

    /// Whether the connection is closed or was lost; a broken connection is never reused.
    public var isBroken: Bool { broken.load(ordering: .acquiring) }

    /// Runs one parameterised statement as a prepared statement (prepared once per connection).
    /// Values are always sent as parameters, never spliced into the SQL.
    @discardableResult
    public func query(_ sql: String, _ params: [(any PostgresEncodable)?] = []) async throws -> PostgresRows {
        try await submit(sql, params: params.map { $0?.postgresText })
    }

    /// Runs a script of several statements with the simple query protocol, no parameters
    /// (migrations). Stops at the first failing statement.
    public func execute(script: String) async throws {
        _ = try await submit(script, params: nil)
    }

    /// Runs `body` inside BEGIN … COMMIT, rolling back when it throws.
    public func transaction<T>(_ body: (PostgresConnection) async throws -> T) async throws -> T {
        try await execute(script: "BEGIN")
        do {
            let value = try await body(self)
            try await execute(script: "COMMIT")
            return value
        } catch {
            if !isBroken { try? await execute(script: "ROLLBACK") }
            throw error
        }
    }

    /// Closes the connection; statements sent after it fail with `connection_lost`.
    public func close() {
        broken.store(true, ordering: .releasing)
        loop.execute { self.end(PostgresError(.connectionLost, message: "connection is closed")) }
    }

    /// Hands each notification to `handler`, on the loop (a listener's connection).
    func listen(_ handler: @escaping @Sendable (PostgresNotification) -> Void) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            loop.execute {
                self.onNotification = handler
                continuation.resume()
            }
        }
    }

    /// Returns once the connection is closed or lost.
    func waitUntilClosed() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            loop.execute {
                if self.conn == nil { continuation.resume() } else { self.closedWaiters.append(continuation) }
            }
        }
    }

    private func submit(_ sql: String, params: [String?]?) async throws -> PostgresRows {
        try await withCheckedThrowingContinuation { continuation in
            loop.execute { self.enqueue(Request(sql: sql, params: params, continuation: continuation)) }
        }
    }

    // MARK: - On the loop

    /// Starts watching the socket once the connection is up.
    private func attach() {
        loop.register(socket, .readable) { [weak self] events in self?.handle(events) }
    }

    private func enqueue(_ request: Request) {
        guard conn != nil else {
            request.continuation.resume(throwing: PostgresError(.connectionLost, message: "connection is closed"))
            return
        }
        queued.append(request)
        if inFlight == nil { sendNext() }
    }

    private func sendNext() {
        guard inFlight == nil, !queued.isEmpty, let conn else { return }
        let request = queued.removeFirst()
        guard let params = request.params else {
            inFlight = InFlight(request: request)
            send(PQsendQuery(conn, request.sql))
            return
        }
        if let name = prepared[request.sql] {
            inFlight = InFlight(request: request)
            sendExecute(name, params, conn)
        } else {
            let name = "drover_\(prepared.count)"
            inFlight = InFlight(request: request, preparing: name)
            send(PQsendPrepare(conn, name, request.sql, Int32(params.count), nil))
        }
    }

    private func sendExecute(_ name: String, _ params: [String?], _ conn: OpaquePointer) {
        let cStrings = params.map { $0.map { strdup($0) } ?? nil }
        defer { cStrings.forEach { free($0) } }
        let sent = cStrings.withUnsafeBufferPointer { buffer in
            buffer.baseAddress!.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: max(buffer.count, 1)) {
                PQsendQueryPrepared(conn, name, Int32(params.count), params.isEmpty ? nil : $0, nil, nil, 0)
            }
        }
        send(sent)
    }

    /// After a `PQsend…`: flushes what the socket takes now, and watches for room for the rest.
    private func send(_ accepted: Int32) {
        guard accepted == 1 else { return lose() }
        flush()
    }

    private func flush() {
        guard let conn else { return }
        switch PQflush(conn) {
        case 0: loop.modify(socket, .readable)
        case 1: loop.modify(socket, [.readable, .writable])
        default: lose()
        }
    }

    private func handle(_ events: EventLoop.Events) {
        guard let conn else { return }
        if events.contains(.writable) { flush() }
        guard events.wantsRead, self.conn != nil else { return }
        guard PQconsumeInput(conn) == 1 else { return lose() }
        while let notify = PQnotifies(conn) {
            let note = PostgresNotification(channel: String(cString: notify.pointee.relname), payload: String(cString: notify.pointee.extra))
            PQfreemem(notify)
            onNotification?(note)
        }
        while self.conn != nil, inFlight != nil, PQisBusy(conn) == 0 {
            guard let result = PQgetResult(conn) else {
                finishCommand(conn)
                continue
            }
            take(result, conn)
        }
        if self.conn != nil, PQstatus(conn) != CONNECTION_OK { lose() }
    }

    /// One result of the command in flight: rows, or its first error.
    private func take(_ result: OpaquePointer, _ conn: OpaquePointer) {
        defer { PQclear(result) }
        switch PQresultStatus(result) {
        case PGRES_COMMAND_OK, PGRES_EMPTY_QUERY:
            inFlight?.rows = PostgresRows(columns: [], values: [], affectedRows: Self.affected(result))
        case PGRES_TUPLES_OK:
            inFlight?.rows = Self.copyRows(result)
        default:
            func field(_ code: Int32) -> String? { PQresultErrorField(result, code).map { String(cString: $0) } }
            let sqlState = field(DroverPGDiagSQLState)
            let error = PostgresError(
                sqlState == PostgresError.SQLState.adminShutdown ? .connectionLost : .server,
                sqlState: sqlState,
                message: field(DroverPGDiagMessagePrimary) ?? String(cString: PQresultErrorMessage(result)),
                detail: field(DroverPGDiagMessageDetail), hint: field(DroverPGDiagMessageHint))
            if sqlState == PostgresError.SQLState.adminShutdown { broken.store(true, ordering: .releasing) }
            if inFlight?.firstError == nil { inFlight?.firstError = error }
        }
    }

    /// The command in flight has no more results: a prepared statement goes on to its execution,
    /// anything else answers its caller.
    private func finishCommand(_ conn: OpaquePointer) {
        guard let current = inFlight else { return }
        if let name = current.preparing, current.firstError == nil, let params = current.request.params {
            prepared[current.request.sql] = name
            inFlight = InFlight(request: current.request)
            sendExecute(name, params, conn)
            return
        }
        inFlight = nil
        if let error = current.firstError {
            current.request.continuation.resume(throwing: error)
        } else {
            current.request.continuation.resume(returning: current.rows ?? PostgresRows(columns: [], values: [], affectedRows: 0))
        }
        sendNext()
    }

    /// The connection broke: everything waiting on it fails with libpq's reason.
    private func lose() {
        let message = conn.map { String(cString: PQerrorMessage($0)).trimmingCharacters(in: .whitespacesAndNewlines) } ?? ""
        end(PostgresError(.connectionLost, message: message.isEmpty ? "connection lost" : message))
    }

    /// Stops watching the socket, frees libpq's handle, and fails what was waiting.
    private func end(_ error: PostgresError) {
        broken.store(true, ordering: .releasing)
        guard let conn else { return }
        loop.unregister(socket)
        PQfinish(conn)
        self.conn = nil
        let waiting = (inFlight.map { [$0.request] } ?? []) + queued
        inFlight = nil
        queued = []
        waiting.forEach { $0.continuation.resume(throwing: error) }
        let waiters = closedWaiters
        closedWaiters = []
        waiters.forEach { $0.resume() }
    }

    private static func affected(_ result: OpaquePointer) -> Int {
        Int(String(cString: PQcmdTuples(result))) ?? 0
    }

    private static func copyRows(_ result: OpaquePointer) -> PostgresRows {
        let rowCount = Int(PQntuples(result))
        let columnCount = Int(PQnfields(result))
        let columns = (0..<columnCount).map { String(cString: PQfname(result, Int32($0))) }
        var values: [[String?]] = []
        values.reserveCapacity(rowCount)
        for row in 0..<rowCount {
            var rowValues: [String?] = []
            rowValues.reserveCapacity(columnCount)
            for column in 0..<columnCount {
                if PQgetisnull(result, Int32(row), Int32(column)) == 1 {
                    rowValues.append(nil)
                } else {
                    rowValues.append(String(cString: PQgetvalue(result, Int32(row), Int32(column))))
                }
            }
            values.append(rowValues)
        }
        return PostgresRows(columns: columns, values: values, affectedRows: Self.affected(result))
    }

    /// libpq's handle, handed to the loop from a `deinit`.
    private final class Handle: @unchecked Sendable {
        let conn: OpaquePointer
        init(_ conn: OpaquePointer) { self.conn = conn }
    }

    /// A connection being opened: `PQconnectPoll` driven by the socket's readiness, with the
    /// connection string's `connect_timeout` (30 s when it names none) as its deadline, since
    /// libpq's non-blocking connect keeps none of its own. Loop-confined.
    private final class Connecting {
        let loop: EventLoop
        var conn: OpaquePointer?
        var socket: Int32 = -1
        let continuation: CheckedContinuation<PostgresConnection, any Error>

        private init(_ conn: OpaquePointer, loop: EventLoop, _ continuation: CheckedContinuation<PostgresConnection, any Error>) {
            self.conn = conn
            self.loop = loop
            self.continuation = continuation
        }

        static func start(_ conninfo: String, loop: EventLoop, _ continuation: CheckedContinuation<PostgresConnection, any Error>) {
            guard let conn = PQconnectStart(conninfo) else {
                return continuation.resume(throwing: PostgresError(.connectionFailed, message: "libpq could not allocate a connection"))
            }
            guard PQstatus(conn) != CONNECTION_BAD else {
                let error = failure(conn)
                PQfinish(conn)
                return continuation.resume(throwing: error)
            }
            PQsetNoticeProcessor(conn, { _, _ in }, nil)
            let attempt = Connecting(conn, loop: loop, continuation)
            loop.schedule(after: .seconds(timeout(conn))) { [weak attempt] in
                attempt?.fail(PostgresError(.connectionFailed, message: "timeout expired"))
            }
            attempt.watch(.writable)
        }

        /// Waits for the readiness libpq asked for, on whatever socket it now uses (a failed
        /// attempt at one address closes its socket and opens another).
        private func watch(_ events: EventLoop.Events) {
            guard let conn else { return }
            if socket >= 0 { loop.unregister(socket) }
            socket = PQsocket(conn)
            guard socket >= 0 else { return fail(Connecting.failure(conn)) }
            loop.register(socket, events) { [self] _ in step() }
        }

        private func step() {
            guard let conn else { return }
            switch PQconnectPoll(conn) {
            case PGRES_POLLING_READING: watch(.readable)
            case PGRES_POLLING_WRITING: watch(.writable)
            case PGRES_POLLING_OK:
                loop.unregister(socket)
                self.conn = nil
                guard PQsetnonblocking(conn, 1) == 0 else {
                    let error = Connecting.failure(conn)
                    PQfinish(conn)
                    return continuation.resume(throwing: error)
                }
                let connection = PostgresConnection(conn: conn, loop: loop)
                connection.attach()
                continuation.resume(returning: connection)
            default:
                fail(Connecting.failure(conn))
            }
        }

        private func fail(_ error: PostgresError) {
            guard let conn else { return }
            if socket >= 0 { loop.unregister(socket) }
            PQfinish(conn)
            self.conn = nil
            continuation.resume(throwing: error)
        }

        static func failure(_ conn: OpaquePointer) -> PostgresError {
            let message = String(cString: PQerrorMessage(conn)).trimmingCharacters(in: .whitespacesAndNewlines)
            return PostgresError(.connectionFailed, message: message.isEmpty ? "connection failed" : message)
        }

        /// The connection string's `connect_timeout` in seconds, or 30.
        static func timeout(_ conn: OpaquePointer) -> Int {
            guard let options = PQconninfo(conn) else { return 30 }
            defer { PQconninfoFree(options) }
            var option = options
            while let keyword = option.pointee.keyword {
                if String(cString: keyword) == "connect_timeout", let value = option.pointee.val,
                   let seconds = Int(String(cString: value)), seconds > 0 {
                    return seconds
                }
                option += 1
            }
            return 30
        }
    }
}
