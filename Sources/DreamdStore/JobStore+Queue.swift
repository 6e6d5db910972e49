import DreamdCore
import Foundation
import Logging
import PostgresNIO

/// The queue side of the store: claiming with `FOR UPDATE SKIP LOCKED`, leases, heartbeats,
/// recording step outcomes, promoting due jobs and rescuing work of crashed processes.
extension JobStore {
    /// Claims up to `limit` due jobs of `kinds` for `owner`, by priority then `run_at`.
    ///
    /// A `queued` job moves to `submitting` and its attempt counts up; a `running` job (due for a poll)
    /// keeps its state. Either way the claim holds a lease until `leaseDuration` from now.
    public func claim(kinds: [JobKind], limit: Int, owner: String, leaseDuration: Duration) async throws -> [ClaimedJob] {
        guard limit > 0, !kinds.isEmpty else { return [] }
        let leaseMillis = Int64(leaseDuration.seconds * 1000)
        return try await client.withTransaction(logger: logger) { connection in
            try await connection.setAudit(actor: .worker, detail: ["owner": .string(owner)], logger: logger)
            let rows = try await connection.query("""
                WITH due AS (
                    SELECT id FROM jobs
                    WHERE state IN ('queued', 'running') AND run_at <= now()
                      AND lease_owner IS NULL AND kind = ANY(\(kinds.map(\.rawValue))::text[])
                    ORDER BY priority, run_at, id
                    LIMIT \(limit)
                    FOR UPDATE SKIP LOCKED
                )
                UPDATE jobs j SET
                    state = CASE WHEN j.state = 'queued' THEN 'submitting' ELSE j.state END,
                    attempt = CASE WHEN j.state = 'queued' THEN j.attempt + 1 ELSE j.attempt END,
                    lease_owner = \(owner),
                    lease_expires_at = now() + \(leaseMillis) * interval '1 millisecond'
                FROM due WHERE j.id = due.id
                RETURNING \(unescaped: JobColumns.list("j"))
                """, logger: logger).collect()
            return try rows.map { row in
                let decoded = try JobRow(row)
                return ClaimedJob(job: decoded.job, pollCount: decoded.pollCount)
            }.sorted { ($0.job.priority, $0.job.runAt) < ($1.job.priority, $1.job.runAt) }
        }
    }

    /// Renews the leases `owner` holds on `ids`. Returns the ids whose lease was renewed.
    @discardableResult
    public func heartbeat(ids: [UUID], owner: String, leaseDuration: Duration) async throws -> Set<UUID> {
        guard !ids.isEmpty else { return [] }
        let leaseMillis = Int64(leaseDuration.seconds * 1000)
        let rows = try await client.query("""
            UPDATE jobs SET lease_expires_at = now() + \(leaseMillis) * interval '1 millisecond'
            WHERE id = ANY(\(ids)::uuid[]) AND lease_owner = \(owner)
            RETURNING id
            """, logger: logger)
        var renewed: Set<UUID> = []
        for try await id in rows.decode(UUID.self) { renewed.insert(id) }
        return renewed
    }

    /// Records what one step of a claimed job found, if `owner` still holds its lease.
    ///
    /// Returns the job as stored, or `nil` when the lease was lost (the job was cancelled or taken over).
    @discardableResult
    public func record(
        _ outcome: StepOutcome, for claimed: ClaimedJob, provider: String, owner: String,
        backoff: BackoffPolicy, actor: Actor = .worker
    ) async throws -> Job? {
        let id = claimed.job.id
        return try await client.withTransaction(logger: logger) { connection in
            let rows: [PostgresRow]
            switch outcome {
            case .running(let upstreamJobID, let upstreamState, let nextCheck, let detail):
                var auditDetail: [String: JSONValue] = ["upstream_job_id": .string(upstreamJobID)]
                if let upstreamState { auditDetail["upstream_state"] = .string(upstreamState) }
                if let detail { auditDetail["detail"] = detail }
                try await connection.setAudit(actor: actor, detail: .object(auditDetail), logger: logger)
                rows = try await connection.query("""
                    UPDATE jobs SET state = 'running', upstream_provider = \(provider),
                        upstream_job_id = \(upstreamJobID), upstream_state = COALESCE(\(upstreamState), upstream_state),
                        poll_count = CASE WHEN state = 'running' THEN poll_count + 1 ELSE 0 END,
                        run_at = \(nextCheck), lease_owner = NULL, lease_expires_at = NULL
                    WHERE id = \(id) AND lease_owner = \(owner)
                    RETURNING \(unescaped: JobColumns.list())
                    """, logger: logger).collect()
            case .succeeded(let result, let cost, let upstreamState):
                try await connection.setAudit(actor: actor, detail: ["upstream_state": upstreamState.map(JSONValue.string) ?? .null], logger: logger)
                rows = try await connection.query("""
                    UPDATE jobs SET state = 'succeeded', result = \(try DreamdJSON.string(result))::jsonb, error = NULL,
                        cost_usd = \(cost), upstream_state = COALESCE(\(upstreamState), upstream_state)
                    WHERE id = \(id) AND lease_owner = \(owner)
                    RETURNING \(unescaped: JobColumns.list())
                    """, logger: logger).collect()
            case .failed(let error, let upstreamState):
                rows = try await fail(id: id, owner: owner, error: error, upstreamState: upstreamState, actor: actor, connection: connection)
            case .retry(let error, let retryAfter):
                if claimed.job.attempt >= claimed.job.maxAttempts {
                    let exhausted = JobError(code: error.code, message: "\(error.message) (gave up after \(claimed.job.attempt) attempts)")
                    rows = try await fail(id: id, owner: owner, error: exhausted, upstreamState: nil, actor: actor, connection: connection)
                } else {
                    let delay = retryAfter.map { max($0, backoff.delay(afterAttempt: claimed.job.attempt) / 4) }
                        ?? backoff.delay(afterAttempt: claimed.job.attempt)
                    let delayMillis = Int64(delay.seconds * 1000)
                    try await connection.setAudit(actor: actor, detail: [
                        "attempt": .number(Double(claimed.job.attempt)),
                        "error": try DreamdJSON.value(error),
                        "retry_in_ms": .number(Double(delayMillis)),
                    ], logger: logger)
                    rows = try await connection.query("""
                        UPDATE jobs SET state = 'scheduled', error = \(try DreamdJSON.string(error))::jsonb,
                            run_at = now() + \(delayMillis) * interval '1 millisecond',
                            upstream_job_id = NULL, upstream_state = NULL, poll_count = 0,
                            lease_owner = NULL, lease_expires_at = NULL
                        WHERE id = \(id) AND lease_owner = \(owner)
                        RETURNING \(unescaped: JobColumns.list())
                        """, logger: logger).collect()
                }
            }
            guard let row = rows.first else { return nil }
            let job = try JobRow(row).job
            try await OutboxWriter.jobFinished(job, on: connection, logger: logger)
            return job
        }
    }

