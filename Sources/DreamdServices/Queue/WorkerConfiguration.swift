import DreamdCore
import Foundation

/// How a `JobWorker` claims and holds work.
public struct WorkerConfiguration: Sendable {
    /// Jobs this process runs at once (submissions and polls together).
    public var concurrency: Int
    /// Most jobs taken in one claim query.
    public var batchSize: Int
    /// How long a claim is valid without a heartbeat; a crashed process's work is taken over after it.
    public var leaseDuration: Duration
    /// How often leases of running work are renewed.
    public var heartbeatInterval: Duration
    /// How long an idle worker waits for a NOTIFY before looking for due work anyway.
    public var idlePollInterval: Duration
    /// How often due `scheduled` jobs are promoted and expired leases rescued.
    public var maintenanceInterval: Duration
    /// Backoff between failed attempts.
    public var retryBackoff: BackoffPolicy
    /// This worker's name in `jobs.lease_owner`.
    public var owner: String
    /// On a graceful stop, how long running steps may take to finish before their leases are given back.
    public var drainTimeout: Duration = .seconds(60)
    /// Claim only once this many slots are free (or nothing runs): a quarter of `concurrency` by default,
    /// at most `batchSize`, so a busy worker runs one claim per batch instead of one per finished step.
    public var claimWhenFree: Int
    /// Most outcomes written in one statement.
    public var outcomeBatchSize: Int = 500
    /// How long the first outcome of a batch waits for others before the batch is written.
    public var outcomeBatchDelay: Duration = .milliseconds(5)

    public init(
        concurrency: Int = 16, batchSize: Int = 10, leaseDuration: Duration = .seconds(30),
        heartbeatInterval: Duration = .seconds(10), idlePollInterval: Duration = .seconds(1),
        maintenanceInterval: Duration = .seconds(1), retryBackoff: BackoffPolicy = .jobRetry,
        owner: String = WorkerConfiguration.defaultOwner()
    ) {
        self.concurrency = max(1, concurrency)
        self.batchSize = max(1, batchSize)
        self.leaseDuration = leaseDuration
        self.heartbeatInterval = heartbeatInterval
        self.idlePollInterval = idlePollInterval
        self.maintenanceInterval = maintenanceInterval
        self.retryBackoff = retryBackoff
        self.owner = owner
        self.claimWhenFree = max(1, min(self.batchSize, self.concurrency / 4))
    }

    /// `host:pid:random`, unique per process start.
    public static func defaultOwner() -> String {
        let host = ProcessInfo.processInfo.hostName
        let random = UInt32.random(in: .min ... .max)
        return "\(host):\(ProcessInfo.processInfo.processIdentifier):\(String(random, radix: 16))"
    }
}
