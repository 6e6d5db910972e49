import DreamdCore
import Foundation
import Logging

/// Runs dreamlook.ai jobs (`image_gen`, `dreambooth`, `dreambooth_image_gen`).
///
/// - Submits with the `dreamd_job_id` tag and, when the daemon has a public URL, a per-attempt callback URL.
/// - A submission whose answer is lost (5xx, a cut connection, a crash mid-call) is settled before anything
///   is sent again: looked up by its tag at once, adopted when found, sent again only when its absence is
///   conclusive (`DreamlookExecutor+Reconciliation.swift`).
/// - Polls `GET /jobs/<type>/<id>` on a backing-off schedule; with callbacks the schedule backs off further,
///   and a job whose callback is overdue (by its own progress estimate) is polled sooner.
/// - Treats a callback as a hint: it only makes the job due for a poll. Dry runs (`TEST_` ids), which
///   dreamlook never lists nor answers for, are finished by their callback.
public struct DreamlookExecutor: JobExecutor {
    public let client: DreamlookClient
    public let pollSchedule: PollSchedule
    /// The longer cap between polls used while callbacks are expected.
    public let callbackPollCap: Duration
    public let usesCallbacks: Bool
    /// How long a dry run waits for its callback before it fails.
    public let dryRunTimeout: Duration
    /// How long after its creation a running job may keep meeting 401/403 on its polls before it fails
    /// (`DREAMD_DREAMLOOK_AUTH_DEADLINE`, default 48 h: dreamlook's retention, after which its outputs are gone).
    public let authFaultDeadline: Duration
    /// Unhealthy while dreamlook refuses the key (401/403); cleared by the next answered call.
    public let health: UpstreamHealth?
    /// How long after a lost submission dreamd keeps trying to settle it before the job fails
    /// `submission_unknown` (`DREAMD_RECONCILE_DEADLINE`, default 1 h).
    public let reconcileDeadline: Duration
    /// How long a job whose lookup fails may hold fresh submissions of its type (default 10 min).
    public let reconcileHoldLimit: Duration
    /// The ids this process saw accepted, the anchors of conclusive lookups.
    public let ledger: SubmissionLedger

    public var reconcilesByListing: Bool { true }

    public var kinds: [JobKind] { [.imageGen, .dreambooth, .dreamboothImageGen] }
    public var provider: String { DreamlookClient.provider }

    public init(client: DreamlookClient, pollSchedule: PollSchedule, usesCallbacks: Bool = false,
                callbackPollCap: Duration = .seconds(600), dryRunTimeout: Duration = .seconds(600),
                authFaultDeadline: Duration = .seconds(48 * 3600), health: UpstreamHealth? = UpstreamHealth(name: DreamlookClient.provider),
                reconcileDeadline: Duration = .seconds(3600), reconcileHoldLimit: Duration = .seconds(600),
                ledger: SubmissionLedger = SubmissionLedger()) {
        self.reconcileDeadline = reconcileDeadline
        self.reconcileHoldLimit = reconcileHoldLimit
        self.ledger = ledger
        self.client = client
        self.pollSchedule = pollSchedule
        self.usesCallbacks = usesCallbacks
        self.callbackPollCap = callbackPollCap
        self.dryRunTimeout = dryRunTimeout
        self.authFaultDeadline = authFaultDeadline
        self.health = health
    }

    public func paramsSchema(for kind: JobKind) -> JSONValue { DreamlookParams.schema(for: kind) }

    public func validate(kind: JobKind, params: JSONValue) throws(ValidationError) {
        try DreamlookParams.validate(kind: kind, params: params)
    }

    /// `image_gen`: `params.checkpoint_id`; `dreambooth_image_gen`: each `params.image_gen[i].checkpoint_id`.
    public func referencedCheckpoints(kind: JobKind, params: JSONValue) -> [CheckpointReference] {
        switch kind {
        case .imageGen:
            return params["checkpoint_id"]?.stringValue.map { [CheckpointReference(field: "params.checkpoint_id", checkpointID: $0)] } ?? []
        case .dreamboothImageGen:
            return (params["image_gen"]?.arrayValue ?? []).enumerated().compactMap { index, request in
                request["checkpoint_id"]?.stringValue.map { CheckpointReference(field: "params.image_gen[\(index)].checkpoint_id", checkpointID: $0) }
            }
        default:
            return []
        }
    }

