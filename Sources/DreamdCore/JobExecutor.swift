import Foundation
import Logging

/// What a worker learned from one step of a job (a submission or a poll).
public enum StepOutcome: Sendable, Hashable {
    /// Accepted or still in progress upstream: look again at `nextCheck`.
    case running(upstreamJobID: String, upstreamState: String?, nextCheck: Date, detail: JSONValue? = nil)
    /// Finished well. `checkpoints` are trained models the job produced, recorded with it.
    case succeeded(result: JSONValue, costUSD: Double?, upstreamState: String?, checkpoints: [TrainedCheckpoint] = [])
    /// Finished badly; no retry will help.
    case failed(JobError, upstreamState: String?)
    /// This attempt failed in a way a later attempt may not. `retryAfter` overrides the backoff.
    case retry(JobError, retryAfter: Duration?)
    /// The upstream cannot take the job now for a reason that is not the job's fault (e.g. the account
    /// ran out of credits): the job goes back to waiting **without using up an attempt** — `queued`
    /// (claimable as soon as its executor accepts work again) or, with `until`, `scheduled` until then.
    case deferred(until: Date?, reason: JobError)
    /// A submission's outcome is unknown and could not be settled yet (the upstream could not be asked, or
    /// its answer was not conclusive). The job waits, `scheduled` with `error` set, and is looked up again
    /// after `retryAfter` **without sending it again and without using up an attempt**. `since` is when the
    /// unsettled submission began, `anchor` an upstream id accepted before it; `holdSubmissions` asks every
    /// dreamd process on the database to hold fresh submissions of the job's kind meanwhile.
    case unsettled(JobError, retryAfter: Duration, holdSubmissions: Bool, since: Date, anchor: String?)
}

/// The job a worker holds a lease on.
public struct ClaimedJob: Sendable, Hashable {
    public var job: Job
    /// The upstream job id recorded by an earlier step, if any.
    public var upstreamJobID: String? { job.upstream?.jobID }
    /// How many times this job has been polled since its submission.
    public var pollCount: Int
    /// The fencing token of this claim: the job's `lease_epoch` as the claim set it. Heartbeats and outcome
    /// writes match it, so once the lease was rescued (and perhaps claimed again, even by this process)
    /// nothing this claim writes is accepted.
    public var leaseEpoch: Int64
    /// Set when an earlier submission of this job may have reached the upstream though its answer was
    /// lost (a 5xx or a cut connection after sending, a crash or shutdown mid-submission): when that
    /// submission began. The executor settles it (finds the upstream copy or proves there is none)
    /// before it sends anything again.
    public var reconcileSince: Date?
    /// An upstream job id accepted before `reconcileSince`, recorded by an earlier reconciliation round:
    /// a listing that still shows it covers every job created since.
    public var reconcileAnchor: String?

