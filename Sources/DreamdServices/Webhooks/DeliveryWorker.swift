import DreamdCore
import DreamdStore
import Foundation
import Logging
import Metrics
import ServiceLifecycle
import Synchronization

/// Claims due webhook deliveries and runs their attempts concurrently.
///
/// Idle workers sleep until a NOTIFY on `dreamd_deliveries` (a new event fanned out, a redelivery),
/// a finished attempt, the next retry this worker scheduled, or the poll fallback. A claim holds a
/// lease longer than the attempt timeout; if this process dies, the lease runs out, the maintenance
/// pass of any worker makes the delivery due again, and it is sent with the same `webhook-id`.
/// On graceful shutdown the worker stops claiming and lets the attempts in flight finish.
public final class DeliveryWorker: Service, Sendable {
    let store: DeliveryStore
    let sender: WebhookSender
    let configuration: WebhookConfiguration
    let wake: WakeSignal
    let logger: Logger
    private let inFlight = Atomic<Int>(0)
    private let stopping = Atomic<Bool>(false)
    /// The earliest retry this worker scheduled and has not yet looked for.
    private let nextRetry = Mutex<ContinuousClock.Instant?>(nil)

    public init(store: DeliveryStore, sender: WebhookSender, configuration: WebhookConfiguration, wake: WakeSignal = WakeSignal(),
                logger: Logger) {
        self.store = store
        self.sender = sender
        self.configuration = configuration
        self.wake = wake
        var logger = logger
        logger[metadataKey: "delivery_worker"] = "\(configuration.owner)"
        self.logger = logger
    }

    /// Attempts running now.
    public var inFlightCount: Int { inFlight.load(ordering: .relaxed) }

    public func run() async throws {
        await withGracefulShutdownHandler {
            await withDiscardingTaskGroup { group in
                await self.claimLoop(&group)
                while self.inFlightCount > 0, !Task.isCancelled {
                    await self.wake.wait(timeout: .milliseconds(200))
                }
            }
        } onGracefulShutdown: {
            self.stopping.store(true, ordering: .relaxed)
            self.wake.signal()
        }
    }

    private func claimLoop(_ group: inout DiscardingTaskGroup) async {
        let clock = ContinuousClock()
        var lastMaintenance = clock.now - configuration.maintenanceInterval
        var failures = 0
        while !stopping.load(ordering: .relaxed), !Task.isCancelled {
            if clock.now - lastMaintenance >= configuration.maintenanceInterval {
                lastMaintenance = clock.now
                await maintain()
            }
            // Claim in chunks: after a busy spell, wait until a quarter of a batch is free rather than
            // running one claim query per finished attempt.
            let free = configuration.concurrency - inFlightCount
            let chunk = max(1, min(configuration.batchSize, configuration.concurrency) / 4)
            let wanted = free >= chunk || inFlightCount == 0 ? min(free, configuration.batchSize) : 0
            var claimed: [ClaimedDelivery] = []
            if wanted > 0 {
                do {
                    claimed = try await store.claim(limit: wanted, owner: configuration.owner, leaseDuration: configuration.leaseDuration,
                                                    perSubscription: configuration.perSubscription)
                    failures = 0
                } catch {
                    failures += 1
                    logger.warning("delivery claim failed", metadata: ["error": "\(LogSafe.describe(error))"])
                    try? await Task.sleep(for: BackoffPolicy(base: .milliseconds(200), cap: .seconds(10)).delay(afterAttempt: failures))
                    continue
                }
            }
            for delivery in claimed {
                inFlight.add(1, ordering: .relaxed)
                group.addTask {
                    await self.deliver(delivery)
                    self.inFlight.subtract(1, ordering: .relaxed)
                    self.wake.signal()
                }
            }
            if claimed.count < wanted || wanted == 0 {
                await wake.wait(timeout: idleWait(clock: clock))
            }
        }
    }

    /// The poll fallback, shortened when a retry this worker scheduled falls due sooner.
    private func idleWait(clock: ContinuousClock) -> Duration {
        let now = clock.now
        return nextRetry.withLock { next in
            guard let due = next else { return configuration.idlePollInterval }
            if due <= now {
                next = nil
                return .milliseconds(1)
            }
            return min(configuration.idlePollInterval, due - now)
        }
    }

    private func maintain() async {
        do {
            let result = try await store.maintain()
            if result.rescued > 0 {
                logger.warning("took back webhook deliveries with expired leases", metadata: ["deliveries": "\(result.rescued)"])
            }
            if result.failedForDisabled > 0 {
                logger.notice("failed pending deliveries of disabled subscriptions", metadata: ["deliveries": "\(result.failedForDisabled)"])
            }
        } catch {
            logger.warning("delivery maintenance failed", metadata: ["error": "\(LogSafe.describe(error))"])
        }
    }

