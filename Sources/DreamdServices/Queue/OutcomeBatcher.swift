import DreamdCore
import DreamdStore
import Foundation
import Logging
import Synchronization

/// Collects the outcomes of finished steps and writes them many per statement (`JobStore.recordBatch`).
///
/// A batch is written when it holds `maxBatch` outcomes, `maxDelay` after its first outcome arrived, or
/// at once when an urgent outcome joins it (a submission the upstream accepted: the id it returned must be
/// stored before anything else can happen to the job). One batch is written at a time; outcomes arriving
/// meanwhile form the next one, so the batch grows with the load and a lone outcome waits at most
/// `maxDelay`. A step waits for its own outcome to be written before its slot is freed, so a claim's lease
/// is held (and renewed by the heartbeat) until its outcome is in the database.
///
/// Crash semantics: an outcome not yet written when the process dies is lost with the process; the
/// claim's lease runs out and the rescuer takes the job back (`submitting → queued`, whose next attempt
/// first looks for the earlier submission upstream; a poll stays `running` and is polled again). Urgent
/// outcomes make the window one round trip, as it was before batching.
final class OutcomeBatcher: Sendable {
    private struct Pending {
        var write: OutcomeWrite
        var continuation: CheckedContinuation<JobState?, any Error>
    }

    private struct State {
        var pending: [Pending] = []
        var firstAt: ContinuousClock.Instant?
        var urgent = false
    }

    let store: JobStore
    let maxBatch: Int
    let maxDelay: Duration
    let logger: Logger
    private let state = Mutex(State())
    private let wake = WakeSignal()

    init(store: JobStore, maxBatch: Int, maxDelay: Duration, logger: Logger) {
        self.store = store
        self.maxBatch = max(1, maxBatch)
        self.maxDelay = maxDelay
        self.logger = logger
    }

    /// Hands one outcome to the next batch and waits until it is written. Returns the job's new state, or
    /// `nil` when the write was refused (the claim's lease was lost: cancelled, rescued or taken over).
    func record(_ write: OutcomeWrite, urgent: Bool) async throws -> JobState? {
        let result = try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<JobState?, any Error>) in
            let signal = state.withLock { state -> Bool in
                state.pending.append(Pending(write: write, continuation: continuation))
                if state.firstAt == nil { state.firstAt = .now }
                if urgent { state.urgent = true }
                return state.pending.count == 1 || state.pending.count >= maxBatch || urgent
            }
            if signal { wake.signal() }
        }
        return result
    }

    /// The flush loop. Runs until cancelled; then writes what is pending and returns.
    func run() async {
        while true {
            let cancelled = Task.isCancelled
            let now = ContinuousClock.now
            let (batch, wait) = state.withLock { state -> ([Pending], Duration?) in
                guard let firstAt = state.firstAt, !state.pending.isEmpty else { return ([], nil) }
                let age = now - firstAt
                guard cancelled || state.urgent || state.pending.count >= maxBatch || age >= maxDelay else {
                    return ([], maxDelay - age)
                }
                let taken = Array(state.pending.prefix(maxBatch))
                state.pending.removeFirst(taken.count)
                state.firstAt = state.pending.isEmpty ? nil : now
                state.urgent = false
                return (taken, nil)
            }
            if batch.isEmpty {
                if cancelled { return }
                await wake.wait(timeout: wait ?? .seconds(1))
                continue
            }
            await flush(batch)
        }
    }

    /// Writes one batch, trying again on a failed statement (the database may be briefly away) before
    /// giving the error to every step in it.
    private func flush(_ batch: [Pending]) async {
        var lastError: (any Error)?
        for attempt in 1...5 {
            do {
                let started = ContinuousClock.now
                let states = try await store.recordBatch(batch.map(\.write))
                QueueMetrics.outcomeBatch(size: batch.count, seconds: (ContinuousClock.now - started).seconds)
                for pending in batch { pending.continuation.resume(returning: states[pending.write.jobID]) }
                return
            } catch {
                lastError = error
                logger.warning("writing a batch of outcomes failed", metadata: [
                    "error": "\(String(reflecting: error))", "outcomes": "\(batch.count)", "try": "\(attempt)",
                ])
                if Task.isCancelled { break }
                try? await Task.sleep(for: .milliseconds(200 * attempt * attempt))
            }
        }
        let error = lastError ?? CancellationError()
        for pending in batch { pending.continuation.resume(throwing: error) }
    }
}