    public init(job: Job, pollCount: Int, leaseEpoch: Int64 = 0,
                reconcileSince: Date? = nil, reconcileAnchor: String? = nil) {
        self.job = job
        self.pollCount = pollCount
        self.leaseEpoch = leaseEpoch
        self.reconcileSince = reconcileSince
        self.reconcileAnchor = reconcileAnchor
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
    /// The same steps with a `StepContext`; by default they call the logger-only versions.
    func submit(_ claimed: ClaimedJob, context: StepContext) async -> StepOutcome
    func poll(_ claimed: ClaimedJob, context: StepContext) async -> StepOutcome
    /// Whether submissions carry a callback URL (from `StepContext.markSubmission`).
    var usesCallbacks: Bool { get }
    /// The JSON Schema of a `kind` job's `params`, as the OpenAPI document shows it: it says what
    /// `validate(kind:params:)` checks, wherever JSON Schema can say it.
    func paramsSchema(for kind: JobKind) -> JSONValue
    /// What to do with a callback received for `job`.
    func callbackDecision(for job: Job, payload: JSONValue) -> CallbackDecision
    /// The trained checkpoints a job of `kind` with `params` runs on (refused or failed once they expired).
    func referencedCheckpoints(kind: JobKind, params: JSONValue) -> [CheckpointReference]
    /// The checks the API runs before storing a job: `validate`, plus whatever needs I/O (a catalog to
    /// load, a referenced file to look at). The default runs `validate`.
    func validateSubmission(kind: JobKind, params: JSONValue) async throws(SubmissionCheckError)
    /// What a job would cost, when the executor can tell before running it (`POST /v1/estimate`).
    /// The default is `nil`: no estimate for these kinds.
    func estimate(kind: JobKind, params: JSONValue) async throws(SubmissionCheckError) -> CostEstimate?
    /// Whether `estimate(kind:params:)` prices jobs (the OpenAPI document offers `POST /v1/estimate`
    /// for these kinds only). The default is `false`.
    var estimatesCost: Bool { get }
    /// The most steps of this executor's kinds one process runs at once; `nil` for no limit beyond the
    /// worker's own concurrency. The worker claims no more than the free slots.
    var maxInFlight: Int? { get }
    /// The upstream's health as this process sees it (paused, unhealthy, in flight), if the executor
    /// tracks it. While `health.isAccepting` is false the worker claims none of this executor's kinds.
    var health: UpstreamHealth? { get }
    /// Whether this executor settles unknown submission outcomes by listing the upstream's recent jobs,
    /// so that fresh submissions of its kinds must be held while one is pending (`reconcile_hold`).
    /// The default is `false`.
    var reconcilesByListing: Bool { get }
}

/// A checkpoint a job's params name, and where: `field` is the params path (`params.checkpoint_id`).
public struct CheckpointReference: Sendable, Hashable {
    public var field: String
    public var checkpointID: String

    public init(field: String, checkpointID: String) {
        self.field = field
        self.checkpointID = checkpointID
    }
}

extension JobExecutor {
    public var usesCallbacks: Bool { false }
    public func paramsSchema(for kind: JobKind) -> JSONValue { JSONSchema.anyObject }
    public func referencedCheckpoints(kind: JobKind, params: JSONValue) -> [CheckpointReference] { [] }
    public func callbackDecision(for job: Job, payload: JSONValue) -> CallbackDecision { .confirmByPolling }
    public func validateSubmission(kind: JobKind, params: JSONValue) async throws(SubmissionCheckError) {
        do throws(ValidationError) { try validate(kind: kind, params: params) } catch { throw .invalid(error) }
    }
    public func estimate(kind: JobKind, params: JSONValue) async throws(SubmissionCheckError) -> CostEstimate? { nil }
    public var maxInFlight: Int? { nil }
    public var estimatesCost: Bool { false }
    public var health: UpstreamHealth? { nil }
    public var reconcilesByListing: Bool { false }
    /// Whether the worker may claim this executor's kinds now.
    public var isAccepting: Bool { health?.isAccepting ?? true }
}

/// Why a submission could not be accepted: the job is invalid (422), or what is needed to judge it
/// (an upstream's catalog, a referenced file) cannot be had right now (503).
public enum SubmissionCheckError: Error, Sendable, Hashable, CustomStringConvertible {
    case invalid(ValidationError)
    case unavailable(code: String, message: String)

    public var description: String {
        switch self {
        case .invalid(let error): error.description
        case .unavailable(let code, let message): "\(code): \(message)"
        }
    }
}

/// What a job (one row) would cost, computed from the upstream's price list before running it.
public struct CostEstimate: Sendable, Hashable, Codable {
    /// What the price is for, e.g. the model slug.
    public var model: String
    /// Frames one row produces (a rollout of T actions gives T + 1 frames; a batch of K, K × (T + 1)).
    public var framesPerRow: Int
    public var pricePerFrameUSD: Double

