/// The life-cycle state of a job.
///
/// ```
/// scheduled ──due──▶ queued ──claim──▶ submitting ──accepted──▶ running ──▶ succeeded | failed
///     ▲                                   │                       │
///     └──────── retryable failure ◀───────┴───────────────────────┘
/// any non-final state ──cancel──▶ cancelled
/// ```
public enum JobState: String, Sendable, Codable, CaseIterable, Hashable {
    /// Waiting for its `run_at` (first run in the future, or a retry backing off).
    case scheduled
    /// Due, waiting for a worker.
    case queued
    /// Claimed by a worker that is sending it upstream.
    case submitting
    /// Accepted upstream; the daemon polls it (and listens for callbacks).
    case running
    case succeeded
    case failed
    case cancelled

    /// Whether the job will never change again.
    public var isFinal: Bool {
        switch self {
        case .succeeded, .failed, .cancelled: true
        case .scheduled, .queued, .submitting, .running: false
        }
    }

    /// Whether moving from `self` to `next` is allowed.
    public func canTransition(to next: JobState) -> Bool {
        if isFinal { return false }
        switch (self, next) {
        case (_, .cancelled): return true
        case (.scheduled, .queued), (.scheduled, .submitting): return true
        case (.queued, .submitting), (.queued, .scheduled): return true
        case (.submitting, .running), (.submitting, .scheduled), (.submitting, .queued),
             (.submitting, .succeeded), (.submitting, .failed): return true
        case (.running, .succeeded), (.running, .failed), (.running, .scheduled), (.running, .queued): return true
        default: return false
        }
    }

    /// The states a job can be cancelled from.
    public static let cancellable: [JobState] = allCases.filter { !$0.isFinal }
}
