import Foundation
import PostgresNIO

/// The queue's hot statements, prepared: each is parsed and planned once per connection, then only bound
/// and executed. Their shapes never change with the batch size (arrays are one bind each).
enum JobQueueStatements {
    /// Claims up to `$2` due jobs of the kinds `$1` for owner `$3`: `queued → submitting` (an attempt
    /// counted) or a due poll of a `running` job (state kept); the lease until `$4` ms from now and the
    /// epoch moved on, which is the claim's fencing token. A submission of the kinds `$6` promises a durable
    /// mark (its callback token) before anything is sent (`marks_submission`, migration 0026). Of the kinds `$5` (executors that reconcile by
    /// listing), fresh submissions are held while any job of the kind has `reconcile_hold` set; the
    /// reconciling jobs themselves and polls are still claimed.
    ///
    /// Due polls come first, in the order they fell due (`jobs_due_polls_idx`); submissions fill the rest
    /// by priority (`jobs_due_submissions_idx`), so a poll a callback made due never waits behind a backlog
    /// of submissions (migration 0023).
    struct Claim: PostgresPreparedStatement {
        static let sql = """
            WITH held AS (
                SELECT DISTINCT kind FROM jobs WHERE reconcile_hold AND kind = ANY($5::text[])
            ), polls AS (
                SELECT id FROM jobs
                WHERE state = 'running' AND run_at <= now() AND lease_owner IS NULL AND kind = ANY($1::text[])
                ORDER BY run_at, id
                LIMIT $2
                FOR UPDATE OF jobs SKIP LOCKED
            ), submissions AS (
                SELECT id FROM jobs
                WHERE state = 'queued' AND run_at <= now() AND lease_owner IS NULL AND kind = ANY($1::text[])
                  AND NOT (reconcile_since IS NULL AND kind IN (SELECT kind FROM held))
                ORDER BY priority, run_at, id
                LIMIT $2
                FOR UPDATE OF jobs SKIP LOCKED
            ), due AS (
                -- Read lazily, polls first: submissions are scanned (and locked) only for what the polls
                -- leave of the claim, and both scans keep the plain bound $2 the planner can see.
                SELECT id FROM polls UNION ALL SELECT id FROM submissions
                LIMIT $2
            )
            UPDATE jobs j SET
                state = CASE WHEN j.state = 'queued' THEN 'submitting' ELSE j.state END,
                attempt = CASE WHEN j.state = 'queued' THEN j.attempt + 1 ELSE j.attempt END,
                submitted_at = CASE WHEN j.state = 'queued' THEN now() ELSE j.submitted_at END,
                marks_submission = CASE WHEN j.state = 'queued' THEN j.kind = ANY($6::text[]) ELSE j.marks_submission END,
                lease_owner = $3,
                lease_expires_at = now() + $4 * interval '1 millisecond',
                lease_epoch = j.lease_epoch + 1,
                audit_actor = 'worker', audit_detail = jsonb_build_object('owner', $3::text)
            WHERE j.id = ANY(ARRAY(SELECT id FROM due))
            RETURNING \(JobColumns.list("j"))
            """
        typealias Row = PostgresRow

        var kinds: [String]
        var limit: Int
        var owner: String
        var leaseMillis: Int64
        var holdingKinds: [String]
        var markingKinds: [String]

        func makeBindings() throws -> PostgresBindings {
            var binds = PostgresBindings()
            binds.append(kinds)
            binds.append(limit)
            binds.append(owner)
            binds.append(leaseMillis)
            binds.append(holdingKinds)
            binds.append(markingKinds)
            return binds
        }

        func decodeRow(_ row: PostgresRow) throws -> PostgresRow { row }
    }

    /// Renews the leases whose epoch still matches; returns the ids renewed.
    struct Heartbeat: PostgresPreparedStatement {
        static let sql = """
            UPDATE jobs j SET lease_expires_at = now() + $3 * interval '1 millisecond'
            FROM unnest($1::uuid[], $2::int8[]) AS l(id, epoch)
            WHERE j.id = l.id AND j.lease_epoch = l.epoch
            RETURNING j.id
            """
        typealias Row = UUID

        var ids: [UUID]
        var epochs: [Int64]
        var leaseMillis: Int64

        func makeBindings() throws -> PostgresBindings {
            var binds = PostgresBindings()
            binds.append(ids)
            binds.append(epochs)
            binds.append(leaseMillis)
            return binds
        }

        func decodeRow(_ row: PostgresRow) throws -> UUID { try row.decode(UUID.self) }
    }

