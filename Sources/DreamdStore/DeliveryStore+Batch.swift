import DreamdCore
import Foundation
import Logging
import PostgresNIO

extension DeliveryStore {
    /// One successful attempt to record, with the claim it was made under.
    public struct SuccessRecord: Sendable {
        public var delivery: ClaimedDelivery
        public var attempt: AttemptRecord

        public init(delivery: ClaimedDelivery, attempt: AttemptRecord) {
            self.delivery = delivery
            self.attempt = attempt
        }
    }

    /// Records many successful attempts in one statement: each delivery whose claim still holds its lease
    /// (its epoch matches) becomes `succeeded` with its attempt row, and each subscription among them that
    /// was failing, or has not had a success noted for a second, gets `last_success_at`. Returns the ids
    /// recorded; a delivery left out had lost its lease (another worker has it) and recorded nothing.
    ///
    /// Failed attempts, whose consequences differ per subscription (retry, disabling), go through
    /// ``record(_:decision:for:owner:disableAfter:)`` one at a time.
    public func recordSucceeded(_ records: [SuccessRecord]) async throws -> Set<UUID> {
        guard !records.isEmpty else { return [] }
        let bodies = records.map { $0.attempt.responseBody.map { Self.truncate($0, toBytes: AttemptRecord.maxResponseBytes) } }
        let rows = try await client.rows("""
            WITH i AS (
                SELECT * FROM unnest(\(records.map(\.delivery.id))::uuid[], \(records.map(\.delivery.leaseEpoch))::int8[],
                                     \(records.map { $0.attempt.statusCode ?? 0 })::int8[], \(records.map(\.attempt.attemptedAt))::timestamptz[],
                                     \(records.map { $0.attempt.durationMs })::int8[], \(bodies.map { $0 ?? "" })::text[],
                                     \(bodies.map { $0 != nil })::bool[])
                    AS i(id, epoch, status, attempted_at, duration_ms, body, has_body)
            ),
            d AS (
                UPDATE deliveries SET
                    state = 'succeeded', attempts = deliveries.attempts + 1, next_attempt_at = NULL,
                    lease_owner = NULL, lease_expires_at = NULL, last_status = NULLIF(i.status, 0), last_error = NULL,
                    delivered_at = now(), updated_at = now(), lease_epoch = deliveries.lease_epoch + 1
                FROM i
                WHERE deliveries.id = i.id AND deliveries.lease_epoch = i.epoch
                RETURNING deliveries.id, deliveries.subscription_id, deliveries.attempts
            ),
            a AS (
                INSERT INTO delivery_attempts (delivery_id, attempt, attempted_at, status_code, duration_ms, response_body, error)
                SELECT d.id, d.attempts, i.attempted_at, NULLIF(i.status, 0), i.duration_ms, CASE WHEN i.has_body THEN i.body END, NULL
                FROM d JOIN i ON i.id = d.id
            ),
            s AS (
                UPDATE subscriptions SET last_success_at = now(), failing_since = NULL
                WHERE id IN (SELECT subscription_id FROM d)
                  AND (failing_since IS NOT NULL OR last_success_at IS NULL OR last_success_at < now() - interval '1 second')
            )
            SELECT id FROM d
            """, logger: logger)
        return Set(try rows.decode(UUID.self).map { $0 })
    }
}