    /// Runs one attempt of a claimed delivery and records it.
    func deliver(_ delivery: ClaimedDelivery) async {
        var logger = self.logger
        logger[metadataKey: "delivery_id"] = "\(delivery.id)"
        logger[metadataKey: "subscription_id"] = "\(delivery.subscriptionID)"
        logger[metadataKey: "event_type"] = "\(delivery.eventType)"
        let outcome = await sender.send(delivery, logger: logger)
        let attempt = delivery.previousAttempts + 1
        let decision = Self.decide(outcome, attempt: attempt, schedule: configuration.retrySchedule)
        WebhookMetrics.record(outcome: outcome, decision: decision)
        let record = DeliveryStore.AttemptRecord(
            attemptedAt: outcome.attemptedAt, statusCode: outcome.statusCode,
            durationMs: Int((outcome.duration.seconds * 1000).rounded()), responseBody: outcome.responseBody, error: outcome.error
        )
        for tryNumber in 1...5 {
            do {
                let result = try await store.record(record, decision: decision, for: delivery, owner: configuration.owner,
                                                    disableAfter: configuration.disableAfter)
                report(outcome: outcome, decision: decision, attempt: attempt, result: result, logger: logger)
                if case .retry(let wait) = decision, result.recorded {
                    let due = ContinuousClock.now + wait
                    nextRetry.withLock { next in next = min(next ?? due, due) }
                }
                return
            } catch {
                logger.warning("recording the delivery attempt failed", metadata: ["error": "\(LogSafe.describe(error))", "try": "\(tryNumber)"])
                try? await Task.sleep(for: .milliseconds(200 * tryNumber * tryNumber))
            }
        }
        logger.error("could not record the delivery attempt; its lease will expire and it will be sent again")
    }

    /// What an attempt's outcome means for the delivery.
    static func decide(_ outcome: WebhookSender.Outcome, attempt: Int, schedule: RetrySchedule) -> DeliveryStore.Decision {
        if outcome.succeeded { return .succeeded }
        if outcome.statusCode == 410 { return .failedAndDisable(reason: "the endpoint answered 410 Gone") }
        guard let wait = schedule.wait(afterAttempt: attempt, retryAfter: outcome.retryAfter) else { return .failed }
        return .retry(after: wait)
    }

    private func report(outcome: WebhookSender.Outcome, decision: DeliveryStore.Decision, attempt: Int,
                        result: DeliveryStore.RecordResult, logger: Logger) {
        guard result.recorded else {
            logger.notice("delivery changed while it was attempted (lease lost); attempt not recorded")
            return
        }
        let status = outcome.statusCode.map(String.init) ?? "none"
        switch decision {
        case .succeeded:
            logger.debug("webhook delivered", metadata: ["status": "\(status)", "attempt": "\(attempt)"])
        case .retry(let wait):
            logger.info("webhook attempt failed; will retry", metadata: [
                "status": "\(status)", "attempt": "\(attempt)", "retry_in": "\(DurationParser.format(wait))",
                "error": "\(outcome.error ?? "")",
            ])
        case .failed, .failedAndDisable:
            logger.warning("webhook delivery failed for good", metadata: [
                "status": "\(status)", "attempts": "\(attempt)", "error": "\(outcome.error ?? "")",
            ])
        }
        if let reason = result.disabledSubscription {
            let kind = if case .failedAndDisable = decision { "gone" } else { "failing" }
            WebhookMetrics.subscriptionDisabled(reason: kind)
            logger.warning("webhook subscription disabled", metadata: ["reason": "\(reason)"])
        }
    }
}

/// Operational metrics of webhook delivery (swift-metrics; exported by whichever backend is bootstrapped).
enum WebhookMetrics {
    static func record(outcome: WebhookSender.Outcome, decision: DeliveryStore.Decision) {
        let result: String = switch decision {
        case .succeeded: "succeeded"
        case .retry: outcome.refused ? "refused" : "retry"
        case .failed, .failedAndDisable: outcome.refused ? "refused" : "failed"
        }
        Counter(label: "dreamd_webhook_attempts_total", dimensions: [("result", result)]).increment()
        Timer(label: "dreamd_webhook_attempt_duration_seconds").recordNanoseconds(Int64(outcome.duration.seconds * 1e9))
    }

    static func subscriptionDisabled(reason: String) {
        Counter(label: "dreamd_webhook_subscriptions_disabled_total", dimensions: [("reason", reason)]).increment()
    }
}
