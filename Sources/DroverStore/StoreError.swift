import DroverCore
import DroverPostgres

extension DroverError {
    /// Maps a database failure to Drover's stable codes. The SQL API raises SQLSTATE class `DR`
    /// with the code as the first word of the message; connection failures keep their own code.
    init(_ error: PostgresError) {
        switch error.code {
        case .connectionLost, .connectionFailed, .poolUnavailable:
            self.init(.connectionLost, error.message)
            return
        default:
            break
        }
        let code: Code
        switch error.sqlState {
        case "DR001": code = .leaseLost
        case "DR002": code = .notFound
        case "DR003", PostgresError.SQLState.invalidTextRepresentation, PostgresError.SQLState.untranslatableCharacter: code = .invalidPayload
        case "DR004": code = .payloadTooLarge
        case "DR005": code = .unknownEventType
        case "DR006": code = .sessionTerminated
        case "DR007": code = .invalidArgument
        case "DR010": code = .appendOnly
        case "DR011": code = .conflict
        case "DR020": code = .vaultKeyMismatch
        default: code = .database
        }
        let message: String
        if let colon = error.message.firstIndex(of: ":"), error.message[..<colon] == code.rawValue {
            message = String(error.message[error.message.index(after: colon)...].drop(while: { $0 == " " }))
        } else {
            message = error.sqlState.map { "\(error.message) [SQLSTATE \($0)]" } ?? error.message
        }
        self.init(code, message)
    }
}

/// Runs a database call, turning `PostgresError` into `DroverError`.
@discardableResult
func mappingErrors<T>(_ body: () async throws -> T) async throws -> T {
    do {
        return try await body()
    } catch let error as PostgresError {
        throw DroverError(error)
    }
}
