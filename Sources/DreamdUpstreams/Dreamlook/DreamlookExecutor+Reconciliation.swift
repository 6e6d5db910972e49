import DreamdCore
import Foundation
import Logging
import Metrics

/// Settling a submission whose answer was lost, so that no job is paid for twice.
///
/// dreamlook cannot be asked "did you create the job tagged X?": `GET /jobs/<type>` lists only its 50
/// most recent jobs. So a lost answer is looked up **at once, in the same claim**, before dreamd's own
/// traffic can push it out of that window, and the answer is only trusted when it is conclusive:
///
/// - **found**: a listed job carries the `dreamd_job_id` tag: it is adopted and followed;
/// - **absent**, conclusive: the listing holds fewer than 50 jobs, or still shows an *anchor* (a job this
///   process saw accepted before the lost submission began), or its oldest job was created well before
///   it: the submission never created a job and may be sent again;
/// - **inconclusive**: the listing has moved on; sending again could pay twice, so the job waits
///   (`submission_unreconciled`) for a callback naming it or a person, and fails `submission_unknown`
///   after `reconcileDeadline`;
/// - **lookup failed**: dreamlook could not be asked; every dreamd process holds fresh submissions of the
///   type (`reconcile_hold`) while the job asks again every second, up to `reconcileHoldLimit`.
extension DreamlookExecutor {
    /// What a listing says about one lost submission.
    enum Reconciliation: Sendable {
        case found(DreamlookJob)
        case absent
        case inconclusive(listed: Int)
        case lookupFailed(UpstreamError)

        var metricLabel: String {
            switch self {
            case .found: "adopted"
            case .absent: "absent"
            case .inconclusive: "inconclusive"
            case .lookupFailed: "lookup_failed"
            }
        }
    }

    /// How far dreamlook's clock may be behind ours when a listing's creation times are compared with
    /// when a submission began.
    static let clockSkewAllowance: TimeInterval = 2
    /// Where a `submission_unreconciled` message's own words begin, after the original cause.
    static let unsettledMarker = "; whether dreamlook created the job is not known yet"

    /// Looks the job up in the listing of its type. `since` is when the lost submission began; `anchor`
    /// an id accepted before then (besides the ones this process's ledger knows).
    func reconcile(_ job: Job, since: Date, anchor: String?, logger: Logger) async -> Reconciliation {
        let jobType = Self.jobType(job.kind)
        let wanted = job.id.uuidString.lowercased()
        let result: Reconciliation
        do {
            let listed = try await client.recentJobs(jobType: jobType, logger: logger)
            health?.markHealthy()
            var anchors = ledger.accepted(jobType: jobType, before: since)
            if let anchor { anchors.insert(anchor) }
            if let match = listed.first(where: { $0.tag(DreamlookClient.jobTagKey)?.lowercased() == wanted }), match.jobID != nil {
                result = .found(match)
            } else if listed.count < DreamlookClient.listingLimit
                        || listed.contains(where: { $0.jobID.map(anchors.contains) ?? false })
                        || (listed.last?.queuedStart).map({ $0 < since.addingTimeInterval(-Self.clockSkewAllowance) }) == true {
                result = .absent
            } else {
                result = .inconclusive(listed: listed.count)
            }
        } catch {
            result = .lookupFailed(error)
        }
        Counter(label: "dreamd_reconciliations_total", dimensions: [("kind", job.kind.rawValue), ("result", result.metricLabel)]).increment()
        logger.notice("reconciled a submission whose answer was lost", metadata: ["result": "\(result.metricLabel)"])
        return result
    }

    /// The job adopts the upstream copy a reconciliation found.
    func adopted(_ upstream: DreamlookJob, job: Job) -> StepOutcome? {
        guard let upstreamJobID = upstream.jobID else { return nil }
        if upstream.isFinished { return outcome(of: upstream, upstreamJobID: upstreamJobID, nextCheck: Date()) }
        return .running(upstreamJobID: upstreamJobID, upstreamState: upstream.state, nextCheck: firstCheck(for: upstreamJobID),
                        detail: ["submission": "adopted", "attempt": .number(Double(job.attempt))])
    }

    /// The job waits for a later lookup (or a callback naming it), or fails once `reconcileDeadline` has
    /// passed since the lost submission began. Nothing is sent again.
    func unsettled(_ job: Job, since: Date, anchor: String?, lookup: Reconciliation, cause: String) -> StepOutcome {
        let age = Date().timeIntervalSince(since)
        guard age < reconcileDeadline.seconds else {
            return .failed(JobError(
                code: "submission_unknown",
                message: "\(cause); dreamd could not tell within \(DurationParser.format(reconcileDeadline)) whether dreamlook created the job, so it was not sent again (look for the tag dreamd_job_id=\(job.id.uuidString.lowercased()) on dreamlook, then retry the job if it is not there)"),
                upstreamState: nil)
        }
        let hold: Bool
        let wait: Duration
        let why: String
        switch lookup {
        case .lookupFailed(let error):
            hold = age < reconcileHoldLimit.seconds
            wait = hold ? .seconds(1) : .seconds(15)
            why = "dreamlook could not be asked (\(error.description))"
        case .inconclusive(let listed):
            hold = false
            wait = .seconds(min(60, max(5, Int64(age / 10))))
            why = "its listing of \(listed) recent jobs no longer reaches back to the submission"
        case .found, .absent:
            hold = false
            wait = .seconds(5)
            why = "the lookup did not settle it"
        }
        return .unsettled(
            JobError(code: "submission_unreconciled",
                     message: "\(cause)\(Self.unsettledMarker): \(why); it is not sent again, and is looked up again (or adopted from a callback naming it)"),
            retryAfter: wait, holdSubmissions: hold, since: since, anchor: anchor)
    }

    /// After a submission whose outcome is unknown (`since` is when it began): look it up now, in this claim.
    func settleLostAnswer(_ claimed: ClaimedJob, error: UpstreamError, since: Date, anchor: String?, logger: Logger) async -> StepOutcome {
        let job = claimed.job
        let lookup = await reconcile(job, since: since, anchor: anchor, logger: logger)
        switch lookup {
        case .found(let upstream):
            if let adopted = adopted(upstream, job: job) { return adopted }
            return unsettled(job, since: since, anchor: anchor, lookup: lookup, cause: error.description)
        case .absent:
            // It never reached dreamlook: a plain retry.
            return .retry(error.jobError, retryAfter: nil)
        case .inconclusive, .lookupFailed:
            return unsettled(job, since: since, anchor: anchor, lookup: lookup, cause: error.description)
        }
    }
}
