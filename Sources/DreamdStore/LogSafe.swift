import PostgresNIO

/// Describes errors for log lines without data that may be secret.
///
/// PostgreSQL's `detail` can quote a whole failing row (a subscription's signing secret included),
/// and PostgresNIO's debug description adds the query and its binds: both are left out here.
public enum LogSafe {
    public static func describe(_ error: any Error) -> String {
        guard let error = error as? PSQLError else { return String(reflecting: error) }
        var parts = ["PSQLError(\(error.code))"]
        if let state = error.serverInfo?[.sqlState] { parts.append("sqlState: \(state)") }
        if let message = error.serverInfo?[.message] { parts.append("message: \(message)") }
        return parts.joined(separator: ", ")
    }
}
