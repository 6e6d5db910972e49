import DreamdCore
import Foundation

/// How webhooks are delivered (the `DREAMD_WEBHOOK_*` keys).
public struct WebhookConfiguration: Sendable {
    /// Waits between attempts (`DREAMD_WEBHOOK_RETRY_SCHEDULE`, default `5s,5m,30m,2h,5h,10h,10h`, ±20 %).
    public var retrySchedule: RetrySchedule
    /// Which addresses subscriber URLs may reach (`DREAMD_WEBHOOK_ALLOW_PRIVATE`).
    public var destinationPolicy: DestinationPolicy
    /// Whole-attempt timeout: resolving, connecting, sending and reading the answer (`DREAMD_WEBHOOK_TIMEOUT`, 15 s).
    public var attemptTimeout: Duration
    /// Attempts this process runs at once (`DREAMD_WEBHOOK_CONCURRENCY`, 32).
    public var concurrency: Int
    /// Attempts in flight to one subscription, across processes (`DREAMD_WEBHOOK_PER_SUBSCRIPTION`, 4).
    public var perSubscription: Int
    /// A subscription failing this long with no success is disabled (`DREAMD_WEBHOOK_DISABLE_AFTER`, 5 days; `0s` never).
    public var disableAfter: Duration?
    /// How long a rotated-out secret keeps signing beside the new one (`DREAMD_WEBHOOK_SECRET_OVERLAP`, 24 h).
    public var secretOverlap: Duration
    /// Most deliveries taken by one claim.
    public var batchSize: Int
    /// How long an idle worker waits for a NOTIFY before looking for due work anyway.
    public var idlePollInterval: Duration
    /// How often expired leases are taken back and deliveries of disabled subscriptions failed.
    public var maintenanceInterval: Duration
    /// This process's name in `deliveries.lease_owner`.
    public var owner: String
    /// Most successful attempts recorded in one statement (a batch is written as soon as the previous one
    /// is done, so it grows with the load and a lone success waits for no one).
    public var recordBatchSize: Int

    public init(
        retrySchedule: RetrySchedule = .standard, destinationPolicy: DestinationPolicy = DestinationPolicy(),
        attemptTimeout: Duration = .seconds(15), concurrency: Int = 32, perSubscription: Int = 4,
        disableAfter: Duration? = .seconds(5 * 86_400), secretOverlap: Duration = .seconds(86_400), batchSize: Int = 16,
        idlePollInterval: Duration = .seconds(1), maintenanceInterval: Duration = .seconds(1),
        owner: String = WorkerConfiguration.defaultOwner(), recordBatchSize: Int = 256
    ) {
        self.retrySchedule = retrySchedule
        self.destinationPolicy = destinationPolicy
        self.attemptTimeout = attemptTimeout
        self.concurrency = max(1, concurrency)
        self.perSubscription = max(1, perSubscription)
        self.disableAfter = disableAfter.flatMap { $0 > .zero ? $0 : nil }
        self.secretOverlap = secretOverlap
        self.batchSize = max(1, batchSize)
        self.idlePollInterval = idlePollInterval
        self.maintenanceInterval = maintenanceInterval
        self.owner = owner
        self.recordBatchSize = max(1, recordBatchSize)
    }

    /// A claim outlives the longest attempt by a margin for recording it; a process that dies holding
    /// one loses it after this and the delivery is tried again (same `webhook-id`).
    public var leaseDuration: Duration { attemptTimeout + .seconds(30) }
}
