import DreamdCore
import DreamdStore
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// How a `SchedulerService` looks for due schedules.
public struct SchedulerConfiguration: Sendable {
    /// Longest sleep between passes (`DREAMD_SCHEDULER_INTERVAL`); a pass also runs when the soonest
    /// schedule comes due. Bounds how long a new or changed schedule goes unseen.
    public var interval: Duration
    /// How late a tick may be and still count as on time; older ticks were missed and the schedule's
    /// catch-up policy applies (`DREAMD_SCHEDULER_MISFIRE_THRESHOLD`).
    public var misfireThreshold: Duration
    /// Most jobs `catch_up: all` creates for one schedule after an outage.
    public var catchUpCap: Int
    /// Most schedules fired in one pass (the rest wait for the next pass).
    public var maxSchedulesPerPass: Int

    public init(interval: Duration = .seconds(1), misfireThreshold: Duration = .seconds(60),
                catchUpCap: Int = TickPlanner.allCap, maxSchedulesPerPass: Int = 500) {
        self.interval = interval
        self.misfireThreshold = misfireThreshold
        self.catchUpCap = max(1, catchUpCap)
        self.maxSchedulesPerPass = max(1, maxSchedulesPerPass)
    }
}

/// Turns due schedule ticks into jobs. Any number of processes may run one on the same database:
/// each due schedule is handled under its row lock (`FOR UPDATE SKIP LOCKED`), and a unique index on
/// `jobs(schedule_id, scheduled_for)` makes a second job for one tick impossible.
public final class SchedulerService: Service, Sendable {
    let store: ScheduleStore
    let registry: ExecutorRegistry
    let configuration: SchedulerConfiguration
    let logger: Logger
    private let wake = WakeSignal()
    private let stopping = Atomic<Bool>(false)

    public init(store: ScheduleStore, registry: ExecutorRegistry, configuration: SchedulerConfiguration = .init(), logger: Logger) {
        self.store = store
        self.registry = registry
        self.configuration = configuration
        var logger = logger
        logger[metadataKey: "service"] = "scheduler"
        self.logger = logger
    }

    public func run() async throws {
        await withGracefulShutdownHandler {
            var failures = 0
            while !stopping.load(ordering: .relaxed), !Task.isCancelled {
                do {
                    try await firePass()
                    failures = 0
                    await wake.wait(timeout: try await pauseAfterPass())
                } catch {
                    failures += 1
                    logger.warning("scheduler pass failed", metadata: ["error": "\(String(reflecting: error))"])
                    await wake.wait(timeout: BackoffPolicy(base: configuration.interval, cap: .seconds(30)).delay(afterAttempt: failures))
                }
            }
        } onGracefulShutdown: {
            self.stopping.store(true, ordering: .relaxed)
            self.wake.signal()
        }
    }

    /// How long to sleep after a pass: until the soonest schedule is due (plus a few milliseconds, so it
    /// is due when the next pass looks), at most `interval`. New and changed schedules are seen within
    /// `interval`, and ticks are not late by a phase that drifts with every pass. A schedule still
    /// overdue after a pass is held by another process: look again after 50 ms, not in a busy loop.
    public func pauseAfterPass() async throws -> Duration {
        guard let untilDue = try await store.timeUntilNextDue() else { return configuration.interval }
        return min(configuration.interval, max(untilDue + .milliseconds(5), .milliseconds(50)))
    }

    /// Fires every due schedule once (up to `maxSchedulesPerPass`). Returns what each firing did.
    /// Passes never overlap within a process; across processes they share the work.
    @discardableResult
    public func firePass() async throws -> [ScheduleStore.FireOutcome] {
        var outcomes: [ScheduleStore.FireOutcome] = []
        // Each schedule is handled at most once per pass: one whose step conflicted is left for the next
        // pass rather than retried in a loop, and a tick that comes due during a slow pass waits for the next.
        var excluded: [UUID] = []
        let registry = self.registry
        while outcomes.count < configuration.maxSchedulesPerPass, !stopping.load(ordering: .relaxed) {
            guard let outcome = try await store.fireNextDue(
                excluding: excluded, misfireThreshold: configuration.misfireThreshold, catchUpCap: configuration.catchUpCap,
                provider: { registry.executor(for: $0)?.provider }
            ) else { break }
            report(outcome)
            excluded.append(outcome.scheduleID)
            outcomes.append(outcome)
        }
        return outcomes
    }

    private func report(_ outcome: ScheduleStore.FireOutcome) {
        var metadata: Logger.Metadata = ["schedule_id": "\(outcome.scheduleID.uuidString.lowercased())"]
        if let invalid = outcome.invalid {
            metadata["error"] = "\(invalid)"
            logger.error("schedule no longer parses; stopped until it is updated", metadata: metadata)
            return
        }
        if outcome.conflict {
            logger.notice("tick already fired by another process; rolled back", metadata: metadata)
            return
        }
        for (jobID, tick) in outcome.created {
            logger.info("schedule fired", metadata: metadata.merging(["job_id": "\(jobID)", "scheduled_for": "\(DreamdJSON.formatDate(tick))"]) { $1 })
        }
        for tick in outcome.skipped {
            logger.info("tick skipped: previous run unfinished", metadata: metadata.merging(["scheduled_for": "\(DreamdJSON.formatDate(tick))"]) { $1 })
        }
        if outcome.dropped > 0 {
            logger.notice("missed ticks dropped by the catch-up policy", metadata: metadata.merging(["ticks": "\(outcome.dropped)"]) { $1 })
        }
    }
}
