import Logging
import PostgresNIO

/// How long one statement, or one transaction, may go without an answer before dreamd gives up on it.
///
/// A task-local value: the daemon sets it from `DREAMD_DB_STATEMENT_TIMEOUT` around its services, and
/// every store call made beneath inherits it.
public enum StatementDeadline {
    @TaskLocal public static var current: Duration = .seconds(30)
}

extension PostgresClient {
    /// Runs `query` on a pooled connection and returns all of its rows.
    ///
    /// Failures (a lost connection, a server error) arrive as PostgresNIO reports them. The deadline
    /// (``StatementDeadline/current``) is for the statement that never gets an answer at all: PostgresNIO
    /// can lose a query written to a connection the server is closing, and with it that connection's
    /// lease, which would pin the caller forever and keep the client from ever shutting down. Past the
    /// deadline the connection is closed, its lease given back, and ``DatabaseAvailability/DeadlineExceeded``
    /// thrown (a "database unavailable" error).
    @discardableResult
    public func rows(_ query: PostgresQuery, logger: Logger, file: String = #fileID, line: Int = #line) async throws -> FetchedRows {
        try await withDeadlinedConnection(logger: logger) { connection in
            FetchedRows(rows: try await connection.query(query, logger: logger, file: file, line: line).collect())
        }
    }

    /// Runs `body` in a transaction on one pooled connection, under the same deadline as ``rows(_:logger:file:line:)``
    /// for the whole transaction. Past it, the connection is closed, which rolls the transaction back.
    /// A failure of `body` is rethrown as itself (the transaction was rolled back) rather than wrapped in
    /// `PostgresTransactionError`, so callers can match on it.
    public func transaction<T: Sendable>(
        logger: Logger, file: String = #fileID, line: Int = #line,
        _ body: @escaping @Sendable (PostgresConnection) async throws -> T
    ) async throws -> T {
        do {
            return try await withDeadlinedConnection(logger: logger) { connection in
                try await connection.withTransaction(logger: logger, file: file, line: line) { try await body($0) }
            }
        } catch let error as PostgresTransactionError {
            if let closureError = error.closureError, error.rollbackError == nil { throw closureError }
            throw error
        }
    }

    /// Runs `body` on one pooled connection under the statement deadline, as ``rows(_:logger:file:line:)``
    /// does: past it, the connection is closed and ``DatabaseAvailability/DeadlineExceeded`` thrown.
    public func withDeadlinedConnection<T: Sendable>(
        logger: Logger, _ body: @escaping @Sendable (PostgresConnection) async throws -> T
    ) async throws -> T {
        let deadline = StatementDeadline.current
        return try await withConnection { connection in
            do {
                return try await DatabaseAvailability.withDeadline(deadline) { try await body(connection) }
            } catch let error as DatabaseAvailability.DeadlineExceeded {
                logger.warning("no answer from the database in time; closing the connection", metadata: ["deadline": "\(deadline)"])
                try? await connection.close()
                throw error
            }
        }
    }
}

/// The rows of one statement, read to the end.
public struct FetchedRows: Sendable {
    public let rows: [PostgresRow]

    /// Every row decoded as the given column types.
    public func decode<each Column: PostgresDecodable>(
        _ columns: (repeat each Column).Type, file: String = #fileID, line: Int = #line
    ) throws -> [(repeat each Column)] {
        try rows.map { try $0.decode(columns, file: file, line: line) }
    }
}

extension PostgresClient {
    /// Runs a prepared statement (parsed and planned once per connection, then only bound and executed)
    /// under the statement deadline, as ``rows(_:logger:file:line:)`` does, and returns its decoded rows.
    public func prepared<Statement: PostgresPreparedStatement>(
        _ statement: Statement, logger: Logger, file: String = #fileID, line: Int = #line
    ) async throws -> [Statement.Row] where Statement.Row: Sendable {
        try await withDeadlinedConnection(logger: logger) { connection in
            var rows: [Statement.Row] = []
            for try await row in try await connection.execute(statement, logger: logger, file: file, line: line) { rows.append(row) }
            return rows
        }
    }
}
