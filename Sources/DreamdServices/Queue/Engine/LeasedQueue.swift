import DreamdStore
import Foundation

/// One table of leased work that a ``LeaseEngine`` runs: jobs (``JobQueue``), webhook deliveries
/// (``DeliveryQueue``) and checkpoint archives (``ArchiveQueue``).
///
/// A queue supplies only its table's statements (claim, renew, release, maintenance) and its step; the
/// engine supplies everything else (batched claims, heartbeats, cancelling a step whose lease is lost,
/// wake-ups, backoff after a failed claim, the drain on shutdown). Every statement a queue runs for an item
/// matches the item's ``Lease`` (its claim's fencing token), never the process name.
public protocol LeasedQueue: Sendable {
    /// A claimed row, with what its step needs.
    associatedtype Item: Sendable

    /// The claim's fencing token.
    func lease(of item: Item) -> Lease

    /// Claims up to `limit` due items (`FOR UPDATE SKIP LOCKED`, one statement per call or a few), each
    /// with a new lease epoch. `running` is what this engine runs now, for caps such as one per upstream.
    /// Throws only when nothing could be claimed.
    func claim(limit: Int, running: [Item]) async throws -> [Item]

    /// Renews the given leases by token, in one statement. Returns the ids still held; the engine
    /// cancels the steps of the others at once.
    func renew(_ leases: [Lease]) async throws -> Set<UUID>

    /// Gives back the leases of steps that did not finish before the drain timeout of a graceful stop, so
    /// another worker can take them without waiting for the leases to run out.
    func release(_ leases: [Lease]) async throws

    /// Runs every `maintenanceInterval`: rescue of expired leases and whatever else the table needs.
    func maintain() async

    /// Runs one item's step and records its outcome, fenced by its lease. The task is cancelled as soon as
    /// the lease is lost; a cancelled step records nothing.
    func run(_ item: Item) async

    /// Work that lives as long as the engine runs (an outcome batcher, say), cancelled after the drain.
    func background() async

    /// How long an idle engine waits for a wake-up before looking for due work again (`fallback`, unless
    /// the queue knows of work due sooner).
    func idleWait(fallback: Duration) -> Duration
}

extension LeasedQueue {
    public func background() async {}

    public func idleWait(fallback: Duration) -> Duration { fallback }
}
