import DreamdCore
import Foundation
import PostgresNIO

/// The columns every job query selects, in the order `JobRow.decode` reads them.
enum JobColumns {
    /// How many columns `list` selects (a query may add its own after them).
    static let count = 25

    static func list(_ alias: String = "") -> String {
        let p = alias.isEmpty ? "" : "\(alias)."
        return """
            \(p)id, \(p)kind, \(p)state, \(p)params::text, \(p)result::text, \(p)error::text, \(p)attempt, \
            \(p)max_attempts, \(p)priority, \(p)run_at, \(p)created_at, \(p)updated_at, \(p)finished_at, \
            \(p)upstream_provider, \(p)upstream_job_id, \(p)upstream_state, \(p)cost_usd::float8, \(p)schedule_id, \
            \(p)metadata::text, \(p)poll_count, \(p)request_hash, \(p)progress::text, \(p)lease_epoch, \
            \(p)reconcile_since, \(p)reconcile_anchor
            """
    }
}

/// A decoded `jobs` row: the API's view plus the bookkeeping the queue needs.
struct JobRow: Sendable {
    var job: Job
    var pollCount: Int
    var requestHash: String?
    /// The fencing token of the job's current lease (see `ClaimedJob.leaseEpoch`).
    var leaseEpoch: Int64
    /// Set while a submission's outcome is unknown (see `ClaimedJob.reconcileSince`).
    var reconcileSince: Date?
    var reconcileAnchor: String?

    /// Decodes the `JobColumns.list` columns, starting at column `offset` of `row`.
    init(_ row: PostgresRow, offset: Int = 0) throws {
        let cells = OffsetCells(cells: row.makeRandomAccess(), offset: offset)
        func json(_ index: Int) throws -> JSONValue? {
            guard let text = try cells[index].decode(String?.self) else { return nil }
            return try DreamdJSON.decode(JSONValue.self, from: text)
        }
        let provider = try cells[13].decode(String?.self)
        let stateText = try cells[2].decode(String.self)
        guard let state = JobState(rawValue: stateText) else { throw JobStoreError.corruptRow("unknown state \(stateText)") }
        var error: JobError?
        if let errorText = try cells[5].decode(String?.self) {
            error = try? DreamdJSON.decode(JobError.self, from: errorText)
        }
        job = Job(
            id: try cells[0].decode(UUID.self),
            kind: JobKind(rawValue: try cells[1].decode(String.self)),
            state: state,
            params: try json(3) ?? .null,
            attempt: try cells[6].decode(Int.self),
            maxAttempts: try cells[7].decode(Int.self),
            priority: try cells[8].decode(Int.self),
            runAt: try cells[9].decode(Date.self),
            createdAt: try cells[10].decode(Date.self),
            updatedAt: try cells[11].decode(Date.self),
            finishedAt: try cells[12].decode(Date?.self),
            upstream: provider.map {
                Job.Upstream(provider: $0, jobID: try? cells[14].decode(String?.self), state: try? cells[15].decode(String?.self))
            },
            result: try json(4),
            error: error,
            costUSD: try cells[16].decode(Double?.self),
            scheduleID: try cells[17].decode(UUID?.self),
            metadata: try json(18) ?? .object([:]),
            progress: try json(21)
        )
        pollCount = try cells[19].decode(Int.self)
        requestHash = try cells[20].decode(String?.self)
        leaseEpoch = try cells[22].decode(Int64.self)
        reconcileSince = try cells[23].decode(Date?.self)
        reconcileAnchor = try cells[24].decode(String?.self)
    }
}

/// A row's cells seen from a column offset (a query that selects its own columns before the job's).
private struct OffsetCells {
    let cells: PostgresRandomAccessRow
    let offset: Int

    subscript(index: Int) -> PostgresCell { cells[index + offset] }
}

extension JobRow {
    /// The row as a claim: the job plus what its step needs (poll count, fencing token, reconciliation).
    var claimed: ClaimedJob {
        ClaimedJob(job: job, pollCount: pollCount, leaseEpoch: leaseEpoch,
                   reconcileSince: reconcileSince, reconcileAnchor: reconcileAnchor)
    }
}

/// Errors of the job store that are not PostgreSQL's own.
public enum JobStoreError: Error, CustomStringConvertible {
    case corruptRow(String)
    case invalidCursor
    /// A batched outcome write did not answer for this job (it was not in the statement's result).
    case outcomeNotRecorded(UUID)

    public var description: String {
        switch self {
        case .corruptRow(let why): "corrupt jobs row: \(why)"
        case .invalidCursor: "invalid cursor"
        case .outcomeNotRecorded(let id): "the outcome of job \(id) was not recorded"
        }
    }
}
