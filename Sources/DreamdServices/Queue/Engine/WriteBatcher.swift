import DreamdCore
import DreamdStore
import Foundation
import Logging
import Synchronization

/// Collects the writes of many concurrent steps and runs them many per statement.
///
/// A batch is written when it holds `maxBatch` writes, `maxDelay` after its first write arrived, or at
/// once when an urgent write joins it. One batch is written at a time; writes arriving meanwhile form the
/// next one, so the batch grows with the load and a lone write waits at most `maxDelay`. A step waits for
/// its own write to be done before its slot is freed, so its claim's lease is held (and renewed by the
/// heartbeat) until what it found is in the database.
///
/// A failed statement is tried again (the database may be briefly away) before its error is given to
/// every step in the batch. Used for job outcomes (``JobQueue``) and successful webhook attempts
/// (``DeliveryQueue``).
final class WriteBatcher<Write: Sendable, Result: Sendable>: Sendable {
    /// Writes a batch in one statement; returns one result per write, in the same order.
    typealias Flush = @Sendable ([Write]) async throws -> [Result]

    private struct Pending {
        var write: Write
        var continuation: CheckedContinuation<Result, any Error>
    }

    private struct State {
        var pending: [Pending] = []
        var firstAt: ContinuousClock.Instant?
        var urgent = false
    }

    let name: String
    let maxBatch: Int
    let maxDelay: Duration
    let logger: Logger
    private let flushBatch: Flush
    private let state = Mutex(State())
    private let wake = WakeSignal()

    /// - Parameter name: the `batch` dimension of the `dreamd_write_batch_*` metrics (`outcomes`, `deliveries`).
    init(name: String, maxBatch: Int, maxDelay: Duration, logger: Logger, flush: @escaping Flush) {
        self.name = name
        self.maxBatch = max(1, maxBatch)
        self.maxDelay = maxDelay
        self.logger = logger
        self.flushBatch = flush
    }

    /// Hands one write to the next batch and waits until it is written; returns its result.
    func submit(_ write: Write, urgent: Bool = false) async throws -> Result {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Result, any Error>) in
            let signal = state.withLock { state -> Bool in
                state.pending.append(Pending(write: write, continuation: continuation))
                if state.firstAt == nil { state.firstAt = .now }
                if urgent { state.urgent = true }
                return state.pending.count == 1 || state.pending.count >= maxBatch || urgent
            }
            if signal { wake.signal() }
        }
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

    private func flush(_ batch: [Pending]) async {
        var lastError: (any Error)?
        for attempt in 1...5 {
            do {
                let started = ContinuousClock.now
                let results = try await flushBatch(batch.map(\.write))
                guard results.count == batch.count else {
                    throw BatchMismatch(expected: batch.count, got: results.count)
                }
                QueueMetrics.writeBatch(name, size: batch.count, seconds: (ContinuousClock.now - started).seconds)
                for (pending, result) in zip(batch, results) { pending.continuation.resume(returning: result) }
                return
            } catch {
                lastError = error
                logger.warning("writing a batch failed", metadata: [
                    "batch": "\(name)", "error": "\(LogSafe.describe(error))", "writes": "\(batch.count)", "try": "\(attempt)",
                ])
                if Task.isCancelled { break }
                try? await Task.sleep(for: .milliseconds(200 * attempt * attempt))
            }
        }
        let error = lastError ?? CancellationError()
        for pending in batch { pending.continuation.resume(throwing: error) }
    }
}

/// A flush returned a different number of results than it was given writes (a bug in the flush).
struct BatchMismatch: Error, CustomStringConvertible {
    let expected: Int
    let got: Int
    var description: String { "a batch of \(expected) writes returned \(got) results" }
}

/// The job queue's batcher: outcomes written by one `UPDATE jobs ... FROM unnest(...)` (`JobStore.recordBatch`);
/// each step gets its job's new state, or `nil` when the write was refused (the claim's lease was lost).
///
/// Crash semantics: an outcome not yet written when the process dies is lost with the process; the
/// claim's lease runs out and the rescuer takes the job back (`submitting → queued`, whose next attempt
/// first looks for the earlier submission upstream; a poll stays `running` and is polled again). Urgent
/// outcomes (a submission the upstream accepted) make the window one round trip.
typealias OutcomeBatcher = WriteBatcher<OutcomeWrite, JobState?>

extension WriteBatcher where Write == OutcomeWrite, Result == JobState? {
    static func outcomes(store: JobStore, maxBatch: Int, maxDelay: Duration, logger: Logger) -> OutcomeBatcher {
        OutcomeBatcher(name: "outcomes", maxBatch: maxBatch, maxDelay: maxDelay, logger: logger) { writes in
            let states = try await store.recordBatch(writes)
            return writes.map { states[$0.jobID] }
        }
    }
}