    static func jobType(_ kind: JobKind) -> String { kind.rawValue }
    /// What `UpstreamError.classify` calls a 401 and a 403.
    static let authFaultCodes: Set<String> = ["upstream_unauthorized", "upstream_forbidden"]
    static func isDryRun(_ upstreamJobID: String?) -> Bool { upstreamJobID?.hasPrefix("TEST_") == true }

    // MARK: Submission

    /// dreamlook echoes the request, callback URL included, in its job objects and error messages: every
    /// outcome is stripped of callback tokens before it is recorded (`CallbackRedaction`).
    public func submit(_ claimed: ClaimedJob, logger: Logger) async -> StepOutcome {
        await submit(claimed, context: StepContext(logger: logger))
    }

    public func submit(_ claimed: ClaimedJob, context: StepContext) async -> StepOutcome {
        CallbackRedaction.redact(await submitting(claimed, context: context))
    }

    func submitting(_ claimed: ClaimedJob, context: StepContext) async -> StepOutcome {
        let logger = context.logger
        let job = claimed.job
        let jobType = Self.jobType(job.kind)
        if let since = claimed.reconcileSince {
            // An earlier submission may have reached dreamlook though its answer was lost: settle it first.
            let cause = Self.unsettledCause(job.error)
            let lookup = await reconcile(job, since: since, anchor: claimed.reconcileAnchor, logger: logger)
            switch lookup {
            case .found(let upstream):
                if let adopted = adopted(upstream, job: job) { return adopted }
                return unsettled(job, since: since, anchor: claimed.reconcileAnchor, lookup: lookup, cause: cause)
            case .absent:
                guard job.attempt <= job.maxAttempts else {
                    return .failed(JobError(code: job.error?.code ?? "submission_failed",
                                            message: "\(cause); dreamlook never created it and its \(job.maxAttempts) attempts are used up"),
                                   upstreamState: nil)
                }
            case .inconclusive, .lookupFailed:
                return unsettled(job, since: since, anchor: claimed.reconcileAnchor, lookup: lookup, cause: cause)
            }
        }
        // The rate budget first, then the durable mark (the callback token), then the POST: a process killed
        // while it waited has no mark, so its job is known never to have been sent (migration 0026).
        do { try await client.awaitTurn() } catch { return error.submitOutcome }
        let callbackURL: String?
        do {
            callbackURL = try await context.markSubmission()
        } catch {
            logger.warning("could not record a callback token; not submitting now", metadata: ["error": "\(error)"])
            return .deferred(until: Date().addingTimeInterval(5), reason: JobError(
                code: "callback_token_unavailable", message: "the callback token could not be recorded; the submission waits"))
        }
        let started = Date()
        let anchor = ledger.anchor(jobType: jobType, before: started)
        do {
            let upstreamJobID = try await client.submit(jobType: jobType, body: requestBody(for: job, callbackURL: callbackURL), paced: true, logger: logger)
            if !Self.isDryRun(upstreamJobID) { ledger.accepted(upstreamJobID, jobType: jobType) }
            var detail: [String: JSONValue] = ["submission": "submitted", "callback": .bool(callbackURL != nil)]
            if Self.isDryRun(upstreamJobID) { detail["dry_run"] = true }
            return .running(upstreamJobID: upstreamJobID, upstreamState: "queued", nextCheck: firstCheck(for: upstreamJobID), detail: .object(detail))
        } catch {
            if case .outcomeUnknown = error {
                return await settleLostAnswer(claimed, error: error, since: started, anchor: anchor, logger: logger)
            }
            return error.submitOutcome
        }
    }

