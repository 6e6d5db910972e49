import DreamdCore
import DreamdStore
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// The one lease-queue engine: runs a ``LeasedQueue``'s steps with up to `concurrency` at once.
///
/// - **Claims in batches**: only once `claimWhenFree` slots are free (or nothing runs), up to `batchSize`
///   at a time; after a failed claim it backs off (200 ms doubling to 10 s).
/// - **Heartbeats by token**: every `heartbeatInterval` the leases of all running steps are renewed in one
///   statement; a step whose lease the answer leaves out (rescued after a stall, released, cancelled) is
///   cancelled at once, since nothing it found could be recorded.
/// - **Wakes** on ``WakeSignal`` (a NOTIFY, freed slots, shutdown), else after the queue's idle wait.
/// - **Maintenance** (rescue of expired leases and the like) every `maintenanceInterval`, in its own task, so a
///   slow pass never delays a claim.
/// - **Graceful stop**: stops claiming, lets running steps finish for up to `drainTimeout`, then cancels the
///   rest and gives their leases back.
public final class LeaseEngine<Queue: LeasedQueue>: Sendable {
    let queue: Queue
    let configuration: LeaseEngineConfiguration
    let wake: WakeSignal
    let logger: Logger

    /// A step running now.
    private struct Step: Sendable {
        var item: Queue.Item
        var lease: Lease
        /// Signalled when the heartbeat finds the lease lost, or at the end of the drain; cancels the step.
        var loss: LeaseLoss
    }

    /// The steps running now, by row id.
    private let steps = Mutex<[UUID: Step]>([:])
    private let stopping = Atomic<Bool>(false)

    public init(queue: Queue, configuration: LeaseEngineConfiguration, wake: WakeSignal = WakeSignal(), logger: Logger) {
        self.queue = queue
        self.configuration = configuration
        self.wake = wake
        self.logger = logger
    }

    /// How many steps are running now.
    public var runningCount: Int { steps.withLock { $0.count } }

    /// The items whose steps are running now.
    public var running: [Queue.Item] { steps.withLock { $0.values.map(\.item) } }

    /// Runs until cancelled, or until a graceful shutdown has drained.
    public func run() async {
        await withGracefulShutdownHandler {
            await withDiscardingTaskGroup { group in
                group.addTask { await self.heartbeatLoop() }
                group.addTask { await self.maintenanceLoop() }
                group.addTask { await self.queue.background() }
                await self.claimLoop(&group)
                await self.drain()
                group.cancelAll()
            }
        } onGracefulShutdown: {
            self.stop()
        }
    }

    /// Stops claiming; running steps are drained.
    public func stop() {
        stopping.store(true, ordering: .relaxed)
        wake.signal()
    }

    private func claimLoop(_ group: inout DiscardingTaskGroup) async {
        var failures = 0
        while !stopping.load(ordering: .relaxed), !Task.isCancelled {
            let (runningNow, items) = steps.withLock { ($0.count, $0.values.map(\.item)) }
            let free = configuration.concurrency - runningNow
            let wanted = free >= configuration.claimWhenFree || runningNow == 0 ? min(free, configuration.batchSize) : 0
            var claimed: [Queue.Item] = []
            if wanted > 0 {
                do {
                    claimed = try await queue.claim(limit: wanted, running: items)
                    failures = 0
                } catch {
                    failures += 1
                    logger.warning("claim failed", metadata: ["queue": "\(configuration.name)", "error": "\(LogSafe.describe(error))"])
                    try? await Task.sleep(for: BackoffPolicy(base: .milliseconds(200), cap: .seconds(10)).delay(afterAttempt: failures))
                    continue
                }
            }
            for item in claimed {
                start(item, in: &group)
            }
            if claimed.count < wanted || wanted == 0 {
                await wake.wait(timeout: queue.idleWait(fallback: configuration.idlePollInterval))
            }
        }
    }

