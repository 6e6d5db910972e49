import Foundation

/// How a ``LeaseEngine`` claims, holds and gives back work.
public struct LeaseEngineConfiguration: Sendable {
    /// The queue's name in logs (`jobs`, `deliveries`, `archives`).
    public var name: String
    /// Steps this process runs at once.
    public var concurrency: Int
    /// Most items taken by one claim.
    public var batchSize: Int
    /// Claim only once this many slots are free (or nothing runs), so a busy engine runs one claim per
    /// batch instead of one per finished step (River's fetch cooldown, in slots rather than time).
    public var claimWhenFree: Int
    /// How often the leases of running steps are renewed (well under the lease duration).
    public var heartbeatInterval: Duration
    /// How long an idle engine waits for a wake-up before looking for due work anyway.
    public var idlePollInterval: Duration
    /// How often ``LeasedQueue/maintain()`` runs.
    public var maintenanceInterval: Duration
    /// On a graceful stop, how long running steps may take to finish; then they are cancelled and their
    /// leases given back.
    public var drainTimeout: Duration

    public init(name: String, concurrency: Int, batchSize: Int, claimWhenFree: Int? = nil, heartbeatInterval: Duration,
                idlePollInterval: Duration, maintenanceInterval: Duration, drainTimeout: Duration) {
        self.name = name
        self.concurrency = max(1, concurrency)
        self.batchSize = max(1, batchSize)
        self.claimWhenFree = max(1, min(claimWhenFree ?? self.concurrency / 4, self.batchSize, self.concurrency))
        self.heartbeatInterval = heartbeatInterval
        self.idlePollInterval = idlePollInterval
        self.maintenanceInterval = maintenanceInterval
        self.drainTimeout = drainTimeout
    }
}
