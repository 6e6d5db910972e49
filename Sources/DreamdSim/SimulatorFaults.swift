import Foundation

/// Faults a simulator injects, settable at start (CLI flags) and at run time (tests).
public struct SimulatorFaults: Sendable, Hashable {
    /// Share of requests answered 429 with `Retry-After: retryAfterSeconds`.
    public var rateLimitRate: Double = 0
    public var retryAfterSeconds: Int = 1
    /// Share of requests answered with a 5xx (502, 503 or 504).
    public var serverErrorRate: Double = 0
    /// Share of submissions that create the job and then answer 503 anyway.
    public var createThenFailRate: Double = 0
    /// Share of jobs that end in `failure`.
    public var jobFailureRate: Double = 0
    /// Added to every answer.
    public var latency: Duration = .zero
    /// Share of finished jobs whose callback is never sent.
    public var callbackDropRate: Double = 0
    /// Share of callbacks sent twice.
    public var callbackDuplicateRate: Double = 0
    /// How long after a job finishes its callback goes out.
    public var callbackDelay: Duration = .zero
    /// Share of jobs that, after the final callback, also get a stale `running` one (out of order).
    public var callbackReorderRate: Double = 0

    public init() {}
}

/// A queue of forced answers for the next requests, for tests that need an exact sequence.
struct ForcedAnswers: Sendable {
    var statuses: [Int] = []

    mutating func next() -> Int? {
        statuses.isEmpty ? nil : statuses.removeFirst()
    }
}