    private func fail(
        id: UUID, owner: String, error: JobError, upstreamState: String?, actor: Actor, connection: PostgresConnection
    ) async throws -> [PostgresRow] {
        try await connection.setAudit(actor: actor, detail: ["error": try DreamdJSON.value(error)], logger: logger)
        return try await connection.query("""
            UPDATE jobs SET state = 'failed', error = \(try DreamdJSON.string(error))::jsonb,
                upstream_state = COALESCE(\(upstreamState), upstream_state)
            WHERE id = \(id) AND lease_owner = \(owner)
            RETURNING \(unescaped: JobColumns.list())
            """, logger: logger).collect()
    }

    /// Gives back the leases `owner` holds without recording an outcome (graceful drain):
    /// a job that was being submitted goes back to `queued` and keeps its attempt count.
    public func release(ids: [UUID], owner: String) async throws {
        guard !ids.isEmpty else { return }
        try await client.withTransaction(logger: logger) { connection in
            try await connection.setAudit(actor: .worker, detail: ["reason": "released on shutdown"], logger: logger)
            try await connection.query("""
                UPDATE jobs SET state = CASE WHEN state = 'submitting' THEN 'queued' ELSE state END,
                    attempt = CASE WHEN state = 'submitting' THEN greatest(attempt - 1, 0) ELSE attempt END,
                    lease_owner = NULL, lease_expires_at = NULL
                WHERE id = ANY(\(ids)::uuid[]) AND lease_owner = \(owner)
                """, logger: logger)
        }
    }

    /// Moves due `scheduled` jobs to `queued`. Returns how many moved.
    @discardableResult
    public func promoteDueJobs(limit: Int = 1000) async throws -> Int {
        try await client.withTransaction(logger: logger) { connection in
            try await connection.setAudit(actor: .scheduler, logger: logger)
            let rows = try await connection.query("""
                UPDATE jobs SET state = 'queued'
                WHERE id IN (
                    SELECT id FROM jobs WHERE state = 'scheduled' AND run_at <= now()
                    ORDER BY run_at LIMIT \(limit) FOR UPDATE SKIP LOCKED
                )
                RETURNING id
                """, logger: logger).collect()
            return rows.count
        }
    }

    /// Takes back work whose lease ran out (its process crashed or hung).
    ///
    /// A job caught while `submitting` goes back to `queued` (its next attempt first looks for an
    /// earlier submission upstream) or fails if that was its last attempt; a `running` job is simply
    /// polled again. Returns how many leases were taken back.
    @discardableResult
    public func rescueExpiredLeases(limit: Int = 1000) async throws -> Int {
        let error = try DreamdJSON.string(JobError(code: "lease_expired", message: "the worker holding this job stopped renewing its lease"))
        return try await client.withTransaction(logger: logger) { connection in
            try await connection.setAudit(actor: .rescuer, detail: ["reason": "lease expired"], logger: logger)
            let rows = try await connection.query("""
                WITH expired AS (
                    SELECT id FROM jobs
                    WHERE lease_owner IS NOT NULL AND lease_expires_at < now()
                    LIMIT \(limit) FOR UPDATE SKIP LOCKED
                )
                UPDATE jobs j SET
                    state = CASE
                        WHEN j.state = 'submitting' AND j.attempt >= j.max_attempts THEN 'failed'
                        WHEN j.state = 'submitting' THEN 'queued'
                        ELSE j.state END,
                    error = CASE WHEN j.state = 'submitting' AND j.attempt >= j.max_attempts THEN \(error)::jsonb ELSE j.error END,
                    lease_owner = NULL, lease_expires_at = NULL
                FROM expired WHERE j.id = expired.id
                RETURNING \(unescaped: JobColumns.list("j"))
                """, logger: logger).collect()
            for row in rows {
                let job = try JobRow(row).job
                try await OutboxWriter.jobFinished(job, on: connection, logger: logger)
            }
            return rows.count
        }
    }
}
