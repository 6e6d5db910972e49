import DreamdCore
import Foundation
import Logging
import PostgresNIO

/// The queue side of deliveries: claiming with `FOR UPDATE SKIP LOCKED` under a per-subscription
/// cap, recording attempts, and the maintenance pass (expired leases, disabled subscriptions,
/// expired rotation secrets). Each operation is one statement.
extension DeliveryStore {
    /// Claims up to `limit` due deliveries for `owner`, oldest due first, leaving out subscriptions
    /// that already have `perSubscription` deliveries in flight (in any process), so one slow
    /// subscriber holds at most that many slots.
    ///
    /// Two processes claiming at the same instant may each fill a subscription up to its cap: the cap
    /// is exact per claim and bounded by `processes × cap` across claims that race.
    public func claim(limit: Int, owner: String, leaseDuration: Duration, perSubscription: Int) async throws -> [ClaimedDelivery] {
        guard limit > 0 else { return [] }
        // Each enabled subscription with free slots gives at most that many of its oldest due deliveries
        // (`deliveries_due_by_subscription_idx`, read in order: the cost is the rows taken, whatever the backlog
        // or the statistics say; migration 0025), and the oldest `limit` of those are taken. Candidates are read
        // unlocked; only the taken rows are locked, by primary key with SKIP LOCKED, and their state is checked
        // again on the locked (latest) row version. Locking every candidate cost a tuple write each (with a
        // backlog, 256 locks to take 2 rows: bench/webhooks.sh spent 78 % of the server's time there). Two claims
        // racing for the same candidates each get what the other did not lock.
        let rows = try await client.rows(Self.claimQuery(limit: limit, owner: owner, leaseDuration: leaseDuration,
                                                         perSubscription: perSubscription), logger: logger)
        var claimed: [ClaimedDelivery] = []
        for (id, eventID, subscriptionID, type, attempts, url, payload, secret, previous, epoch)
            in try rows.decode((UUID, UUID, UUID, String, Int, String, String, String, String?, Int64).self) {
            claimed.append(ClaimedDelivery(
                id: id, eventID: eventID, subscriptionID: subscriptionID, eventType: type, previousAttempts: attempts,
                url: url, payload: payload, secrets: [secret] + (previous.map { [$0] } ?? []), leaseEpoch: epoch
            ))
        }
        return claimed
    }

    /// The claim statement of ``claim(limit:owner:leaseDuration:perSubscription:)`` (its plan is tested:
    /// `QueuePlanTests`).
    static func claimQuery(limit: Int, owner: String, leaseDuration: Duration, perSubscription: Int) -> PostgresQuery {
        """
            WITH busy AS (
                SELECT subscription_id, count(*)::int AS n FROM deliveries
                WHERE state = 'delivering' GROUP BY subscription_id
            ),
            open AS (
                SELECT s.id, \(perSubscription) - COALESCE(b.n, 0) AS free
                FROM subscriptions s LEFT JOIN busy b ON b.subscription_id = s.id
                WHERE s.enabled AND COALESCE(b.n, 0) < \(perSubscription)
            ),
            due AS (
                SELECT d.id, d.next_attempt_at FROM open o
                CROSS JOIN LATERAL (
                    SELECT d.id, d.next_attempt_at FROM deliveries d
                    WHERE d.subscription_id = o.id AND d.state = 'pending' AND d.next_attempt_at <= now()
                    ORDER BY d.next_attempt_at, d.id
                    LIMIT o.free
                ) d
            ),
            picked AS (
                SELECT id FROM due ORDER BY next_attempt_at, id LIMIT \(limit)
            ),
            chosen AS (
                SELECT d.id, d.state, d.next_attempt_at FROM deliveries d
                WHERE d.id = ANY(ARRAY(SELECT id FROM picked))
                FOR UPDATE OF d SKIP LOCKED
            )
            UPDATE deliveries d SET
                state = 'delivering', next_attempt_at = NULL, lease_owner = \(owner),
                lease_expires_at = now() + \(Self.millis(leaseDuration)) * interval '1 millisecond', updated_at = now(),
                lease_epoch = d.lease_epoch + 1
            FROM events e, subscriptions s
            WHERE d.id = ANY(ARRAY(SELECT id FROM chosen WHERE state = 'pending' AND next_attempt_at <= now()))
              AND e.id = d.event_id AND s.id = d.subscription_id
            RETURNING d.id, d.event_id, d.subscription_id, d.event_type, d.attempts, s.url, e.payload::text, s.secret,
                      CASE WHEN s.previous_secret_expires_at > now() THEN s.previous_secret END, d.lease_epoch
            """
    }

