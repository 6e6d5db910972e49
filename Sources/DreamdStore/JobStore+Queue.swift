import DreamdCore
import Foundation
import Logging
import PostgresNIO

/// The queue side of the store: claiming with `FOR UPDATE SKIP LOCKED`, fenced leases, heartbeats,
/// recording step outcomes (one or many per statement), promoting due jobs and rescuing work of crashed
/// processes.
///
/// Each operation is one statement, so one round trip and one implicit transaction; the statement-level
/// triggers of migration 0021 add the audit rows, outbox events and webhook deliveries inside it, with the
/// actor the statement names, and refuse any move the job state machine does not allow.
extension JobStore {
    /// Claims up to `limit` due jobs of `kinds` for `owner`, by priority then `run_at`.
    ///
    /// A `queued` job moves to `submitting` and its attempt counts up; a `running` job (due for a poll)
    /// keeps its state. Either way the claim holds a lease until `leaseDuration` from now, and its
    /// `leaseEpoch` is the fencing token every later write of this claim must match. Fresh submissions of
    /// `holdingKinds` are held while a job of the kind waits on a held reconciliation (`reconcile_hold`).
    /// Submissions of `markingKinds` promise to record their callback token before anything is sent, so a
    /// rescue can tell one that never left (``rescueExpiredLeases(limit:)``).
    public func claim(kinds: [JobKind], limit: Int, owner: String, leaseDuration: Duration,
                      holdingKinds: [JobKind] = [], markingKinds: [JobKind] = []) async throws -> [ClaimedJob] {
        guard limit > 0, !kinds.isEmpty else { return [] }
        let rows = try await client.prepared(JobQueueStatements.Claim(
            kinds: kinds.map(\.rawValue), limit: limit, owner: owner, leaseMillis: Self.millis(leaseDuration),
            holdingKinds: holdingKinds.map(\.rawValue), markingKinds: markingKinds.map(\.rawValue)), logger: logger)
        return try rows.map { try JobRow($0).claimed }.sorted { ($0.job.priority, $0.job.runAt) < ($1.job.priority, $1.job.runAt) }
    }

    /// Renews the leases of the given claims, each only while its epoch still matches. Returns the ids
    /// whose lease was renewed; a missing id means that claim lost its lease (rescued, released, cancelled).
    @discardableResult
    public func heartbeat(leases: [Lease], leaseDuration: Duration) async throws -> Set<UUID> {
        guard !leases.isEmpty else { return [] }
        let renewed = try await client.prepared(JobQueueStatements.Heartbeat(
            ids: leases.map(\.id), epochs: leases.map(\.epoch), leaseMillis: Self.millis(leaseDuration)), logger: logger)
        return Set(renewed)
    }

