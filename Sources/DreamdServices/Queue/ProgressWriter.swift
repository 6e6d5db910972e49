import DreamdCore
import DreamdStore
import Foundation
import Logging
import Synchronization

/// Writes a step's progress to its job at most every `interval`; the latest report of a burst is
/// written by `flush()` when the step ends, so the job always shows the final figures.
final class ProgressWriter: Sendable {
    private struct State {
        var lastWrite: ContinuousClock.Instant?
        var pending: StepProgress?
    }

    let store: JobStore
    /// The claim whose step reports: progress is written only while its lease holds.
    let lease: Lease
    let logger: Logger
    let interval: Duration
    private let state = Mutex(State())

    init(store: JobStore, lease: Lease, logger: Logger, interval: Duration = .milliseconds(200)) {
        self.store = store
        self.lease = lease
        self.logger = logger
        self.interval = interval
    }

    func report(_ progress: StepProgress) async {
        let now = ContinuousClock.now
        let due = state.withLock { state -> Bool in
            if let last = state.lastWrite, now - last < interval {
                state.pending = progress
                return false
            }
            state.lastWrite = now
            state.pending = nil
            return true
        }
        if due { await write(progress) }
    }

    func flush() async {
        if let pending = state.withLock({ state -> StepProgress? in
            defer { state.pending = nil }
            return state.pending
        }) {
            await write(pending)
        }
    }

    private func write(_ progress: StepProgress) async {
        do {
            try await store.updateProgress(lease: lease, progress: progress)
        } catch {
            logger.debug("progress not written", metadata: ["error": "\(String(reflecting: error))"])
        }
    }
}
