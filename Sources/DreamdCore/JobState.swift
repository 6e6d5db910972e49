/// The life-cycle state of a job.
///
/// ```
/// scheduled ──due──▶ queued ──claim──▶ submitting ──accepted──▶ running ──poll: final──▶ succeeded | failed
///   │  ▲               ▲  ▲               │ │ │                    │ │
///   │  │               │  └─ 402 deferral, lease rescue, release ──┘ │ └─ one step: succeeded | failed
///   │  └───────────────┼──── retryable failure (backoff) ◀──────────┴─────── (submitting or running)
///   └─ claim when due ─┼──▶ submitting
///                      └──── a person in psql: running → queued, queued → scheduled
/// any non-final state ──cancel──▶ cancelled
/// failed | cancelled ──retry (POST /v1/jobs/{id}/retry, the dashboard)──▶ queued
/// ```
///
/// ``transitions`` is the one table of allowed moves: migration 0021 holds the same rows in
/// `job_transitions`, and the `jobs_audit_update` trigger refuses any `UPDATE` (from dreamd or from a
/// person in psql) that makes another move. Who makes each move is documented in docs/ARCHITECTURE.md.
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

    /// Whether the job is finished: nothing moves it again but a person's retry (`failed`/`cancelled → queued`).
    public var isFinal: Bool {
        switch self {
        case .succeeded, .failed, .cancelled: true
        case .scheduled, .queued, .submitting, .running: false
        }
    }

    /// Every allowed change of state, `from → [to]`. `succeeded` has none.
    ///
    /// - `scheduled → queued`: the scheduler's promotion of a due job (any worker's maintenance pass).
    /// - `scheduled → submitting`: a claim that finds a due job before its promotion.
    /// - `queued → submitting`: a worker's claim (counts an attempt).
    /// - `queued → scheduled`: a person moving a job's `run_at` into the future (psql).
    /// - `submitting → running`: the upstream accepted the submission (the step's outcome).
    /// - `submitting → succeeded | failed`: a one-step upstream (Dream Engines rollouts) or a refusal.
    /// - `submitting → scheduled`: a retryable failure backing off.
    /// - `submitting → queued`: a 402 deferral (the attempt given back), a lease rescue, a release on shutdown.
    /// - `running → succeeded | failed`: a poll (or a trusted callback) found the upstream job final.
    /// - `running → scheduled`: a retryable failure of a poll that restarts the job.
    /// - `running → queued`: a person putting a job back (psql); the rescuer keeps polls `running`.
    /// - any non-final state `→ cancelled`: `POST /v1/jobs/{id}/cancel`, or a person in psql.
    /// - `failed | cancelled → queued`: `POST /v1/jobs/{id}/retry` (or the dashboard's Retry), a fresh start.
    public static let transitions: [JobState: Set<JobState>] = [
        .scheduled: [.queued, .submitting, .cancelled],
        .queued: [.submitting, .scheduled, .cancelled],
        .submitting: [.running, .scheduled, .queued, .succeeded, .failed, .cancelled],
        .running: [.succeeded, .failed, .scheduled, .queued, .cancelled],
        .succeeded: [],
        .failed: [.queued],
        .cancelled: [.queued],
    ]

    /// Whether moving from `self` to `next` is allowed (a move to the same state is not a move).
    public func canTransition(to next: JobState) -> Bool {
        Self.transitions[self]?.contains(next) ?? false
    }

    /// The states a job can be cancelled from.
    public static let cancellable: [JobState] = allCases.filter { !$0.isFinal }
}
