import DreamdCore
import Foundation
import Logging
import PostgresNIO

/// Webhook deliveries in PostgreSQL: the delivery log for the API, and the queue the delivery
/// workers drain (`DeliveryStore+Queue.swift`).
///
/// Deliveries are created by the `events_fan_out` trigger in the transaction that writes the event,
/// and by redelivery and recovery here. A redelivery is a new row (`redelivery_of` = the row it
/// repeats) for the same event, so its `webhook-id` is the same and the old row's log stays intact.
public struct DeliveryStore: Sendable {
    public let client: PostgresClient
    public let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// Filters of `GET /v1/deliveries`.
    public struct ListFilter: Sendable {
        public var subscriptionID: UUID?
        public var eventID: UUID?
        public var states: [DeliveryState] = []
        public var limit: Int = 50
        public var cursor: JobCursor?

        public init() {}
    }

    /// A page of deliveries, newest first, and the cursor of the next page if there is one.
    public func list(_ filter: ListFilter) async throws -> (deliveries: [Delivery], next: JobCursor?) {
        var conditions: [String] = []
        var binds = PostgresBindings()
        func bind<T: PostgresEncodable>(_ value: T) throws -> String {
            try binds.append(value)
            return "$\(binds.count)"
        }
        if let subscriptionID = filter.subscriptionID { conditions.append("subscription_id = \(try bind(subscriptionID))") }
        if let eventID = filter.eventID { conditions.append("event_id = \(try bind(eventID))") }
        if !filter.states.isEmpty { conditions.append("state = ANY(\(try bind(filter.states.map(\.rawValue)))::text[])") }
        if let cursor = filter.cursor {
            conditions.append("(created_at, id) < (timestamptz 'epoch' + \(try bind(cursor.createdAtMicros)) * interval '1 microsecond', \(try bind(cursor.id)))")
        }
        let whereClause = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")
        let sql = """
            SELECT \(DeliveryColumns.list()), (extract(epoch FROM created_at) * 1000000)::int8
            FROM deliveries \(whereClause) ORDER BY created_at DESC, id DESC LIMIT \(try bind(filter.limit + 1))
            """
        let rows = try await client.rows(PostgresQuery(unsafeSQL: sql, binds: binds), logger: logger).rows
        var deliveries: [Delivery] = []
        var next: JobCursor?
        for (index, row) in rows.enumerated() {
            if index == filter.limit {
                let micros = try rows[index - 1].makeRandomAccess()[13].decode(Int64.self)
                next = JobCursor(createdAtMicros: micros, id: deliveries[index - 1].id)
                break
            }
            deliveries.append(try Delivery(row: row))
        }
        return (deliveries, next)
    }

    public func delivery(id: UUID) async throws -> Delivery? {
        try await client.rows("SELECT \(unescaped: DeliveryColumns.list()) FROM deliveries WHERE id = \(id)", logger: logger)
            .rows.first.map(Delivery.init(row:))
    }

    /// The attempts of a delivery, oldest first.
    public func attempts(deliveryID: UUID) async throws -> [DeliveryAttempt] {
        let rows = try await client.rows("""
            SELECT id, attempt, attempted_at, status_code, duration_ms, response_body, error
            FROM delivery_attempts WHERE delivery_id = \(deliveryID) ORDER BY id
            """, logger: logger)
        var attempts: [DeliveryAttempt] = []
        for (id, attempt, at, status, duration, body, error) in try rows.decode((Int64, Int, Date, Int?, Int, String?, String?).self) {
            attempts.append(DeliveryAttempt(id: id, attempt: attempt, attemptedAt: at, statusCode: status, durationMs: duration,
                                            responseBody: body, error: error))
        }
        return attempts
    }

    /// What a redelivery found.
    public enum RedeliverOutcome: Sendable {
        case created(Delivery)
        case subscriptionDisabled
        case notFound
    }

    /// Sends the event of a delivery to its subscription again, as a new delivery with a fresh
    /// retry schedule. Any delivery can be redelivered, whatever its state.
    public func redeliver(id: UUID) async throws -> RedeliverOutcome {
        let rows = try await client.rows("""
            INSERT INTO deliveries (id, event_id, subscription_id, event_type, state, next_attempt_at, redelivery_of)
            SELECT \(UUID()), d.event_id, d.subscription_id, d.event_type, 'pending', now(), d.id
            FROM deliveries d JOIN subscriptions s ON s.id = d.subscription_id
            WHERE d.id = \(id) AND s.enabled
            RETURNING \(unescaped: DeliveryColumns.list())
            """, logger: logger).rows
        if let row = rows.first { return .created(try Delivery(row: row)) }
        return try await delivery(id: id) == nil ? .notFound : .subscriptionDisabled
    }

    /// What a bulk recovery found.
    public enum RecoverOutcome: Sendable, Equatable {
        case redelivered(Int)
        case subscriptionDisabled
        case notFound
    }

    /// Redelivers every failed delivery of a subscription created at or after `since` that has not
    /// been redelivered yet. Running it twice does not send twice.
    public func recover(subscriptionID: UUID, since: Date) async throws -> RecoverOutcome {
        let rows = try await client.rows("""
            WITH s AS (SELECT id, enabled FROM subscriptions WHERE id = \(subscriptionID)),
            inserted AS (
                INSERT INTO deliveries (id, event_id, subscription_id, event_type, state, next_attempt_at, redelivery_of)
                SELECT gen_random_uuid(), d.event_id, d.subscription_id, d.event_type, 'pending', now(), d.id
                FROM deliveries d JOIN s ON s.id = d.subscription_id AND s.enabled
                WHERE d.state = 'failed' AND d.created_at >= \(since)
                  AND NOT EXISTS (SELECT 1 FROM deliveries r WHERE r.redelivery_of = d.id)
                RETURNING 1
            )
            SELECT (SELECT enabled FROM s), (SELECT count(*)::int FROM inserted)
            """, logger: logger)
        for (enabled, count) in try rows.decode((Bool?, Int).self) {
            guard let enabled else { return .notFound }
            return enabled ? .redelivered(count) : .subscriptionDisabled
        }
        return .notFound
    }
}
