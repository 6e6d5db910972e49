import Foundation
import Logging

/// What a worker learned from one step of a job (a submission or a poll).
public enum StepOutcome: Sendable, Hashable {
    /// Accepted or still in progress upstream: look again at `nextCheck`.
    case running(upstreamJobID: String, upstreamState: String?, nextCheck: Date, detail: JSONValue? = nil)
    /// Finished well.
    case succeeded(result: JSONValue, costUSD: Double?, upstreamState: String?)
    /// Finished badly; no retry will help.
    case failed(JobError, upstreamState: String?)
    /// This attempt failed in a way a later attempt may not. `retryAfter` overrides the backoff.
    case retry(JobError, retryAfter: Duration?)
}

/// The job a worker holds a lease on.
public struct ClaimedJob: Sendable, Hashable {
    public var job: Job
    /// The upstream job id recorded by an earlier step, if any.
    public var upstreamJobID: String? { job.upstream?.jobID }
    /// How many times this job has been polled since its submission.
    public var pollCount: Int

    public init(job: Job, pollCount: Int) {
        self.job = job
        self.pollCount = pollCount
    }
}

/// Submits and follows the jobs of some kinds on their upstream. One conformance per upstream folder.
///
/// Executors never touch the database: the worker records what they return, in one transaction with
/// the audit row and any outgoing event.
public protocol JobExecutor: Sendable {
    /// The kinds this executor runs.
    var kinds: [JobKind] { get }
    /// The upstream's name as recorded on jobs (`dreamlook`, `dream`, `dreamgen`).
    var provider: String { get }
    /// Checks a submission's params before the job is stored. Throws naming the bad field.
    func validate(kind: JobKind, params: JSONValue) throws(ValidationError)
    /// Sends the job upstream (or adopts an earlier submission of it).
    func submit(_ claimed: ClaimedJob, logger: Logger) async -> StepOutcome
    /// Asks the upstream how an accepted job is doing.
    func poll(_ claimed: ClaimedJob, logger: Logger) async -> StepOutcome
}

/// The executors this process runs, by kind.
public struct ExecutorRegistry: Sendable {
    private var byKind: [JobKind: any JobExecutor] = [:]

    public init(_ executors: [any JobExecutor] = []) {
        for executor in executors { register(executor) }
    }

    public mutating func register(_ executor: any JobExecutor) {
        for kind in executor.kinds { byKind[kind] = executor }
    }

    public func executor(for kind: JobKind) -> (any JobExecutor)? { byKind[kind] }

    public var kinds: [JobKind] { byKind.keys.sorted { $0.rawValue < $1.rawValue } }
}
