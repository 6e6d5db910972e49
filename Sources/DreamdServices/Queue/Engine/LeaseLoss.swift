import Synchronization

/// Tells a running step that its claim's lease was lost (the heartbeat found the epoch moved on: the job
/// was rescued, released or cancelled). ``wait()`` returns once ``signal()`` was called, or when the waiting
/// task is cancelled; the worker races it against the step and cancels the step when it returns first.
final class LeaseLoss: Sendable {
    private struct State {
        var lost = false
        var waiter: CheckedContinuation<Void, Never>?
    }

    private let state = Mutex(State())

    /// Whether the lease was lost.
    var isLost: Bool { state.withLock { $0.lost } }

    func signal() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.lost = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    /// Returns when the lease is lost or the calling task is cancelled.
    func wait() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { state -> Bool in
                    if state.lost || Task.isCancelled { return true }
                    state.waiter = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
                defer { state.waiter = nil }
                return state.waiter
            }
            waiter?.resume()
        }
    }
}