    /// What lost the answer of the submission being settled, from the job's error: a waiting job's error
    /// (`submission_unreconciled`) begins with the original cause.
    static func unsettledCause(_ error: JobError?) -> String {
        guard let error else { return "an earlier submission's answer was lost" }
        if error.code == "submission_unreconciled", let range = error.message.range(of: Self.unsettledMarker) {
            return String(error.message[..<range.lowerBound])
        }
        return "\(error.code): \(error.message)"
    }

    func firstCheck(for upstreamJobID: String) -> Date {
        // A dry run cannot be polled: it waits for its callback, up to a timeout.
        let delay = Self.isDryRun(upstreamJobID) ? dryRunTimeout : pollSchedule.delay(afterPolls: 0)
        return Date().addingTimeInterval(delay.seconds)
    }

    /// The request body: the user's params plus the `dreamd_job_id` tag and the callback URL.
    func requestBody(for job: Job, callbackURL: String?) -> JSONValue {
        var body = job.params.objectValue ?? [:]
        var tags = body["tags"]?.arrayValue ?? []
        tags.append(["key": .string(DreamlookClient.jobTagKey), "value": .string(job.id.uuidString.lowercased())])
        body["tags"] = .array(tags)
        if let callbackURL { body["callback"] = .string(callbackURL) }
        return .object(body)
    }

    // MARK: Polling

    public func poll(_ claimed: ClaimedJob, logger: Logger) async -> StepOutcome {
        CallbackRedaction.redact(await polling(claimed, logger: logger))
    }

    func polling(_ claimed: ClaimedJob, logger: Logger) async -> StepOutcome {
        guard let upstreamJobID = claimed.upstreamJobID else {
            return .retry(JobError(code: "missing_upstream_job", message: "running job has no upstream job id"), retryAfter: nil)
        }
        if Self.isDryRun(upstreamJobID) {
            return .failed(JobError(code: "dry_run_callback_missing",
                                    message: "dry run \(upstreamJobID) got no callback within \(DurationParser.format(dryRunTimeout)); dreamlook cannot be asked about dry runs"),
                           upstreamState: nil)
        }
        let backoff = Date().addingTimeInterval(nextPollDelay(afterPolls: claimed.pollCount + 1).seconds)
        do {
            let upstream = try await client.job(jobType: Self.jobType(claimed.job.kind), id: upstreamJobID, logger: logger)
            health?.markHealthy()
            return outcome(of: upstream, upstreamJobID: upstreamJobID, nextCheck: earliest(backoff, overdueCheck(for: upstream)))
        } catch {
            switch error {
            case .final(let code, _) where Self.authFaultCodes.contains(code):
                // A key rotation or a transient auth fault must not fail a job that is paid for and running:
                // the upstream turns unhealthy, polls go on backing off, and only the deadline fails the job.
                health?.markUnhealthy(reason: error.description)
                let age = Date().timeIntervalSince(claimed.job.createdAt)
                guard age < authFaultDeadline.seconds else {
                    return .failed(JobError(code: error.jobError.code,
                                            message: "\(error.description); still refused \(DurationParser.format(authFaultDeadline)) after the job was created"),
                                   upstreamState: nil)
                }
                return .running(upstreamJobID: upstreamJobID, upstreamState: nil, nextCheck: backoff, detail: ["poll_error": .string(error.description)])
            case .final:
                return .failed(error.jobError, upstreamState: nil)
            case .retryable(_, _, let retryAfter):
                let later = retryAfter.map { Date().addingTimeInterval($0.seconds) } ?? backoff
                return .running(upstreamJobID: upstreamJobID, upstreamState: nil, nextCheck: max(later, backoff), detail: ["poll_error": .string(error.description)])
            case .outcomeUnknown:
                return .running(upstreamJobID: upstreamJobID, upstreamState: nil, nextCheck: backoff, detail: ["poll_error": .string(error.description)])
            }
        }
    }

    /// The back-off between polls: capped low without callbacks, high with them (callbacks do the work).
    func nextPollDelay(afterPolls polls: Int) -> Duration {
        var schedule = pollSchedule
        if usesCallbacks { schedule.cap = max(schedule.cap, callbackPollCap) }
        return schedule.delay(afterPolls: polls)
    }

