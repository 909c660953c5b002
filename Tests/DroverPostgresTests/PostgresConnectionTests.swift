import DroverIO
import DroverPostgres
import DroverTestSupport
import Foundation
import Testing

@Suite struct PostgresConnectionTests {
    @Test func parametersTravelAsValuesNeverAsSQL() async throws {
        try await TestDatabase.with(migrated: false) { db in
            let conn = try await PostgresConnection.connect(db.conninfo)
            defer { conn.close() }
            let hostile = "'); DROP TABLE x; -- \" \\ ü"
            let row = try await conn.query(
                "SELECT $1::text, $2::int8, $3::bool, $4::float8, $5::text IS NULL, $6::text[]",
                [hostile, Int64.max, true, 2.5, nil, ["a\"b", "c\\d", "e,f", "{g}", "", "ü"]])[0]
            #expect(try row.decode(0, as: String.self) == hostile)
            #expect(try row.decode(1, as: Int64.self) == Int64.max)
            #expect(try row.decode(2, as: Bool.self))
            #expect(try row.decode(3, as: Double.self) == 2.5)
            #expect(try row.decode(4, as: Bool.self))
            #expect(row[5] == #"{"a\"b","c\\d","e,f","{g}","",ü}"#)
        }
    }

    @Test func timestampsRoundTripInUTC() async throws {
        try await TestDatabase.with(migrated: false) { db in
            let conn = try await PostgresConnection.connect(db.conninfo)
            defer { conn.close() }
            let date = Date(timeIntervalSince1970: 1_795_000_123.456789)
            let row = try await conn.query(
                "SELECT $1::timestamptz, extract(epoch FROM $1::timestamptz)::float8, '1969-12-31 23:59:59.5+00'::timestamptz",
                [date])[0]
            let decoded = try row.decode(0, as: Date.self)
            #expect(abs(decoded.timeIntervalSince1970 - date.timeIntervalSince1970) < 0.000_001)
            #expect(abs(try row.decode(1, as: Double.self) - date.timeIntervalSince1970) < 0.000_001)
            #expect(try row.decode(2, as: Date.self).timeIntervalSince1970 == -0.5)
        }
    }

    @Test func serverErrorsCarryTheirSQLState() async throws {
        try await TestDatabase.with(migrated: false) { db in
            let conn = try await PostgresConnection.connect(db.conninfo)
            defer { conn.close() }
            let error = await #expect(throws: PostgresError.self) { try await conn.query("SELECT 1/0") }
            #expect(error?.code == .server)
            #expect(error?.sqlState == "22012")
            // The connection is still usable after a failed statement.
            #expect(try await conn.query("SELECT 41 + 1")[0].decode(0, as: Int.self) == 42)
            #expect(!conn.isBroken)
        }
    }

    @Test func transactionsRollBackOnError() async throws {
        try await TestDatabase.with(migrated: false) { db in
            let conn = try await PostgresConnection.connect(db.conninfo)
            defer { conn.close() }
            try await conn.execute(script: "CREATE TABLE t (v int)")
            await #expect(throws: PostgresError.self) {
                _ = try await conn.transaction { conn in
                    try await conn.query("INSERT INTO t VALUES ($1)", [1])
                    try await conn.query("INSERT INTO t VALUES ($1)", ["not a number"])
                }
            }
            _ = try await conn.transaction { try await $0.query("INSERT INTO t VALUES ($1)", [2]) }
            #expect(try await conn.query("SELECT array_agg(v)::text FROM t")[0][0] == "{2}")
        }
    }

    @Test func aBadConnectionStringFailsClearly() async throws {
        let error = await #expect(throws: PostgresError.self) {
            _ = try await PostgresConnection.connect("postgresql://nobody@127.0.0.1:1/none?connect_timeout=2")
        }
        #expect(error?.code == .connectionFailed)
    }

    @Test func timestampParserHandlesOffsetsAndFractions() throws {
        #expect(try Date(postgresText: "1970-01-01 00:00:00+00").timeIntervalSince1970 == 0)
        #expect(try Date(postgresText: "1970-01-01 01:30:00+01:30").timeIntervalSince1970 == 0)
        #expect(try Date(postgresText: "2000-02-29 12:00:00.25-02").timeIntervalSince1970 == 951_832_800.25)
        #expect(throws: PostgresError.self) { try Date(postgresText: "yesterday") }
    }
}

@Suite struct ConnectionPoolTests {
    @Test func neverOpensMoreThanItsBound() async throws {
        try await TestDatabase.with(migrated: false) { db in
            let pool = db.pool(maxConnections: 3)
            defer { pool.close() }
            let pids = try await withThrowingTaskGroup(of: Int32.self) { group in
                for _ in 0..<24 {
                    group.addTask {
                        try await pool.withConnection { conn in
                            #expect(pool.openConnections <= 3)
                            try await conn.query("SELECT pg_sleep(0.02)")
                            return conn.backendPID
                        }
                    }
                }
                return try await group.reduce(into: Set<Int32>()) { $0.insert($1) }
            }
            #expect(pids.count <= 3)
            #expect(pool.openConnections <= 3)
        }
    }