    /// Renews the leases of attempts in flight, by their claims' tokens. Returns the ids still held: a
    /// delivery missing from the answer was taken back (its lease ran out) and its attempt must stop.
    public func renew(leases: [Lease], leaseDuration: Duration) async throws -> Set<UUID> {
        guard !leases.isEmpty else { return [] }
        let rows = try await client.rows("""
            UPDATE deliveries d SET lease_expires_at = now() + \(Self.millis(leaseDuration)) * interval '1 millisecond'
            FROM unnest(\(leases.map(\.id))::uuid[], \(leases.map(\.epoch))::int8[]) AS l(id, epoch)
            WHERE d.id = l.id AND d.lease_epoch = l.epoch
            RETURNING d.id
            """, logger: logger)
        return Set(try rows.decode(UUID.self).map { $0 })
    }

    /// Gives back the leases of attempts a stopping worker did not finish: the deliveries are due again at
    /// once (sent again with the same `webhook-id`), and the epoch moves on so the released claims record nothing.
    public func release(leases: [Lease]) async throws {
        guard !leases.isEmpty else { return }
        try await client.rows("""
            UPDATE deliveries d SET state = 'pending', next_attempt_at = now(), lease_owner = NULL, lease_expires_at = NULL,
                updated_at = now(), lease_epoch = d.lease_epoch + 1
            FROM unnest(\(leases.map(\.id))::uuid[], \(leases.map(\.epoch))::int8[]) AS l(id, epoch)
            WHERE d.id = l.id AND d.lease_epoch = l.epoch
            """, logger: logger)
    }

    /// What one attempt found, for the log.
    public struct AttemptRecord: Sendable, Hashable {
        public var attemptedAt: Date
        public var statusCode: Int?
        public var durationMs: Int
        /// At most 16 KB (longer text is cut by the caller).
        public var responseBody: String?
        public var error: String?

        public init(attemptedAt: Date, statusCode: Int?, durationMs: Int, responseBody: String?, error: String?) {
            self.attemptedAt = attemptedAt
            self.statusCode = statusCode
            self.durationMs = durationMs
            self.responseBody = responseBody
            self.error = error
        }

        /// The most response text kept per attempt.
        public static let maxResponseBytes = 16 * 1024
    }

    /// What happens to a delivery after an attempt.
    public enum Decision: Sendable, Hashable {
        case succeeded
        /// Try again after this wait.
        case retry(after: Duration)
        /// Final failure (attempts exhausted or a permanent answer).
        case failed
        /// Final failure that also disables the subscription (the receiver answered 410 Gone).
        case failedAndDisable(reason: String)
    }

    /// What recording found.
    public struct RecordResult: Sendable, Hashable {
        /// Whether the attempt was recorded (`false`: the lease was lost and another worker has it).
        public var recorded: Bool
        /// Set when this attempt disabled the subscription, with the reason.
        public var disabledSubscription: String?

        public init(recorded: Bool, disabledSubscription: String? = nil) {
            self.recorded = recorded
            self.disabledSubscription = disabledSubscription
        }
    }

