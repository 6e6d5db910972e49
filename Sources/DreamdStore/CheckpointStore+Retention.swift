import DreamdCore
import Foundation
import Logging
import PostgresNIO

/// The retention sweeper's side of the store. Each transition is one statement that claims its rows with
/// `FOR UPDATE SKIP LOCKED`, so several daemons sweeping at once never move a checkpoint twice; the
/// `checkpoints_write` trigger adds the audit row and the outbox event inside it.
extension CheckpointStore {
    /// Moves `available` checkpoints whose warning time (`expires_at - expiryWarning`) has come to `expiring`.
    /// Returns the upstream ids moved.
    @discardableResult
    public func markExpiring(limit: Int = 500, actor: Actor = "sweeper") async throws -> [String] {
        let warning = JobStore.millis(expiryWarning)
        let detail = try DreamdJSON.string(["warning_ms": JSONValue.number(Double(warning))] as JSONValue)
        return try await client.rows("""
            UPDATE checkpoints SET state = 'expiring', audit_actor = \(actor.rawValue), audit_detail = \(detail)::jsonb
            WHERE id = ANY(ARRAY(
                SELECT id FROM checkpoints
                WHERE state = 'available' AND expires_at - \(warning) * interval '1 millisecond' <= now()
                ORDER BY expires_at, id LIMIT \(limit) FOR UPDATE SKIP LOCKED
            ))
            RETURNING upstream_checkpoint_id
            """, logger: logger).rows.map { try $0.makeRandomAccess()[0].decode(String.self) }
    }

    /// Moves checkpoints past `expires_at` to `expired`. An archive still waiting or running becomes
    /// `failed` with an error that says the checkpoint expired first. Returns the upstream ids moved.
    ///
    /// A checkpoint still `available` (a sweep that missed its warning time, e.g. after downtime) is first
    /// moved by `markExpiring`, so its events go out in order: call that first in the same pass.
    @discardableResult
    public func markExpired(limit: Int = 500, actor: Actor = "sweeper") async throws -> [String] {
        try await client.rows("""
            UPDATE checkpoints SET state = 'expired',
                archive_state = CASE WHEN archive_state IN ('pending', 'archiving') THEN 'failed' ELSE archive_state END,
                archive_error = CASE WHEN archive_state IN ('pending', 'archiving')
                    THEN 'checkpoint expired at ' || dreamd_time(expires_at) || ' before it could be archived'
                         || COALESCE(' (last error: ' || archive_error || ')', '')
                    ELSE archive_error END,
                archive_lease_owner = NULL, archive_lease_expires_at = NULL,
                audit_actor = \(actor.rawValue), audit_detail = '{}'::jsonb
            WHERE id = ANY(ARRAY(
                SELECT id FROM checkpoints
                WHERE state IN ('available', 'expiring') AND expires_at <= now()
                ORDER BY expires_at, id LIMIT \(limit) FOR UPDATE SKIP LOCKED
            ))
            RETURNING upstream_checkpoint_id
            """, logger: logger).rows.map { try $0.makeRandomAccess()[0].decode(String.self) }
    }

    /// Seconds until the next transition is due (negative when one is overdue), or `nil` when none is pending.
    public func secondsUntilNextTransition() async throws -> Double? {
        let warning = JobStore.millis(expiryWarning)
        let rows = try await client.rows("""
            SELECT extract(epoch FROM min(CASE WHEN state = 'available'
                                               THEN expires_at - \(warning) * interval '1 millisecond'
                                               ELSE expires_at END) - now())::float8
            FROM checkpoints WHERE state IN ('available', 'expiring')
            """, logger: logger)
        for seconds in try rows.decode(Double?.self) { return seconds }
        return nil
    }
}
