/// The rows of one result, copied out of libpq so that they outlive the `PGresult`.
public struct PostgresRows: Sendable, RandomAccessCollection {
    public let columns: [String]
    let values: [[String?]]
    /// Rows touched by an INSERT, UPDATE or DELETE (libpq's `PQcmdTuples`).
    public let affectedRows: Int

    init(columns: [String], values: [[String?]], affectedRows: Int) {
        self.columns = columns
        self.values = values
        self.affectedRows = affectedRows
    }

    public var startIndex: Int { values.startIndex }
    public var endIndex: Int { values.endIndex }
    public subscript(position: Int) -> PostgresRow { PostgresRow(columns: columns, values: values[position]) }
}

/// One row; columns are read by position in their text form and decoded on demand.
public struct PostgresRow: Sendable {
    public let columns: [String]
    public let values: [String?]

    /// The raw text of column `index`, or nil for SQL NULL.
    public subscript(index: Int) -> String? { values[index] }

    /// Decodes column `index`; NULL is an error.
    public func decode<T: PostgresDecodable>(_ index: Int, as type: T.Type = T.self) throws -> T {
        guard let text = values[index] else {
            throw PostgresError(.decoding, message: "column \(columns[index]) is NULL, expected \(T.self)")
        }
        return try T(postgresText: text)
    }

    /// Decodes column `index`, mapping NULL to nil.
    public func decodeIfPresent<T: PostgresDecodable>(_ index: Int, as type: T.Type = T.self) throws -> T? {
        guard let text = values[index] else { return nil }
        return try T(postgresText: text)
    }
}