    /// When a running job should be done by its own progress (`percentage_done` over `running_duration`),
    /// plus a grace period for its callback. Past that, the callback is overdue and a poll is due.
    func overdueCheck(for upstream: DreamlookJob) -> Date? {
        guard upstream.state == "running", let done = upstream.percentageDone, done > 0, done < 100,
              let elapsed = upstream.runningDuration, elapsed > 0 else { return nil }
        let remaining = elapsed * (100 - done) / done
        return Date().addingTimeInterval(remaining + max(pollSchedule.first.seconds, 1))
    }

    func earliest(_ a: Date, _ b: Date?) -> Date { b.map { min(a, $0) } ?? a }

    /// Maps a dreamlook job object to a step outcome.
    func outcome(of upstream: DreamlookJob, upstreamJobID: String, nextCheck: Date) -> StepOutcome {
        switch upstream.state {
        case "success":
            var result: [String: JSONValue] = ["upstream_job_id": .string(upstreamJobID)]
            for key in ["image_gen_results", "dreambooth_result", "thumbnails", "running_duration", "queued_duration"] {
                if let value = upstream.raw[key], !value.isNull { result[key] = value }
            }
            if Self.isDryRun(upstreamJobID) { result["dry_run"] = true }
            return .succeeded(result: .object(result), costUSD: nil, upstreamState: "success",
                              checkpoints: Self.isDryRun(upstreamJobID) ? [] : upstream.checkpoints)
        case "failure":
            let reason = upstream.failureReason ?? "dreamlook reported a failure without a reason"
            return .failed(JobError(code: "upstream_job_failed", message: reason), upstreamState: "failure")
        default:
            return .running(upstreamJobID: upstreamJobID, upstreamState: upstream.state, nextCheck: nextCheck)
        }
    }

    // MARK: Callbacks

    public func callbackDecision(for job: Job, payload: JSONValue) -> CallbackDecision {
        let upstream = DreamlookJob(payload)
        guard let upstreamJobID = job.upstream?.jobID else {
            // A job whose submission is not settled (its answer was lost): a callback carrying its tag is
            // the upstream copy, found. It is adopted; its state is then confirmed by polling.
            if let reported = upstream.jobID, !Self.isDryRun(reported),
               upstream.tag(DreamlookClient.jobTagKey)?.lowercased() == job.id.uuidString.lowercased() {
                return .trust(.running(upstreamJobID: reported, upstreamState: upstream.state, nextCheck: Date(),
                                       detail: ["submission": "adopted from a callback"]))
            }
            return .confirmByPolling
        }
        if Self.isDryRun(upstreamJobID) {
            // dreamlook cannot be asked about a dry run; its callback carries dummy data and costs nothing.
            guard upstream.isFinished else { return .ignore(reason: "dry-run callback for an unfinished state") }
            return .trust(CallbackRedaction.redact(outcome(of: upstream, upstreamJobID: upstreamJobID, nextCheck: Date())))
        }
        if let reported = upstream.jobID, reported != upstreamJobID {
            return .ignore(reason: "callback names upstream job \(reported), not \(upstreamJobID)")
        }
        return .confirmByPolling
    }
}

/// How long to wait before each poll of a running upstream job: `first`, then growing by `factor`
/// up to `cap`, with jitter so many jobs do not poll in step.
public struct PollSchedule: Sendable, Hashable {
    public var first: Duration
    public var factor: Double
    public var cap: Duration
    public var jitter: Double

    public init(first: Duration, factor: Double = 1.5, cap: Duration = .seconds(60), jitter: Double = 0.1) {
        self.first = first
        self.factor = factor
        self.cap = max(cap, first)
        self.jitter = jitter
    }

    public func delay(afterPolls polls: Int) -> Duration {
        BackoffPolicy(base: first, factor: factor, cap: cap, jitter: jitter).delay(afterAttempt: polls + 1)
    }
}
