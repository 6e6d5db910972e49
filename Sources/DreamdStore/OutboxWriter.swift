import DreamdCore
import Foundation
import Logging
import PostgresNIO

/// Writes outgoing events to the `events` outbox inside the caller's transaction.
enum OutboxWriter {
    /// `job.succeeded`, `job.failed` or `job.cancelled` for a job that just became final.
    static func jobFinished(_ job: Job, on connection: PostgresConnection, logger: Logger) async throws {
        guard job.state.isFinal else { return }
        try await write(type: "job.\(job.state.rawValue)", data: try DreamdJSON.value(job), on: connection, logger: logger)
    }

    /// Inserts one event with payload `{"type", "timestamp", "data"}`.
    static func write(type: String, data: JSONValue, on connection: PostgresConnection, logger: Logger) async throws {
        let id = UUID()
        let payload: JSONValue = [
            "type": .string(type),
            "timestamp": .string(DreamdJSON.formatDate(Date())),
            "data": data,
        ]
        try await connection.query("""
            INSERT INTO events (id, type, payload) VALUES (\(id), \(type), \(try DreamdJSON.string(payload))::jsonb)
            """, logger: logger)
    }
}
