import Foundation

/// The fencing token of one claim: a row of a leased table (a job, a webhook delivery, a checkpoint
/// archive) and the lease epoch its claim set. Every claim, rescue and release moves the row's epoch on
/// by one, and heartbeats and outcome writes match `epoch`, never the process name: a claim whose lease
/// was lost can write nothing, even when the same process has claimed the row again since.
public struct Lease: Sendable, Hashable {
    /// The row's id.
    public var id: UUID
    /// The epoch the claim set (`jobs.lease_epoch`, `deliveries.lease_epoch`, `checkpoints.archive_lease_epoch`).
    public var epoch: Int64

    public init(id: UUID, epoch: Int64) {
        self.id = id
        self.epoch = epoch
    }
}