    private func start(_ item: Queue.Item, in group: inout DiscardingTaskGroup) {
        let lease = queue.lease(of: item)
        let loss = LeaseLoss()
        steps.withLock { $0[lease.id] = Step(item: item, lease: lease, loss: loss) }
        group.addTask {
            await self.runStep(item, lease: lease, loss: loss)
            let free = self.steps.withLock { steps -> Int in
                if steps[lease.id]?.lease == lease { steps.removeValue(forKey: lease.id) }
                return self.configuration.concurrency - steps.count
            }
            // Wake the claim loop only when it has something to do: a share of the slots is free.
            if free >= self.configuration.claimWhenFree || free == self.configuration.concurrency { self.wake.signal() }
        }
    }

    /// Runs one step, cancelled as soon as its lease is lost.
    private func runStep(_ item: Queue.Item, lease: Lease, loss: LeaseLoss) async {
        await withTaskGroup(of: Void.self) { race in
            race.addTask { await self.queue.run(item) }
            race.addTask { await loss.wait() }
            await race.next()
            race.cancelAll()
        }
        if loss.isLost, !stopping.load(ordering: .relaxed) {
            logger.notice("step cancelled: its lease was lost (rescued, released or cancelled)", metadata: [
                "queue": "\(configuration.name)", "id": "\(lease.id)", "lease_epoch": "\(lease.epoch)",
            ])
        }
    }

    /// The fencing tokens of the steps running now.
    private func leases() -> [Lease] {
        steps.withLock { $0.values.map(\.lease) }
    }

    /// Maintenance on its own schedule, beside the claim loop: a slow pass (many callbacks to apply, a large
    /// rescue) never holds claims up. Run inline, it was the likely cause of the 1.2 s stalls of every claim
    /// seen under `bench/e2e.sh` (docs/benchmarks.md). A pass can make work due (promotions, rescues,
    /// callbacks applied), so it wakes the claim loop.
    private func maintenanceLoop() async {
        while !stopping.load(ordering: .relaxed), !Task.isCancelled {
            await queue.maintain()
            wake.signal()
            try? await Task.sleep(for: configuration.maintenanceInterval)
        }
    }

    /// Renews the leases of running steps; cancels the steps whose lease is gone.
    private func heartbeatLoop() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: configuration.heartbeatInterval)
            let held = leases()
            guard !held.isEmpty, !Task.isCancelled else { continue }
            do {
                let renewed = try await queue.renew(held)
                let lost = held.filter { !renewed.contains($0.id) }
                guard !lost.isEmpty else { continue }
                let signals = steps.withLock { steps in
                    lost.compactMap { lease in steps[lease.id].flatMap { $0.lease == lease ? $0.loss : nil } }
                }
                for signal in signals { signal.signal() }
                QueueMetrics.leasesLost(signals.count, queue: configuration.name)
                if !signals.isEmpty {
                    logger.warning("lost leases; cancelled their steps", metadata: ["queue": "\(configuration.name)", "steps": "\(signals.count)"])
                }
            } catch {
                logger.warning("heartbeat failed", metadata: ["queue": "\(configuration.name)", "error": "\(LogSafe.describe(error))"])
            }
        }
    }

    /// Lets running steps finish and record their outcome, up to the drain timeout; then cancels what is
    /// still running and gives its leases back.
    private func drain() async {
        let deadline = ContinuousClock.now + configuration.drainTimeout
        if runningCount > 0, configuration.drainTimeout > .zero {
            logger.info("draining", metadata: ["queue": "\(configuration.name)", "running": "\(runningCount)"])
        }
        while runningCount > 0, !Task.isCancelled, ContinuousClock.now < deadline {
            await wake.wait(timeout: .milliseconds(50))
        }
        let unfinished = steps.withLock { Array($0.values) }
        guard !unfinished.isEmpty else { return }
        for step in unfinished { step.loss.signal() }
        // Cancelled steps end at their next suspension point; wait for them (briefly) so a released lease
        // is never still being worked on here.
        let cancelDeadline = ContinuousClock.now + .seconds(5)
        while runningCount > 0, ContinuousClock.now < cancelDeadline {
            await wake.wait(timeout: .milliseconds(20))
        }
        do {
            try await queue.release(unfinished.map(\.lease))
            logger.notice("gave back the leases of unfinished steps", metadata: ["queue": "\(configuration.name)", "steps": "\(unfinished.count)"])
        } catch {
            logger.warning("could not give back leases; they will run out", metadata: [
                "queue": "\(configuration.name)", "error": "\(LogSafe.describe(error))",
            ])
        }
    }
}
