import DreamdCore
import DreamdStore
import Foundation
import Logging
import ServiceLifecycle

/// Moves checkpoints `available → expiring` at `expires_at - DREAMD_CHECKPOINT_EXPIRY_WARNING` and
/// `→ expired` at `expires_at`, each move with its audit row and outbox event (`checkpoint.expiring`,
/// `checkpoint.expired`), written by the `checkpoints_write` trigger.
///
/// Each pass runs the two transitions in that order, each one statement claiming rows with
/// `FOR UPDATE SKIP LOCKED`, so several daemons can sweep the same database and after downtime a
/// checkpoint past both thresholds still gets both events, in order. Between passes it sleeps
/// `interval`, or less when a transition falls due sooner.
public struct RetentionSweeper: Service {
    let store: CheckpointStore
    let interval: Duration
    let logger: Logger

    public init(store: CheckpointStore, interval: Duration, logger: Logger) {
        self.store = store
        self.interval = interval
        var logger = logger
        logger[metadataKey: "service"] = "retention-sweeper"
        self.logger = logger
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            var failures = 0
            while !Task.isCancelled {
                do {
                    try await sweep()
                    failures = 0
                    let pause = try await nextSleep()
                    try? await Task.sleep(for: pause)
                } catch {
                    failures += 1
                    logger.warning("retention sweep failed", metadata: ["error": "\(String(reflecting: error))"])
                    try? await Task.sleep(for: BackoffPolicy(base: interval, cap: .seconds(30)).delay(afterAttempt: failures))
                }
            }
        }
    }

    /// One pass: every due `expiring` transition, then every due `expired` one.
    public func sweep() async throws {
        while true {
            let moved = try await store.markExpiring()
            for id in moved { logger.info("checkpoint expiring", metadata: ["checkpoint": "\(id)"]) }
            if moved.count < 500 { break }
        }
        while true {
            let moved = try await store.markExpired()
            for id in moved { logger.notice("checkpoint expired", metadata: ["checkpoint": "\(id)"]) }
            if moved.count < 500 { break }
        }
    }

    func nextSleep() async throws -> Duration {
        guard let seconds = try await store.secondsUntilNextTransition() else { return interval }
        let due = Duration.milliseconds(Int64(max(seconds, 0) * 1000) + 5)
        return min(interval, due)
    }
}
