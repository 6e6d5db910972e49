import DreamdCore
import Foundation
import PostgresNIO

extension JobStore {
    /// Who asked for a retry, recorded in the audit row's detail (never the key's token).
    public struct Requester: Sendable, Hashable {
        public var keyID: UUID?
        public var keyName: String?

        public init(keyID: UUID?, keyName: String?) {
            self.keyID = keyID
            self.keyName = keyName
        }

        var detail: [String: JSONValue] {
            var detail: [String: JSONValue] = [:]
            if let keyID { detail["api_key_id"] = .string(keyID.uuidString.lowercased()) }
            if let keyName { detail["api_key_name"] = .string(keyName) }
            return detail
        }
    }

    /// What retrying found.
    public enum RetryOutcome: Sendable {
        /// The job is `queued` again.
        case retried(Job)
        /// The job is not `failed` or `cancelled` (it is still waiting or running, or it succeeded).
        case notRetryable(Job)
        case notFound
    }

    /// Runs a `failed` or `cancelled` job again: one statement moves it back to `queued`, due now, with a
    /// fresh round of attempts (`attempt` back to 0, so the first claim counts attempt 1 and no upstream
    /// adopts the earlier, finished submission), its result, error, progress and upstream ids cleared.
    /// Cost spent so far is kept. The `jobs_write` trigger records `failed → queued` (or
    /// `cancelled → queued`) with `actor` and a detail naming the requester, the attempts and error before.
    public func retry(id: UUID, actor: Actor = .api, requester: Requester) async throws -> RetryOutcome {
        var detail = requester.detail
        detail["reason"] = "retry requested"
        let detailText = try DreamdJSON.string(JSONValue.object(detail))
        // The CTE wakes the workers (as an insert's trigger does) in the same statement.
        let rows = try await client.rows("""
            WITH retried AS (
            UPDATE jobs SET state = 'queued', run_at = now(), attempt = 0,
                result = NULL, error = NULL, progress = NULL, partial_output = NULL,
                upstream_job_id = NULL, upstream_state = NULL, poll_count = 0,
                lease_owner = NULL, lease_expires_at = NULL,
                audit_actor = \(actor.rawValue),
                audit_detail = \(detailText)::jsonb || jsonb_build_object(
                    'previous_state', state, 'previous_attempts', attempt, 'previous_error', error)
            WHERE id = \(id) AND state IN ('failed', 'cancelled')
            RETURNING *
            )
            SELECT \(unescaped: JobColumns.list()), pg_notify('dreamd_jobs', kind)::text FROM retried
            """, logger: logger).rows
        if let row = rows.first { return .retried(try JobRow(row).job) }
        guard let job = try await job(id: id) else { return .notFound }
        return .notRetryable(job)
    }
}