    /// Records an attempt and its consequence, if the claim still holds the lease (its epoch matches;
    /// `owner` is no longer part of the guard): the attempt row,
    /// the delivery's new state, and the subscription's health (`last_success_at`, `failing_since`,
    /// disabling after 410 or after failing for `disableAfter` with no success), in one statement.
    @discardableResult
    public func record(
        _ attempt: AttemptRecord, decision: Decision, for claimed: ClaimedDelivery, owner: String, disableAfter: Duration?
    ) async throws -> RecordResult {
        let state: DeliveryState
        var retryMillis: Int64 = 0
        switch decision {
        case .succeeded: state = .succeeded
        case .retry(let after): state = .pending; retryMillis = Self.millis(after)
        case .failed, .failedAndDisable: state = .failed
        }
        let body = attempt.responseBody.map { Self.truncate($0, toBytes: AttemptRecord.maxResponseBytes) }
        let lastError = attempt.error ?? attempt.statusCode.map { "HTTP \($0)" }
        let disableAfterMillis = disableAfter.map(Self.millis) ?? 0
        let subscriptionUpdate: String
        switch decision {
        case .succeeded:
            // Written only when it changes something, so a busy subscriber's row is not a hot spot.
            subscriptionUpdate = """
                UPDATE subscriptions SET last_success_at = now(), failing_since = NULL
                WHERE id = $2 AND EXISTS (SELECT 1 FROM d)
                  AND (failing_since IS NOT NULL OR last_success_at IS NULL OR last_success_at < now() - interval '1 second')
                RETURNING enabled, disabled_reason
                """
        case .failedAndDisable:
            subscriptionUpdate = """
                UPDATE subscriptions SET enabled = false, disabled_reason = $12,
                    failing_since = COALESCE(failing_since, now()), updated_at = now()
                WHERE id = $2 AND EXISTS (SELECT 1 FROM d) AND enabled
                RETURNING enabled, disabled_reason
                """
        case .retry, .failed:
            // `failing_since` starts the streak; a streak older than the window disables the subscription.
            subscriptionUpdate = """
                UPDATE subscriptions SET
                    failing_since = COALESCE(failing_since, now()),
                    enabled = NOT expired.yes,
                    disabled_reason = CASE WHEN expired.yes
                        THEN 'no successful delivery since ' || dreamd_time(failing_since) ELSE disabled_reason END,
                    updated_at = CASE WHEN expired.yes THEN now() ELSE updated_at END
                FROM (SELECT $13 > 0 AND COALESCE(failing_since < now() - $13 * interval '1 millisecond', false) AS yes
                      FROM subscriptions WHERE id = $2) AS expired
                WHERE id = $2 AND EXISTS (SELECT 1 FROM d) AND enabled AND (failing_since IS NULL OR expired.yes)
                RETURNING enabled, disabled_reason
                """
        }
        var binds = PostgresBindings()
        binds.append(claimed.id)                 // $1
        binds.append(claimed.subscriptionID)     // $2
        binds.append(owner)                      // $3 (not read any more: the guard is the epoch, $14)
        binds.append(state.rawValue)             // $4
        binds.append(retryMillis)                // $5
        binds.append(attempt.statusCode)         // $6
        binds.append(lastError)                  // $7
        binds.append(attempt.attemptedAt)        // $8
        binds.append(attempt.durationMs)         // $9
        binds.append(body)                       // $10
        binds.append(attempt.error)              // $11
        // $12 and $13 are always bound with a type: a variant that does not use them must not leave an untyped NULL.
        if case .failedAndDisable(let reason) = decision { binds.append(reason) } else { binds.append("") } // $12
        binds.append(disableAfterMillis)         // $13
        binds.append(claimed.leaseEpoch)         // $14
        let sql = """
            WITH d AS (
                UPDATE deliveries SET
                    state = $4, attempts = attempts + 1,
                    next_attempt_at = CASE WHEN $4 = 'pending' THEN now() + $5 * interval '1 millisecond' END,
                    lease_owner = NULL, lease_expires_at = NULL, lease_epoch = lease_epoch + 1,
                    last_status = $6, last_error = CASE WHEN $4 = 'succeeded' THEN NULL ELSE $7 END,
                    delivered_at = CASE WHEN $4 = 'succeeded' THEN now() END,
                    updated_at = now()
                WHERE id = $1 AND lease_epoch = $14 AND state = 'delivering'
                RETURNING id, attempts
            ),
            a AS (
                INSERT INTO delivery_attempts (delivery_id, attempt, attempted_at, status_code, duration_ms, response_body, error)
                SELECT id, attempts, $8, $6, $9, $10, $11 FROM d
                RETURNING id
            ),
            s AS (
                \(subscriptionUpdate)
            )
            SELECT EXISTS (SELECT 1 FROM d), (SELECT disabled_reason FROM s WHERE NOT s.enabled), (SELECT count(*) FROM a)
            """
        let rows = try await client.rows(PostgresQuery(unsafeSQL: sql, binds: binds), logger: logger)
        for (recorded, disabled, _) in try rows.decode((Bool, String?, Int64).self) {
            return RecordResult(recorded: recorded, disabledSubscription: disabled)
        }
        return RecordResult(recorded: false, disabledSubscription: nil)
    }