    @Test func aKilledBackendFailsInFlightWorkThenThePoolRecovers() async throws {
        try await TestDatabase.with(migrated: false) { db in
            let pool = db.pool(maxConnections: 1)
            defer { pool.close() }
            let admin = try await PostgresConnection.connect(db.conninfo)
            defer { admin.close() }
            // In flight: the statement's outcome is unknown, so it fails with connection_lost.
            let victim = try await pool.withConnection { $0.backendPID }
            let slow = Task { try await pool.query("SELECT pg_sleep(30)") }
            try await Polling.until { try await admin.query("SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND wait_event = 'PgSleep'", [victim])[0].decode(0, as: Int.self) == 1 }
            try await admin.query("SELECT pg_terminate_backend($1)", [victim])
            let error = await #expect(throws: PostgresError.self) { _ = try await slow.value }
            #expect(error?.code == .connectionLost)
            // The broken connection was discarded; the next request gets a new backend.
            let idle = try await pool.withConnection { $0 }
            let next = idle.backendPID
            #expect(next != victim)
            // Idle: the loop notices the server ended it, and the pool replaces it before use.
            try await admin.query("SELECT pg_terminate_backend($1)", [next])
            try await Polling.until { idle.isBroken }
            #expect(try await pool.query("SELECT 7")[0].decode(0, as: Int.self) == 7)
            #expect(try await pool.withConnection { $0.backendPID } != next)
        }
    }

    @Test func statementsSentTogetherOnOneConnectionRunInOrder() async throws {
        try await TestDatabase.with(migrated: false) { db in
            let conn = try await PostgresConnection.connect(db.conninfo)
            defer { conn.close() }
            try await conn.execute(script: "CREATE TABLE t (n int)")
            try await withThrowingTaskGroup(of: Void.self) { group in
                for n in 0..<50 { group.addTask { try await conn.query("INSERT INTO t VALUES ($1)", [n]) } }
                try await group.waitForAll()
            }
            #expect(try await conn.query("SELECT count(DISTINCT n) FROM t")[0].decode(0, as: Int.self) == 50)
            // A failing statement answers its own caller only.
            let bad = Task { try await conn.query("SELECT 1/$1::int", [0]) }
            let good = Task { try await conn.query("SELECT $1::int + 1", [1]) }
            await #expect(throws: PostgresError.self) { _ = try await bad.value }
            #expect(try await good.value[0].decode(0, as: Int.self) == 2)
        }
    }

    @Test func aConnectToAnAddressThatNeverAnswersTimesOut() async throws {
        // A loopback listener that never accepts: the kernel completes the handshake and libpq
        // waits for an answer that never comes. The connect must end at connect_timeout, since
        // libpq's non-blocking connect keeps no deadline of its own.
        let silent = try Listener(host: "127.0.0.1", port: 0)
        defer { silent.close() }
        let started = ContinuousClock.now
        let error = await #expect(throws: PostgresError.self) {
            _ = try await PostgresConnection.connect("postgresql://nobody@127.0.0.1:\(silent.port)/none?connect_timeout=1&sslmode=disable")
        }
        #expect(error?.code == .connectionFailed)
        #expect(ContinuousClock.now - started < .seconds(10))
    }
}

@Suite struct PostgresListenerTests {
    @Test func deliversNotificationsAsAnAsyncSequence() async throws {
        try await TestDatabase.with(migrated: false) { db in
            let listener = try PostgresListener(conninfo: db.conninfo, channels: ["drover_test"])
            defer { listener.stop() }
            var iterator = listener.notifications.makeAsyncIterator()
            let first = await iterator.next()
            #expect(first?.isReconnect == true)
            let conn = try await PostgresConnection.connect(db.conninfo)
            defer { conn.close() }
            try await conn.query("SELECT pg_notify($1, $2)", ["drover_test", "payload ✓"])
            let note = await iterator.next()
            #expect(note == PostgresNotification(channel: "drover_test", payload: "payload ✓"))
        }
    }

    @Test func refusesChannelNamesThatAreNotPlainIdentifiers() {
        #expect(throws: PostgresError.self) { _ = try PostgresListener(conninfo: "", channels: ["x; DROP"]) }
    }
}

@Suite struct PostgresListenerReconnectTests {
    @Test func reconnectsAfterItsBackendIsKilledAndKeepsDelivering() async throws {
        try await TestDatabase.with(migrated: false) { db in
            let listener = try PostgresListener(conninfo: db.conninfo, channels: ["drover_again"])
            defer { listener.stop() }
            var iterator = listener.notifications.makeAsyncIterator()
            #expect(await iterator.next()?.isReconnect == true)
            let conn = try await PostgresConnection.connect(db.conninfo)
            defer { conn.close() }
            let killed: Int = try await conn.query(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%'"
            )[0].decode(0)
            #expect(killed == 1)
            // One marker says the connection (and whatever it held) was lost …
            #expect(await iterator.next()?.isDisconnect == true)
            // … the next, "you may have missed something; look for work now".
            #expect(await iterator.next()?.isReconnect == true)
            try await conn.query("SELECT pg_notify($1, $2)", ["drover_again", "after"])
            #expect(await iterator.next() == PostgresNotification(channel: "drover_again", payload: "after"))
        }
    }
}
