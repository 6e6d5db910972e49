import DreamdCore
import Foundation
import Logging
import PostgresNIO

/// The queue side of the store: claiming with `FOR UPDATE SKIP LOCKED`, leases, heartbeats,
/// recording step outcomes, promoting due jobs and rescuing work of crashed processes.
///
/// Each operation is one statement, so one round trip and one implicit transaction; the `jobs_write`
/// trigger adds the audit row and any outbox event inside it, with the actor the statement names.
extension JobStore {
    /// Claims up to `limit` due jobs of `kinds` for `owner`, by priority then `run_at`.
    ///
    /// A `queued` job moves to `submitting` and its attempt counts up; a `running` job (due for a poll)
    /// keeps its state. Either way the claim holds a lease until `leaseDuration` from now.
    public func claim(kinds: [JobKind], limit: Int, owner: String, leaseDuration: Duration) async throws -> [ClaimedJob] {
        guard limit > 0, !kinds.isEmpty else { return [] }
        let detail = try DreamdJSON.string(["owner": JSONValue.string(owner)])
        let rows = try await client.rows("""
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
                lease_expires_at = now() + \(Self.millis(leaseDuration)) * interval '1 millisecond',
                audit_actor = 'worker', audit_detail = \(detail)::jsonb
            FROM due WHERE j.id = due.id
            RETURNING \(unescaped: JobColumns.list("j"))
            """, logger: logger).rows
        return try rows.map { row in
            let decoded = try JobRow(row)
            return ClaimedJob(job: decoded.job, pollCount: decoded.pollCount)
        }.sorted { ($0.job.priority, $0.job.runAt) < ($1.job.priority, $1.job.runAt) }
    }

