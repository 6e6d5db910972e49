import DreamdCore
import Foundation
import Logging
import PostgresNIO
import Synchronization

/// Counts how often each job is submitted; finishes it at once (or per `behaviour`).
final class CountingExecutor: JobExecutor {
    enum Behaviour: Sendable {
        case succeed
        case retry
        case hang(Duration)
    }

    let kinds: [JobKind]
    let provider = "test"
    let behaviour: Behaviour
    private let counts = Mutex<[UUID: Int]>([:])

    init(kind: JobKind = "test_noop", behaviour: Behaviour = .succeed) {
        self.kinds = [kind]
        self.behaviour = behaviour
    }

    func validate(kind: JobKind, params: JSONValue) throws(ValidationError) {}

    func submit(_ claimed: ClaimedJob, logger: Logger) async -> StepOutcome {
        counts.withLock { $0[claimed.job.id, default: 0] += 1 }
        switch behaviour {
        case .succeed:
            return .succeeded(result: ["attempt": .number(Double(claimed.job.attempt))], costUSD: 0.01, upstreamState: nil)
        case .retry:
            return .retry(JobError(code: "test_transient", message: "transient failure"), retryAfter: nil)
        case .hang(let duration):
            try? await Task.sleep(for: duration)
            return .succeeded(result: [:], costUSD: nil, upstreamState: nil)
        }
    }

    func poll(_ claimed: ClaimedJob, logger: Logger) async -> StepOutcome {
        .failed(JobError(code: "unexpected_poll", message: "test executor never polls"), upstreamState: nil)
    }

    var submissions: [UUID: Int] { counts.withLock { $0 } }
}

/// Submits to a pretend upstream whose callback arrives before the submission's answer: the submit step
/// stores the callback in the inbox (as the callback route would, while the job is still `submitting`),
/// then answers "running, next check in an hour". The callback is trusted (as a dry run's is).
final class EarlyCallbackExecutor: JobExecutor {
    let kinds: [JobKind] = ["test_callbacks"]
    let provider = "test"
    let client: PostgresClient
    let logger: Logger

    init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    var usesCallbacks: Bool { true }

    func validate(kind: JobKind, params: JSONValue) throws(ValidationError) {}

    func submit(_ claimed: ClaimedJob, logger: Logger) async -> StepOutcome {
        do {
            try await client.query("""
                INSERT INTO callback_inbox (provider, job_id, payload) VALUES ('test', \(claimed.job.id), '{"state": "success"}')
                """, logger: logger)
        } catch {
            return .failed(JobError(code: "test_setup", message: "\(error)"), upstreamState: nil)
        }
        return .running(upstreamJobID: "up-1", upstreamState: "queued", nextCheck: Date().addingTimeInterval(3600))
    }

    func poll(_ claimed: ClaimedJob, logger: Logger) async -> StepOutcome {
        .failed(JobError(code: "unexpected_poll", message: "the callback should have finished the job"), upstreamState: nil)
    }

    func callbackDecision(for job: Job, payload: JSONValue) -> CallbackDecision {
        .trust(.succeeded(result: ["from": "callback"], costUSD: nil, upstreamState: "success"))
    }
}
