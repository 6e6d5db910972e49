import DreamdCore
import Foundation
import Logging

/// Runs dreamlook.ai jobs: submits with the `dreamd_job_id` tag, adopts an earlier submission after
/// an unknown outcome, and polls `GET /jobs/<type>/<id>` with a backing-off schedule.
public struct DreamlookExecutor: JobExecutor {
    public let client: DreamlookClient
    /// When and how often a running job is polled.
    public let pollSchedule: PollSchedule

    public var kinds: [JobKind] { [.imageGen] }
    public var provider: String { DreamlookClient.provider }

    public init(client: DreamlookClient, pollSchedule: PollSchedule) {
        self.client = client
        self.pollSchedule = pollSchedule
    }

    public func validate(kind: JobKind, params: JSONValue) throws(ValidationError) {
        switch kind {
        case .imageGen: try ImageGenParams.validate(params)
        default: throw ValidationError(field: "kind", message: "\(kind) is not run by the dreamlook executor")
        }
    }

    static func jobType(_ kind: JobKind) -> String { kind.rawValue }

    public func submit(_ claimed: ClaimedJob, logger: Logger) async -> StepOutcome {
        let job = claimed.job
        let jobType = Self.jobType(job.kind)
        let now = Date()
        do {
            // An earlier attempt may have reached dreamlook even though its answer was lost.
            if job.attempt > 1, let earlier = try await findEarlierSubmission(of: job, jobType: jobType, logger: logger) {
                logger.info("adopted an earlier submission", metadata: ["upstream_job_id": "\(earlier.jobID ?? "")"])
                return .running(upstreamJobID: earlier.jobID ?? "", upstreamState: earlier.state,
                                nextCheck: now.addingTimeInterval(pollSchedule.delay(afterPolls: 0).seconds),
                                detail: ["submission": "adopted"])
            }
            let upstreamJobID = try await client.submit(jobType: jobType, body: requestBody(for: job), logger: logger)
            return .running(upstreamJobID: upstreamJobID, upstreamState: "queued",
                            nextCheck: now.addingTimeInterval(pollSchedule.delay(afterPolls: 0).seconds),
                            detail: ["submission": "submitted"])
        } catch {
            return error.submitOutcome
        }
    }

    public func poll(_ claimed: ClaimedJob, logger: Logger) async -> StepOutcome {
        guard let upstreamJobID = claimed.upstreamJobID else {
            return .retry(JobError(code: "missing_upstream_job", message: "running job has no upstream job id"), retryAfter: nil)
        }
        let nextCheck = Date().addingTimeInterval(pollSchedule.delay(afterPolls: claimed.pollCount + 1).seconds)
        do {
            let upstream = try await client.job(jobType: Self.jobType(claimed.job.kind), id: upstreamJobID, logger: logger)
            return outcome(of: upstream, upstreamJobID: upstreamJobID, nextCheck: nextCheck)
        } catch {
            switch error {
            case .final:
                return .failed(error.jobError, upstreamState: nil)
            case .retryable(_, _, let retryAfter):
                let later = retryAfter.map { Date().addingTimeInterval($0.seconds) } ?? nextCheck
                return .running(upstreamJobID: upstreamJobID, upstreamState: nil, nextCheck: max(later, nextCheck), detail: ["poll_error": .string(error.description)])
            case .outcomeUnknown:
                return .running(upstreamJobID: upstreamJobID, upstreamState: nil, nextCheck: nextCheck, detail: ["poll_error": .string(error.description)])
            }
        }
    }

    /// Maps a dreamlook job object to a step outcome.
    func outcome(of upstream: DreamlookJob, upstreamJobID: String, nextCheck: Date) -> StepOutcome {
        switch upstream.state {
        case "success":
            var result: [String: JSONValue] = ["upstream_job_id": .string(upstreamJobID)]
            for key in ["image_gen_results", "dreambooth_result", "thumbnails", "running_duration", "queued_duration"] {
                if let value = upstream.raw[key], !value.isNull { result[key] = value }
            }
            return .succeeded(result: .object(result), costUSD: nil, upstreamState: "success")
        case "failure":
            let reason = upstream.failureReason ?? "dreamlook reported a failure without a reason"
            return .failed(JobError(code: "upstream_job_failed", message: reason), upstreamState: "failure")
        default:
            return .running(upstreamJobID: upstreamJobID, upstreamState: upstream.state, nextCheck: nextCheck)
        }
    }

    /// The request body: the user's params plus the `dreamd_job_id` tag.
    func requestBody(for job: Job) -> JSONValue {
        var body = job.params.objectValue ?? [:]
        var tags = body["tags"]?.arrayValue ?? []
        tags.append(["key": .string(DreamlookClient.jobTagKey), "value": .string(job.id.uuidString.lowercased())])
        body["tags"] = .array(tags)
        return .object(body)
    }

    func findEarlierSubmission(of job: Job, jobType: String, logger: Logger) async throws(UpstreamError) -> DreamlookJob? {
        let wanted = job.id.uuidString.lowercased()
        return try await client.recentJobs(jobType: jobType, logger: logger)
            .first { $0.tag(DreamlookClient.jobTagKey)?.lowercased() == wanted }
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