    /// Renews the leases `owner` holds on `ids`. Returns the ids whose lease was renewed.
    @discardableResult
    public func heartbeat(ids: [UUID], owner: String, leaseDuration: Duration) async throws -> Set<UUID> {
        guard !ids.isEmpty else { return [] }
        let rows = try await client.rows("""
            UPDATE jobs SET lease_expires_at = now() + \(Self.millis(leaseDuration)) * interval '1 millisecond'
            WHERE id = ANY(\(ids)::uuid[]) AND lease_owner = \(owner)
            RETURNING id
            """, logger: logger)
        var renewed: Set<UUID> = []
        for id in try rows.decode(UUID.self) { renewed.insert(id) }
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
        let rows: [PostgresRow]
        switch outcome {
        case .running(let upstreamJobID, let upstreamState, let nextCheck, let detail):
            var audit: [String: JSONValue] = ["upstream_job_id": .string(upstreamJobID)]
            if let upstreamState { audit["upstream_state"] = .string(upstreamState) }
            if let detail { audit["detail"] = detail }
            rows = try await client.rows("""
                UPDATE jobs SET state = 'running', upstream_provider = \(provider),
                    upstream_job_id = \(upstreamJobID), upstream_state = COALESCE(\(upstreamState), upstream_state),
                    poll_count = CASE WHEN state = 'running' THEN poll_count + 1 ELSE 0 END,
                    run_at = \(nextCheck), lease_owner = NULL, lease_expires_at = NULL,
                    audit_actor = \(actor.rawValue), audit_detail = \(try DreamdJSON.string(JSONValue.object(audit)))::jsonb
                WHERE id = \(id) AND lease_owner = \(owner)
                RETURNING \(unescaped: JobColumns.list())
                """, logger: logger).rows
        case .succeeded(let result, let cost, let upstreamState, let checkpoints):
            let audit: JSONValue = ["upstream_state": upstreamState.map(JSONValue.string) ?? .null]
            let update: PostgresQuery = """
                UPDATE jobs SET state = 'succeeded', result = \(try DreamdJSON.string(result))::jsonb, error = NULL,
                    cost_usd = \(cost), upstream_state = COALESCE(\(upstreamState), upstream_state),
                    audit_actor = \(actor.rawValue), audit_detail = \(try DreamdJSON.string(audit))::jsonb
                WHERE id = \(id) AND lease_owner = \(owner)
                RETURNING \(unescaped: JobColumns.list())
                """
            if checkpoints.isEmpty {
                rows = try await client.rows(update, logger: logger).rows
            } else {
                // The job and the checkpoints it trained are recorded together.
                rows = try await client.transaction(logger: logger) { connection in
                    let updated = try await connection.query(update, logger: logger).collect()
                    if !updated.isEmpty {
                        for checkpoint in checkpoints {
                            try await insertCheckpoint(checkpoint, jobID: id, on: connection)
                        }
                    }
                    return updated
                }
            }
        case .failed(let error, let upstreamState):
            rows = try await fail(id: id, owner: owner, error: error, upstreamState: upstreamState, actor: actor)
        case .retry(let error, let retryAfter):
            if claimed.job.attempt >= claimed.job.maxAttempts {
                let exhausted = JobError(code: error.code, message: "\(error.message) (gave up after \(claimed.job.attempt) attempts)")
                rows = try await fail(id: id, owner: owner, error: exhausted, upstreamState: nil, actor: actor)
            } else {
                let backoffDelay = backoff.delay(afterAttempt: claimed.job.attempt)
                let delay = retryAfter.map { max($0, backoffDelay / 4) } ?? backoffDelay
                let audit: JSONValue = [
                    "attempt": .number(Double(claimed.job.attempt)),
                    "error": try DreamdJSON.value(error),
                    "retry_in_ms": .number(Double(Self.millis(delay))),
                ]
                rows = try await client.rows("""
                    UPDATE jobs SET state = 'scheduled', error = \(try DreamdJSON.string(error))::jsonb,
                        run_at = now() + \(Self.millis(delay)) * interval '1 millisecond',
                        upstream_job_id = NULL, upstream_state = NULL, poll_count = 0,
                        lease_owner = NULL, lease_expires_at = NULL,
                        audit_actor = \(actor.rawValue), audit_detail = \(try DreamdJSON.string(audit))::jsonb
                    WHERE id = \(id) AND lease_owner = \(owner)
                    RETURNING \(unescaped: JobColumns.list())
                    """, logger: logger).rows
            }
        case .deferred(let until, let reason):
            // Not the job's fault: back to waiting, and the attempt the claim counted is given back.
            var audit: [String: JSONValue] = ["deferred": try DreamdJSON.value(reason)]
            if let until { audit["until"] = .string(DreamdJSON.formatDate(until)) }
            rows = try await client.rows("""
                UPDATE jobs SET
                    state = CASE WHEN state <> 'submitting' THEN state
                                 WHEN \(until)::timestamptz > now() THEN 'scheduled' ELSE 'queued' END,
                    attempt = CASE WHEN state = 'submitting' THEN greatest(attempt - 1, 0) ELSE attempt END,
                    run_at = COALESCE(\(until)::timestamptz, run_at),
                    error = \(try DreamdJSON.string(reason))::jsonb,
                    lease_owner = NULL, lease_expires_at = NULL,
                    audit_actor = \(actor.rawValue), audit_detail = \(try DreamdJSON.string(JSONValue.object(audit)))::jsonb
                WHERE id = \(id) AND lease_owner = \(owner)
                RETURNING \(unescaped: JobColumns.list())
                """, logger: logger).rows
        }
        return try rows.first.map { try JobRow($0).job }
    }

    private func fail(id: UUID, owner: String, error: JobError, upstreamState: String?, actor: Actor) async throws -> [PostgresRow] {
        let audit: JSONValue = ["error": try DreamdJSON.value(error)]
        return try await client.rows("""
            UPDATE jobs SET state = 'failed', error = \(try DreamdJSON.string(error))::jsonb,
                upstream_state = COALESCE(\(upstreamState), upstream_state),
                audit_actor = \(actor.rawValue), audit_detail = \(try DreamdJSON.string(audit))::jsonb
            WHERE id = \(id) AND lease_owner = \(owner)
            RETURNING \(unescaped: JobColumns.list())
            """, logger: logger).rows
    }