    /// The write that records `outcome` for `claimed` (see ``recordBatch(_:)``).
    ///
    /// A `.retry` past the job's last attempt becomes a failure with the last error; a `.succeeded` that
    /// carries checkpoints cannot be batched (``record(_:for:provider:owner:backoff:actor:)`` writes it).
    public func outcomeWrite(
        _ outcome: StepOutcome, for claimed: ClaimedJob, provider: String, backoff: BackoffPolicy, actor: Actor = .worker
    ) throws -> OutcomeWrite {
        var write = OutcomeWrite(id: claimed.job.id, epoch: claimed.leaseEpoch, op: "", actor: actor.rawValue, detail: "{}")
        switch outcome {
        case .running(let upstreamJobID, let upstreamState, let nextCheck, let detail):
            var audit: [String: JSONValue] = ["upstream_job_id": .string(upstreamJobID)]
            if let upstreamState { audit["upstream_state"] = .string(upstreamState) }
            if let detail { audit["detail"] = detail }
            write.op = "running"
            write.provider = provider
            write.upstreamJobID = upstreamJobID
            write.upstreamState = upstreamState ?? ""
            write.runAt = DreamdJSON.formatDate(nextCheck)
            write.detail = try DreamdJSON.string(JSONValue.object(audit))
        case .succeeded(let result, let cost, let upstreamState, _):
            write.op = "succeeded"
            write.result = try DreamdJSON.string(result)
            write.cost = cost.map { String($0) } ?? ""
            write.upstreamState = upstreamState ?? ""
            write.detail = try DreamdJSON.string(["upstream_state": upstreamState.map(JSONValue.string) ?? .null] as JSONValue)
        case .failed(let error, let upstreamState):
            write.op = "failed"
            write.error = try DreamdJSON.string(error)
            write.upstreamState = upstreamState ?? ""
            write.detail = try DreamdJSON.string(["error": try DreamdJSON.value(error)] as JSONValue)
        case .retry(let error, let retryAfter):
            if claimed.job.attempt >= claimed.job.maxAttempts {
                let exhausted = JobError(code: error.code, message: "\(error.message) (gave up after \(claimed.job.attempt) attempts)")
                write.op = "failed"
                write.error = try DreamdJSON.string(exhausted)
                write.detail = try DreamdJSON.string(["error": try DreamdJSON.value(exhausted)] as JSONValue)
            } else {
                let backoffDelay = backoff.delay(afterAttempt: claimed.job.attempt)
                let delay = retryAfter.map { max($0, backoffDelay / 4) } ?? backoffDelay
                write.op = "retry"
                write.error = try DreamdJSON.string(error)
                write.delayMillis = Self.millis(delay)
                write.detail = try DreamdJSON.string([
                    "attempt": .number(Double(claimed.job.attempt)),
                    "error": try DreamdJSON.value(error),
                    "retry_in_ms": .number(Double(Self.millis(delay))),
                ] as JSONValue)
            }
        case .deferred(let until, let reason):
            // Not the job's fault: back to waiting, and the attempt the claim counted is given back.
            var audit: [String: JSONValue] = ["deferred": try DreamdJSON.value(reason)]
            if let until { audit["until"] = .string(DreamdJSON.formatDate(until)) }
            write.op = "deferred"
            write.error = try DreamdJSON.string(reason)
            write.runAt = until.map(DreamdJSON.formatDate) ?? ""
            write.detail = try DreamdJSON.string(JSONValue.object(audit))
        case .unsettled(let error, let retryAfter, let hold, let since, let anchor):
            // The outcome of a submission is unknown: wait and look again, never send it again blindly.
            write.op = "unsettled"
            write.error = try DreamdJSON.string(error)
            write.delayMillis = Self.millis(retryAfter)
            write.since = DreamdJSON.formatDate(since)
            write.hold = hold ? "t" : ""
            write.anchor = anchor ?? ""
            var audit: [String: JSONValue] = [
                "reconciling": try DreamdJSON.value(error), "since": .string(write.since),
                "hold_submissions": .bool(hold), "look_again_in_ms": .number(Double(write.delayMillis)),
            ]
            if let anchor { audit["anchor"] = .string(anchor) }
            write.detail = try DreamdJSON.string(JSONValue.object(audit))
        }
        return write
    }

    /// Records many outcomes in one statement (`UPDATE ... FROM unnest(...)`, prepared), each only if its
    /// claim's epoch still matches and its lease is live. Returns the new state of every job recorded; a job
    /// missing from the answer was not recorded (its lease was lost: cancelled, rescued or taken over).
    public func recordBatch(_ writes: [OutcomeWrite]) async throws -> [UUID: JobState] {
        guard !writes.isEmpty else { return [:] }
        var states: [UUID: JobState] = [:]
        for (id, state) in try await client.prepared(JobQueueStatements.RecordBatch(writes: writes), logger: logger) {
            states[id] = JobState(rawValue: state)
        }
        return states
    }

    /// Records what one step of a claimed job found, if the claim still holds its lease (its epoch matches).
    ///
    /// Returns the job as stored, or `nil` when the lease was lost (the job was cancelled or taken over).
    /// `owner` is no longer part of the guard: the fencing token is `claimed.leaseEpoch`. The worker records
    /// through its batch completer instead; this one-job path serves callbacks, checkpoints and tests.
    @discardableResult
    public func record(
        _ outcome: StepOutcome, for claimed: ClaimedJob, provider: String, owner: String,
        backoff: BackoffPolicy, actor: Actor = .worker
    ) async throws -> Job? {
        let write = try outcomeWrite(outcome, for: claimed, provider: provider, backoff: backoff, actor: actor)
        let update = PostgresQuery(
            unsafeSQL: JobQueueStatements.outcomeUpdate + "\nRETURNING \(JobColumns.list("j"))",
            binds: OutcomeWrite.bindings([write]))
        let rows: [PostgresRow]
        if case .succeeded(_, _, _, let checkpoints) = outcome, !checkpoints.isEmpty {
            // The job and the checkpoints it trained are recorded together.
            let id = claimed.job.id
            rows = try await client.transaction(logger: logger) { connection in
                let updated = try await connection.query(update, logger: logger).collect()
                if !updated.isEmpty {
                    for checkpoint in checkpoints {
                        try await insertCheckpoint(checkpoint, jobID: id, on: connection)
                    }
                }
                return updated
            }
        } else {
            rows = try await client.rows(update, logger: logger).rows
        }
        return try rows.first.map { try JobRow($0).job }
    }

