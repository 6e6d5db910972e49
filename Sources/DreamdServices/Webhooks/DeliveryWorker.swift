import DreamdCore
import DreamdStore
import Foundation
import Logging
import Metrics
import ServiceLifecycle
import Synchronization

/// Claims due webhook deliveries and runs their attempts concurrently, on the ``LeaseEngine`` with a
/// ``DeliveryQueue``.
///
/// Idle workers sleep until a NOTIFY on `dreamd_deliveries` (a new event fanned out, a redelivery),
/// freed slots, the next retry this worker scheduled, or the poll fallback. A claim holds a lease longer
/// than the attempt timeout, renewed while the attempt runs; if this process dies, the lease runs out, the
/// maintenance pass of any worker makes the delivery due again, and it is sent with the same `webhook-id`.
/// On graceful shutdown the worker stops claiming and lets the attempts in flight finish.
public final class DeliveryWorker: Service, Sendable {
    let engine: LeaseEngine<DeliveryQueue>

    public init(store: DeliveryStore, sender: WebhookSender, configuration: WebhookConfiguration, wake: WakeSignal = WakeSignal(),
                logger: Logger) {
        var logger = logger
        logger[metadataKey: "delivery_worker"] = "\(configuration.owner)"
        engine = LeaseEngine(queue: DeliveryQueue(store: store, sender: sender, configuration: configuration, logger: logger),
                             configuration: LeaseEngineConfiguration(
                                 name: "deliveries", concurrency: configuration.concurrency, batchSize: configuration.batchSize,
                                 heartbeatInterval: configuration.leaseDuration / 3, idlePollInterval: configuration.idlePollInterval,
                                 maintenanceInterval: configuration.maintenanceInterval,
                                 drainTimeout: configuration.attemptTimeout + .seconds(5)
                             ), wake: wake, logger: logger)
    }

    /// Attempts running now.
    public var inFlightCount: Int { engine.runningCount }

    public func run() async throws {
        await engine.run()
    }
}

/// The deliveries table as a ``LeasedQueue``: claims due deliveries under the per-subscription cap, and
/// runs one signed attempt of each, recording it with its consequence (retry, final failure, disabling).
///
/// Successful attempts, nearly all of them, are recorded many per statement by a ``WriteBatcher``
/// (`DeliveryStore.recordSucceeded`); a failed attempt, whose consequence depends on its subscription's
/// health, is recorded on its own. Crash semantics: a success not yet recorded when the process dies is
/// lost with it; the claim's lease runs out and the delivery is sent again with the same `webhook-id`,
/// which receivers deduplicate on (docs/webhooks.md).
struct DeliveryQueue: LeasedQueue {
    let store: DeliveryStore
    let sender: WebhookSender
    let configuration: WebhookConfiguration
    let logger: Logger
    /// Writes successful attempts in batches.
    private let successes: WriteBatcher<DeliveryStore.SuccessRecord, Bool>
    /// The earliest retry this worker scheduled and has not yet looked for.
    private let nextRetry = NextRetry()

    init(store: DeliveryStore, sender: WebhookSender, configuration: WebhookConfiguration, logger: Logger) {
        self.store = store
        self.sender = sender
        self.configuration = configuration
        self.logger = logger
        successes = WriteBatcher(name: "deliveries", maxBatch: configuration.recordBatchSize, maxDelay: .zero, logger: logger) { records in
            let recorded = try await store.recordSucceeded(records)
            return records.map { recorded.contains($0.delivery.id) }
        }
    }

    func background() async {
        await successes.run()
    }

    func lease(of delivery: ClaimedDelivery) -> Lease {
        Lease(id: delivery.id, epoch: delivery.leaseEpoch)
    }

    func claim(limit: Int, running: [ClaimedDelivery]) async throws -> [ClaimedDelivery] {
        try await store.claim(limit: limit, owner: configuration.owner, leaseDuration: configuration.leaseDuration,
                              perSubscription: configuration.perSubscription)
    }

    func renew(_ leases: [Lease]) async throws -> Set<UUID> {
        try await store.renew(leases: leases, leaseDuration: configuration.leaseDuration)
    }

    func release(_ leases: [Lease]) async throws {
        try await store.release(leases: leases)
    }

    /// The poll fallback, shortened when a retry this worker scheduled falls due sooner.
    func idleWait(fallback: Duration) -> Duration {
        let now = ContinuousClock.now
        return nextRetry.due.withLock { next in
            guard let due = next else { return fallback }
            if due <= now {
                next = nil
                return .milliseconds(1)
            }
            return min(fallback, due - now)
        }
    }

    func maintain() async {
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
    func run(_ delivery: ClaimedDelivery) async {
        var logger = self.logger
        logger[metadataKey: "delivery_id"] = "\(delivery.id)"
        logger[metadataKey: "subscription_id"] = "\(delivery.subscriptionID)"
        logger[metadataKey: "event_type"] = "\(delivery.eventType)"
        let outcome = await sender.send(delivery, logger: logger)
        // Cancelled: the lease was lost (another worker has the delivery) or the drain gave it back.
        guard !Task.isCancelled else { return }
        let attempt = delivery.previousAttempts + 1
        let decision = Self.decide(outcome, attempt: attempt, schedule: configuration.retrySchedule)
        WebhookMetrics.record(outcome: outcome, decision: decision)
        let record = DeliveryStore.AttemptRecord(
            attemptedAt: outcome.attemptedAt, statusCode: outcome.statusCode,
            durationMs: Int((outcome.duration.seconds * 1000).rounded()), responseBody: outcome.responseBody, error: outcome.error
        )
        if case .succeeded = decision {
            do {
                let recorded = try await successes.submit(DeliveryStore.SuccessRecord(delivery: delivery, attempt: record))
                report(outcome: outcome, decision: decision, attempt: attempt, result: .init(recorded: recorded), logger: logger)
            } catch {
                logger.error("could not record the delivery attempt; its lease will expire and it will be sent again",
                             metadata: ["error": "\(LogSafe.describe(error))"])
            }
            return
        }
        for tryNumber in 1...5 {
            do {
                let result = try await store.record(record, decision: decision, for: delivery, owner: configuration.owner,
                                                    disableAfter: configuration.disableAfter)
                report(outcome: outcome, decision: decision, attempt: attempt, result: result, logger: logger)
                if case .retry(let wait) = decision, result.recorded {
                    let due = ContinuousClock.now + wait
                    nextRetry.due.withLock { next in next = min(next ?? due, due) }
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

/// The earliest retry a delivery worker scheduled (shared by the copies of its ``DeliveryQueue``).
final class NextRetry: Sendable {
    let due = Mutex<ContinuousClock.Instant?>(nil)
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