    public init(model: String, framesPerRow: Int, pricePerFrameUSD: Double) {
        self.model = model
        self.framesPerRow = framesPerRow
        self.pricePerFrameUSD = pricePerFrameUSD
    }
}

/// How a callback from an upstream is acted on. Callbacks are unsigned: by default they only make
/// the job due for a poll, which confirms the state with the daemon's own credentials.
public enum CallbackDecision: Sendable, Hashable {
    /// Poll the upstream now; its answer decides.
    case confirmByPolling
    /// Record this outcome (only for jobs the upstream cannot be asked about, e.g. dry runs).
    case trust(StepOutcome)
    /// Nothing to do (e.g. the payload is for another upstream job).
    case ignore(reason: String)
}

/// A model checkpoint a training job produced upstream.
public struct TrainedCheckpoint: Sendable, Hashable, Codable {
    public var upstreamCheckpointID: String
    public var trainedAt: Date
    public var checkpointType: String?
    public var modelType: String?
    public var fileFormat: String?
    public var isExtractedLora: Bool
    public var trainingStep: Int?
    public var sizeBytes: Int64?
    public var url: String?

    public init(
        upstreamCheckpointID: String, trainedAt: Date, checkpointType: String? = nil, modelType: String? = nil,
        fileFormat: String? = nil, isExtractedLora: Bool = false, trainingStep: Int? = nil, sizeBytes: Int64? = nil, url: String? = nil
    ) {
        self.upstreamCheckpointID = upstreamCheckpointID
        self.trainedAt = trainedAt
        self.checkpointType = checkpointType
        self.modelType = modelType
        self.fileFormat = fileFormat
        self.isExtractedLora = isExtractedLora
        self.trainingStep = trainingStep
        self.sizeBytes = sizeBytes
        self.url = url
    }
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

    /// One executor per provider, by provider name.
    public var executors: [any JobExecutor] {
        var seen: Set<String> = []
        return byKind.values.sorted { $0.provider < $1.provider }.filter { seen.insert($0.provider).inserted }
    }
}

/// What a step can use besides its job: a logger, and a way to publish progress while it runs.
public struct StepContext: Sendable {
    public var logger: Logger
    /// Publishes the step's progress (counters shown on the job, and the output so far). Cheap to call
    /// often: the worker writes at most a few times per second.
    public var reportProgress: @Sendable (StepProgress) async -> Void
    /// Records the submission's durable mark, its callback token, and returns the callback URL (nil when
    /// this daemon takes no callbacks). An executor that takes callbacks calls it right before the request
    /// goes out, after any wait for the rate budget: a submission rescued without a mark was never sent
    /// (migration 0026). If it throws, nothing may be sent.
    public var markSubmission: @Sendable () async throws -> String?

    public init(logger: Logger, reportProgress: @escaping @Sendable (StepProgress) async -> Void = { _ in },
                markSubmission: @escaping @Sendable () async throws -> String? = { nil }) {
        self.logger = logger
        self.reportProgress = reportProgress
        self.markSubmission = markSubmission
    }
}

/// Progress of a streaming step.
public struct StepProgress: Sendable, Hashable {
    /// Shown on the job as `progress`, e.g. `{"output_length": 1234, "output_tokens": 250}`.
    public var counters: JSONValue
    /// The output so far, served by `GET /v1/jobs/{id}/output`.
    public var partialOutput: String?

    public init(counters: JSONValue, partialOutput: String? = nil) {
        self.counters = counters
        self.partialOutput = partialOutput
    }
}

extension JobExecutor {
    /// Runs a submission step with a context; executors that stream progress implement this.
    public func submit(_ claimed: ClaimedJob, context: StepContext) async -> StepOutcome {
        await submit(claimed, logger: context.logger)
    }

    /// Runs a poll step with a context.
    public func poll(_ claimed: ClaimedJob, context: StepContext) async -> StepOutcome {
        await poll(claimed, logger: context.logger)
    }
}