    /// Gives back the given claims' leases without recording an outcome (graceful drain): a job that was
    /// being submitted goes back to `queued`; if its submission may have been sent it keeps its attempt count,
    /// with `reconcile_since` set to when its submission began (and its kind's submissions held), so its next
    /// attempt first settles that submission upstream; if it was never sent (its claim promised a mark and
    /// made none) its attempt is given back and there is nothing to settle. A running job is polled again. The
    /// epoch moves on, so the released claims can write nothing more.
    public func release(leases: [Lease]) async throws {
        guard !leases.isEmpty else { return }
        try await client.rows("""
            UPDATE jobs j SET state = CASE WHEN j.state = 'submitting' THEN 'queued' ELSE j.state END,
                \(unescaped: Self.unsettleSubmission)
                lease_owner = NULL, lease_expires_at = NULL, lease_epoch = j.lease_epoch + 1,
                audit_actor = 'worker', audit_detail = '{"reason": "released on shutdown"}'::jsonb
            FROM unnest(\(leases.map(\.id))::uuid[], \(leases.map(\.epoch))::int8[]) AS l(id, epoch)
            WHERE j.id = l.id AND j.lease_epoch = l.epoch
            """, logger: logger)
    }

    /// Moves due `scheduled` jobs to `queued`. Returns how many moved.
    @discardableResult
    public func promoteDueJobs(limit: Int = 1000) async throws -> Int {
        try await client.rows("""
            UPDATE jobs SET state = 'queued', audit_actor = 'scheduler'
            WHERE id = ANY(ARRAY(
                SELECT id FROM jobs WHERE state = 'scheduled' AND run_at <= now()
                ORDER BY run_at LIMIT \(limit) FOR UPDATE SKIP LOCKED
            ))
            RETURNING id
            """, logger: logger).rows.count
    }

    /// Takes back work whose lease ran out (its process crashed or hung).
    ///
    /// A job caught while `submitting` goes back to `queued` with `reconcile_since` set, even on its last
    /// attempt: its submission may have reached the upstream, so its next claim settles that first (an
    /// executor that cannot settle it fails the job rather than send it again past its attempts); a
    /// `running` job is simply polled again. Returns how many leases were taken back.
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
                state = CASE WHEN j.state = 'submitting' THEN 'queued' ELSE j.state END,
                error = CASE WHEN j.state = 'submitting' THEN \(error)::jsonb ELSE j.error END,
                \(unescaped: Self.unsettleSubmission)
                lease_owner = NULL, lease_expires_at = NULL, lease_epoch = j.lease_epoch + 1,
                audit_actor = 'rescuer', audit_detail = jsonb_build_object('reason', 'lease expired', 'owner', j.lease_owner)
                    || CASE WHEN j.state <> 'submitting' THEN '{}'::jsonb
                            WHEN \(unescaped: Self.neverSent) THEN '{"submission": "never sent"}'::jsonb
                            ELSE '{"submission": "outcome unknown"}'::jsonb END
            WHERE j.id = ANY(ARRAY(SELECT id FROM expired))
            RETURNING j.id
            """, logger: logger).rows.count
    }

    /// The `SET` items for a job caught mid-submission (rescued or released). If its submission may have been
    /// sent, it is unsettled: it began at `submitted_at`, its outcome is unknown, and fresh submissions of its
    /// kind are held until it is settled. If it was never sent (``neverSent``), its attempt is given back and
    /// nothing is settled (an earlier unsettled submission, if any, stays to be settled).
    static let unsettleSubmission = """
        attempt = CASE WHEN \(neverSent) THEN greatest(j.attempt - 1, 0) ELSE j.attempt END,
        reconcile_since = CASE WHEN j.state = 'submitting' AND NOT \(neverSent) THEN coalesce(j.reconcile_since, j.submitted_at, now())
                               ELSE j.reconcile_since END,
        reconcile_hold = CASE WHEN j.state = 'submitting' AND NOT \(neverSent) THEN true ELSE j.reconcile_hold END,
        """

    /// A job caught mid-submission that was never sent: its claim promised a durable mark before sending
    /// (`marks_submission`: the attempt's callback token, written after the claim committed) and there is none.
    static let neverSent = """
        (j.state = 'submitting' AND j.marks_submission
         AND NOT EXISTS (SELECT 1 FROM callback_tokens t WHERE t.job_id = j.id AND t.created_at >= j.submitted_at))
        """

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