    /// The `SET` and `FROM` of an outcome write, for any number of jobs (one row of arrays per job).
    ///
    /// Each job's write matches its claim's epoch and a live lease (`lease_expires_at IS NOT NULL`: a final
    /// job, a rescued or released one has none), so a stale claim's outcome changes nothing.
    /// `unsettled` (an unknown submission outcome still to be settled) waits like a retry but gives its
    /// attempt back and records the reconciliation columns; `deferred` keeps them; every other outcome
    /// clears them (the submission is settled).
    /// Columns of `o`: `op` is `running`, `succeeded`, `failed`, `retry`, `deferred` or `unsettled`; text columns use
    /// `''` for "none" (the arrays cannot hold NULL through PostgresNIO's encoders).
    static let outcomeUpdate = """
        UPDATE jobs j SET
            state = CASE o.op
                WHEN 'running' THEN 'running' WHEN 'succeeded' THEN 'succeeded' WHEN 'failed' THEN 'failed'
                WHEN 'retry' THEN 'scheduled' WHEN 'unsettled' THEN 'scheduled'
                ELSE CASE WHEN j.state <> 'submitting' THEN j.state
                          WHEN NULLIF(o.run_at, '')::timestamptz > now() THEN 'scheduled' ELSE 'queued' END
                END,
            attempt = CASE WHEN o.op IN ('deferred', 'unsettled') AND j.state = 'submitting' THEN greatest(j.attempt - 1, 0) ELSE j.attempt END,
            result = CASE WHEN o.op = 'succeeded' THEN NULLIF(o.result, '')::jsonb ELSE j.result END,
            error = CASE o.op WHEN 'succeeded' THEN NULL WHEN 'running' THEN j.error ELSE NULLIF(o.error, '')::jsonb END,
            cost_usd = CASE WHEN o.op = 'succeeded' THEN NULLIF(o.cost, '')::numeric ELSE j.cost_usd END,
            upstream_provider = CASE WHEN o.op = 'running' THEN o.provider ELSE j.upstream_provider END,
            upstream_job_id = CASE o.op WHEN 'running' THEN o.upstream_job_id WHEN 'retry' THEN NULL WHEN 'unsettled' THEN NULL
                                   ELSE j.upstream_job_id END,
            upstream_state = CASE o.op WHEN 'retry' THEN NULL WHEN 'unsettled' THEN NULL WHEN 'deferred' THEN j.upstream_state
                                  ELSE COALESCE(NULLIF(o.upstream_state, ''), j.upstream_state) END,
            poll_count = CASE o.op WHEN 'running' THEN CASE WHEN j.state = 'running' THEN j.poll_count + 1 ELSE 0 END
                                   WHEN 'retry' THEN 0 WHEN 'unsettled' THEN 0 ELSE j.poll_count END,
            run_at = CASE o.op WHEN 'running' THEN NULLIF(o.run_at, '')::timestamptz
                               WHEN 'retry' THEN now() + o.delay_ms * interval '1 millisecond'
                               WHEN 'unsettled' THEN now() + o.delay_ms * interval '1 millisecond'
                               WHEN 'deferred' THEN COALESCE(NULLIF(o.run_at, '')::timestamptz, j.run_at)
                               ELSE j.run_at END,
            reconcile_since = CASE o.op WHEN 'unsettled' THEN NULLIF(o.since, '')::timestamptz
                                        WHEN 'deferred' THEN j.reconcile_since ELSE NULL END,
            reconcile_hold = CASE o.op WHEN 'unsettled' THEN o.hold = 't' WHEN 'deferred' THEN j.reconcile_hold ELSE false END,
            reconcile_anchor = CASE o.op WHEN 'unsettled' THEN NULLIF(o.anchor, '')
                                         WHEN 'deferred' THEN j.reconcile_anchor ELSE NULL END,
            lease_owner = NULL, lease_expires_at = NULL,
            audit_actor = o.actor, audit_detail = o.detail::jsonb
        FROM unnest($1::uuid[], $2::int8[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
                    $9::text[], $10::text[], $11::int8[], $12::text[], $13::text[], $14::text[], $15::text[], $16::text[])
             AS o(id, epoch, op, result, error, cost, provider, upstream_job_id, upstream_state, run_at, delay_ms, actor, detail,
                  since, hold, anchor)
        WHERE j.id = o.id AND j.lease_epoch = o.epoch
        """

    /// Records many outcomes in one statement; returns each recorded job's id and new state (and error code).
    struct RecordBatch: PostgresPreparedStatement {
        static let sql = outcomeUpdate + "\nRETURNING j.id, j.state"
        typealias Row = (UUID, String)

        var writes: [OutcomeWrite]

        func makeBindings() throws -> PostgresBindings { OutcomeWrite.bindings(writes) }

        func decodeRow(_ row: PostgresRow) throws -> (UUID, String) { try row.decode((UUID, String).self) }
    }
}

/// One job's outcome as the columns of the outcome write (``JobQueueStatements/outcomeUpdate``).
public struct OutcomeWrite: Sendable {
    var id: UUID
    var epoch: Int64
    var op: String
    var result = ""
    var error = ""
    var cost = ""
    var provider = ""
    var upstreamJobID = ""
    var upstreamState = ""
    var runAt = ""
    var delayMillis: Int64 = 0
    var actor: String
    var detail: String
    /// `unsettled` only: when the unsettled submission began, `t` to hold the kind's submissions, an anchor id.
    var since = ""
    var hold = ""
    var anchor = ""

    /// The job this write is for.
    public var jobID: UUID { id }

    static func bindings(_ writes: [OutcomeWrite]) -> PostgresBindings {
        var binds = PostgresBindings()
        binds.append(writes.map(\.id))
        binds.append(writes.map(\.epoch))
        binds.append(writes.map(\.op))
        binds.append(writes.map(\.result))
        binds.append(writes.map(\.error))
        binds.append(writes.map(\.cost))
        binds.append(writes.map(\.provider))
        binds.append(writes.map(\.upstreamJobID))
        binds.append(writes.map(\.upstreamState))
        binds.append(writes.map(\.runAt))
        binds.append(writes.map(\.delayMillis))
        binds.append(writes.map(\.actor))
        binds.append(writes.map(\.detail))
        binds.append(writes.map(\.since))
        binds.append(writes.map(\.hold))
        binds.append(writes.map(\.anchor))
        return binds
    }
}
