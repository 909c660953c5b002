import CLibPQ
import Dispatch
import Foundation

/// One libpq connection.
///
/// libpq blocks, so every call runs on the connection's own serial dispatch queue and the async
/// API resumes the caller when it is done: Swift's cooperative threads never wait on the network.
/// The `PGconn` is touched only on that queue, which is what makes the type safe to share.
public final class PostgresConnection: @unchecked Sendable {
    private let queue: DispatchQueue
    private var conn: OpaquePointer?
    /// Prepared statement names by SQL text; confined to `queue`.
    private var prepared: [String: String] = [:]
    /// Set on `queue` when libpq reports the connection dead; read by the pool after each use.
    private var broken = false

    private init(conn: OpaquePointer, label: String) {
        self.conn = conn
        self.queue = DispatchQueue(label: label)
    }

    deinit {
        if let conn { PQfinish(conn) }
    }

    /// Opens a connection (`conninfo` is a libpq keyword string or a `postgresql://` URL) and sets
    /// UTC and ISO dates so that timestamps decode the same everywhere.
    public static func connect(_ conninfo: String, label: String = "drover.postgres") async throws -> PostgresConnection {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(with: Result { try connectBlocking(conninfo, label: label) })
            }
        }
    }

    static func connectBlocking(_ conninfo: String, label: String) throws -> PostgresConnection {
        guard let conn = PQconnectdb(conninfo) else {
            throw PostgresError(.connectionFailed, message: "libpq could not allocate a connection")
        }
        guard PQstatus(conn) == CONNECTION_OK else {
            let message = String(cString: PQerrorMessage(conn)).trimmingCharacters(in: .whitespacesAndNewlines)
            PQfinish(conn)
            throw PostgresError(.connectionFailed, message: message)
        }
        PQsetNoticeProcessor(conn, { _, _ in }, nil)
        let connection = PostgresConnection(conn: conn, label: label)
        _ = try connection.runBlocking("SET TimeZone = 'UTC'; SET DateStyle = 'ISO'", params: nil)
        return connection
    }

    /// Whether libpq has reported the connection dead; a broken connection is never reused.
    public var isBroken: Bool { queue.sync { broken || conn.map { PQstatus($0) != CONNECTION_OK } ?? true } }

    /// The server process id serving this connection (for `pg_terminate_backend` in tests).
    public var backendPID: Int32 { queue.sync { conn.map { PQbackendPID($0) } ?? 0 } }

    /// Runs one parameterised statement as a prepared statement (prepared once per connection).
    /// Values are always sent as parameters, never spliced into the SQL.
    @discardableResult
    public func query(_ sql: String, _ params: [(any PostgresEncodable)?] = []) async throws -> PostgresRows {
        let texts = params.map { $0?.postgresText }
        return try await onQueue { try self.runBlocking(sql, params: texts) }
    }

    /// Runs a script of several statements with the simple query protocol, no parameters
    /// (migrations). Stops at the first failing statement.
    public func execute(script: String) async throws {
        try await onQueue { _ = try self.runScriptBlocking(script) }
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

    /// Closes the connection; later calls fail with `connection_lost`.
    public func close() {
        queue.sync {
            if let conn { PQfinish(conn) }
            conn = nil
            broken = true
        }
    }

    private func onQueue<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.async { continuation.resume(with: Result { try work() }) }
        }
    }

    // MARK: - Blocking work, on `queue` only

    private func liveConn() throws -> OpaquePointer {
        guard let conn, !broken else {
            throw PostgresError(.connectionLost, message: "connection is closed")
        }
        return conn
    }

    private func runBlocking(_ sql: String, params: [String?]?) throws -> PostgresRows {
        let conn = try liveConn()
        guard let params else { return try runScriptBlocking(sql) }
        let name: String
        if let existing = prepared[sql] {
            name = existing
        } else {
            name = "drover_\(prepared.count)"
            try consume(PQprepare(conn, name, sql, Int32(params.count), nil), conn)
            prepared[sql] = name
        }
        let cStrings = params.map { $0.map { strdup($0) } ?? nil }
        defer { cStrings.forEach { free($0) } }
        let result = cStrings.withUnsafeBufferPointer { buffer in
            buffer.baseAddress!.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: max(buffer.count, 1)) {
                PQexecPrepared(conn, name, Int32(params.count), params.isEmpty ? nil : $0, nil, nil, 0)
            }
        }
        return try consume(result, conn)
    }

    private func runScriptBlocking(_ script: String) throws -> PostgresRows {
        let conn = try liveConn()
        return try consume(PQexec(conn, script), conn)
    }

    /// Turns a `PGresult` into rows or an error and frees it.
    @discardableResult
    private func consume(_ result: OpaquePointer?, _ conn: OpaquePointer) throws -> PostgresRows {
        guard let result else { throw lost(conn) }
        defer { PQclear(result) }
        switch PQresultStatus(result) {
        case PGRES_COMMAND_OK, PGRES_EMPTY_QUERY:
            return PostgresRows(columns: [], values: [], affectedRows: Self.affected(result))
        case PGRES_TUPLES_OK:
            return Self.copyRows(result)
        default:
            if PQstatus(conn) != CONNECTION_OK { throw lost(conn) }
            func field(_ code: Int32) -> String? { PQresultErrorField(result, code).map { String(cString: $0) } }
            let sqlState = field(DroverPGDiagSQLState)
            if sqlState == PostgresError.SQLState.adminShutdown { broken = true }
            throw PostgresError(
                sqlState == PostgresError.SQLState.adminShutdown ? .connectionLost : .server,
                sqlState: sqlState,
                message: field(DroverPGDiagMessagePrimary) ?? String(cString: PQresultErrorMessage(result)),
                detail: field(DroverPGDiagMessageDetail), hint: field(DroverPGDiagMessageHint))
        }
    }

    private func lost(_ conn: OpaquePointer) -> PostgresError {
        broken = true
        let message = String(cString: PQerrorMessage(conn)).trimmingCharacters(in: .whitespacesAndNewlines)
        return PostgresError(.connectionLost, message: message.isEmpty ? "connection lost" : message)
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
}