    /// What one maintenance pass did.
    public struct MaintenanceResult: Sendable, Hashable {
        /// Deliveries whose lease ran out (a crashed or hung process), made due again.
        public var rescued: Int
        /// Pending deliveries of disabled subscriptions, failed.
        public var failedForDisabled: Int
        /// Rotation secrets past their overlap, dropped.
        public var expiredSecrets: Int
    }

    /// Takes back expired leases, fails pending deliveries of disabled subscriptions, and drops
    /// previous secrets whose overlap has ended.
    public func maintain(limit: Int = 1000) async throws -> MaintenanceResult {
        let rows = try await client.rows("""
            WITH expired AS (
                UPDATE deliveries SET state = 'pending', next_attempt_at = now(), lease_owner = NULL, lease_expires_at = NULL,
                    updated_at = now(), lease_epoch = lease_epoch + 1
                WHERE id = ANY(ARRAY(
                    SELECT id FROM deliveries WHERE state = 'delivering' AND lease_expires_at < now()
                    LIMIT \(limit) FOR UPDATE SKIP LOCKED
                ))
                RETURNING 1
            ),
            disabled AS (
                UPDATE deliveries d SET state = 'failed', next_attempt_at = NULL, updated_at = now(),
                    last_error = 'subscription disabled' || COALESCE(': ' || s.disabled_reason, '')
                FROM subscriptions s
                WHERE d.id = ANY(ARRAY(
                    SELECT p.id FROM deliveries p JOIN subscriptions q ON q.id = p.subscription_id AND NOT q.enabled
                    WHERE p.state = 'pending' LIMIT \(limit) FOR UPDATE OF p SKIP LOCKED
                )) AND s.id = d.subscription_id
                RETURNING 1
            ),
            secrets AS (
                UPDATE subscriptions SET previous_secret = NULL, previous_secret_expires_at = NULL
                WHERE previous_secret_expires_at <= now()
                RETURNING 1
            )
            SELECT (SELECT count(*)::int FROM expired), (SELECT count(*)::int FROM disabled), (SELECT count(*)::int FROM secrets)
            """, logger: logger)
        for (rescued, failed, secrets) in try rows.decode((Int, Int, Int).self) {
            return MaintenanceResult(rescued: rescued, failedForDisabled: failed, expiredSecrets: secrets)
        }
        return MaintenanceResult(rescued: 0, failedForDisabled: 0, expiredSecrets: 0)
    }

    /// When the next pending delivery is due (`nil` if none), so an idle worker can sleep until then.
    public func nextDue() async throws -> Date? {
        for next in try await client.rows(
            "SELECT min(next_attempt_at) FROM deliveries WHERE state = 'pending'", logger: logger).decode(Date?.self) {
            return next
        }
        return nil
    }

    /// Cuts text to at most `bytes` UTF-8 bytes without splitting a character, and drops NUL
    /// characters (PostgreSQL text cannot hold them).
    static func truncate(_ text: String, toBytes bytes: Int) -> String {
        var utf8 = Array(text.utf8.lazy.filter { $0 != 0 })
        guard utf8.count > bytes else { return String(decoding: utf8, as: UTF8.self) }
        var end = bytes
        // Step back over continuation bytes (0b10xxxxxx) to the start of the cut character.
        while end > 0, utf8[end] & 0xC0 == 0x80 { end -= 1 }
        utf8.removeSubrange(end...)
        return String(decoding: utf8, as: UTF8.self)
    }

    static func millis(_ duration: Duration) -> Int64 { Int64(duration.seconds * 1000) }
}