    /// Gives back the leases `owner` holds without recording an outcome (graceful drain): a job that was
    /// being submitted goes back to `queued` and keeps its attempt count, so its next attempt first looks
    /// for the submission upstream; a running job is polled again.
    public func release(ids: [UUID], owner: String) async throws {
        guard !ids.isEmpty else { return }
        try await client.rows("""
            UPDATE jobs SET state = CASE WHEN state = 'submitting' THEN 'queued' ELSE state END,
                lease_owner = NULL, lease_expires_at = NULL,
                audit_actor = 'worker', audit_detail = '{"reason": "released on shutdown"}'::jsonb
            WHERE id = ANY(\(ids)::uuid[]) AND lease_owner = \(owner)
            """, logger: logger)
    }

    /// Moves due `scheduled` jobs to `queued`. Returns how many moved.
    @discardableResult
    public func promoteDueJobs(limit: Int = 1000) async throws -> Int {
        try await client.rows("""
            UPDATE jobs SET state = 'queued', audit_actor = 'scheduler'
            WHERE id IN (
                SELECT id FROM jobs WHERE state = 'scheduled' AND run_at <= now()
                ORDER BY run_at LIMIT \(limit) FOR UPDATE SKIP LOCKED
            )
            RETURNING id
            """, logger: logger).rows.count
    }

    /// Takes back work whose lease ran out (its process crashed or hung).
    ///
    /// A job caught while `submitting` goes back to `queued` (its next attempt first looks for an
    /// earlier submission upstream) or fails if that was its last attempt; a `running` job is simply
    /// polled again. Returns how many leases were taken back.
    @discardableResult
    public func rescueExpiredLeases(limit: Int = 1000) async throws -> Int {
        let error = try DreamdJSON.string(JobError(code: "lease_expired", message: "the worker holding this job stopped renewing its lease"))
        return try await client.rows("""
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
                lease_owner = NULL, lease_expires_at = NULL,
                audit_actor = 'rescuer', audit_detail = jsonb_build_object('reason', 'lease expired', 'owner', j.lease_owner)
            FROM expired WHERE j.id = expired.id
            RETURNING j.id
            """, logger: logger).rows.count
    }

    static func millis(_ duration: Duration) -> Int64 { Int64(duration.seconds * 1000) }

    /// Records a trained checkpoint, or refreshes the URL of one recorded before (a repeated poll).
    ///
    /// Not `INSERT ... ON CONFLICT`: the `checkpoints_write` BEFORE INSERT trigger would write an audit row
    /// for an insert that does not happen. Archiving is requested when the job asked for it
    /// (`jobs.archive_checkpoints`) or the daemon archives every checkpoint (`DREAMD_ARCHIVE_CHECKPOINTS`).
    private func insertCheckpoint(_ checkpoint: TrainedCheckpoint, jobID: UUID, on connection: PostgresConnection) async throws {
        let refreshed = try await connection.query("""
            UPDATE checkpoints SET url = \(checkpoint.url), audit_actor = 'worker'
            WHERE upstream_checkpoint_id = \(checkpoint.upstreamCheckpointID)
            RETURNING id
            """, logger: logger).collect()
        guard refreshed.isEmpty else { return }
        try await connection.query("""
            INSERT INTO checkpoints (job_id, upstream_checkpoint_id, trained_at, expires_at, checkpoint_type, model_type,
                                     file_format, is_extracted_lora, training_step, size_bytes, url,
                                     archive_requested, archive_state, archive_next_attempt_at, audit_actor)
            SELECT \(jobID), \(checkpoint.upstreamCheckpointID), \(checkpoint.trainedAt),
                   \(checkpoint.trainedAt) + \(Self.millis(checkpointRetention)) * interval '1 millisecond',
                   \(checkpoint.checkpointType), \(checkpoint.modelType), \(checkpoint.fileFormat), \(checkpoint.isExtractedLora),
                   \(checkpoint.trainingStep), \(checkpoint.sizeBytes), \(checkpoint.url),
                   archive, CASE WHEN archive THEN 'pending' END, CASE WHEN archive THEN now() END, 'worker'
            FROM (SELECT \(archiveAllCheckpoints) OR j.archive_checkpoints AS archive FROM jobs j WHERE j.id = \(jobID)) a
            """, logger: logger)
    }
}
