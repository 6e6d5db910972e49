import DreamdCore
import Foundation
import Logging

/// Acts on stored callbacks, when they arrive and again later for those that had to wait.
///
/// A callback is never dropped: one that arrives while its job is being submitted or polled is kept
/// unprocessed and applied once that step is recorded (the queue's maintenance pass calls
/// ``processPending(limit:)``), so a dry run whose callback beats its submission's answer still finishes,
/// and a poll in progress cannot swallow the news.
public struct CallbackProcessor: Sendable {
    let callbacks: CallbackStore
    let jobs: JobStore
    let registry: ExecutorRegistry
    let logger: Logger

    public init(callbacks: CallbackStore, jobs: JobStore, registry: ExecutorRegistry, logger: Logger) {
        self.callbacks = callbacks
        self.jobs = jobs
        self.registry = registry
        self.logger = logger
    }

    /// What processing one callback came to.
    public enum Result: Sendable, Hashable {
        /// Acted on (or rightly ignored): the inbox row is marked processed with this outcome.
        case processed(String)
        /// The job is busy: the row stays unprocessed and is looked at again.
        case notYet(String)
    }

    /// Acts on the callback `inboxID` for `job` and records the result on the inbox row.
    @discardableResult
    public func process(inboxID: Int64, job: Job, payload: JSONValue?) async throws -> Result {
        let result = try await decide(inboxID: inboxID, job: job, payload: payload)
        switch result {
        case .processed(let outcome): try await callbacks.markProcessed(inboxID: inboxID, outcome: outcome)
        case .notYet(let note): try await callbacks.markWaiting(inboxID: inboxID, note: note)
        }
        return result
    }

    /// Processes the callbacks that had to wait and whose jobs are free now. Returns how many were processed.
    @discardableResult
    public func processPending(limit: Int = 100) async throws -> Int {
        var processed = 0
        for pending in try await callbacks.pending(limit: limit) {
            if case .processed(let outcome) = try await process(inboxID: pending.inboxID, job: pending.job, payload: pending.payload) {
                processed += 1
                logger.info("waiting callback processed", metadata: ["job_id": "\(pending.job.id)", "outcome": "\(outcome)"])
            }
        }
        return processed
    }

    /// Processes the callbacks of one job that came while a step held it; the worker calls this right
    /// after recording the step, so an early callback costs no wait for the maintenance pass. Returns how
    /// many were processed.
    @discardableResult
    public func processWaiting(jobID: UUID) async throws -> Int {
        var processed = 0
        for pending in try await callbacks.pending(jobID: jobID) {
            if case .processed = try await process(inboxID: pending.inboxID, job: pending.job, payload: pending.payload) { processed += 1 }
        }
        return processed
    }

    private func decide(inboxID: Int64, job: Job, payload: JSONValue?) async throws -> Result {
        if job.state.isFinal { return .processed("ignored: job already \(job.state.rawValue)") }
        guard let payload else { return .processed("ignored: body is not JSON") }
        guard let executor = registry.executor(for: job.kind) else { return .processed("ignored: no executor for \(job.kind)") }
        if job.state == .submitting { return .notYet("waiting: the job is being submitted") }
        switch executor.callbackDecision(for: job, payload: payload) {
        case .ignore(let reason):
            return .processed("ignored: \(reason)")
        case .confirmByPolling:
            switch try await callbacks.pollSoon(jobID: job.id) {
            case .nudged: return .processed("poll scheduled")
            case .alreadyDue: return .processed("poll already due")
            case .busy: return .notYet("waiting: the job is being worked on")
            case .notRunning: return .processed("ignored: job is not running")
            }
        case .trust(let outcome):
            let owner = "callback:\(inboxID)"
            guard let claimed = try await callbacks.claimForCallback(jobID: job.id, owner: owner) else {
                return .notYet("waiting: the job is being worked on")
            }
            let recorded = try await jobs.record(outcome, for: claimed, provider: executor.provider, owner: owner,
                                                 backoff: .jobRetry, actor: "callback")
            return .processed("recorded \(recorded?.state.rawValue ?? "nothing")")
        }
    }
}
