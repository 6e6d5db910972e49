import DreamdCore
import Foundation
import Logging
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
