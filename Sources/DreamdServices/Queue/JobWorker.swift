import DreamdCore
import DreamdStore
import Foundation
import Logging
import Metrics
import ServiceLifecycle
import Synchronization

/// Claims due jobs and runs one step of each (a submission or a poll) through its kind's executor.
///
/// Claims are real batches: the worker claims when a good share of its slots is free
/// (`WorkerConfiguration.claimWhenFree`), not after every finished step. Outcomes are written many per
/// statement by an ``OutcomeBatcher``. Every claim carries its fencing token (`ClaimedJob.leaseEpoch`);
/// the heartbeat renews leases by token, and a step whose lease is lost is cancelled at once. Idle
/// workers sleep until a NOTIFY (`JobNotificationListener`), freed slots or the poll fallback wake them;
/// on graceful shutdown the worker stops claiming and lets running steps finish.
public final class JobWorker: Service, Sendable {
    let store: JobStore
    let registry: ExecutorRegistry
    let configuration: WorkerConfiguration
    let wake: WakeSignal
    let logger: Logger
    let callbacks: CallbackEndpoint?
    /// A step running now.
    private struct Step {
        /// The provider of its executor (for per-upstream caps).
        var provider: String
        /// Its claim's fencing token.
        var epoch: Int64
        /// Signalled when the heartbeat finds the lease lost; cancels the step.
        var loss: LeaseLoss
    }

    /// The steps running now, by job id.
    private let inFlight = Mutex<[UUID: Step]>([:])
    /// Writes the steps' outcomes, many per statement.
    private let batcher: OutcomeBatcher
    private let stopping = Atomic<Bool>(false)

    public init(
        store: JobStore, registry: ExecutorRegistry, configuration: WorkerConfiguration, wake: WakeSignal = WakeSignal(),
        callbacks: CallbackEndpoint? = nil, logger: Logger
    ) {
        self.store = store
        self.callbacks = callbacks
        self.registry = registry
        self.configuration = configuration
        self.wake = wake
        var logger = logger
        logger[metadataKey: "worker"] = "\(configuration.owner)"
        self.logger = logger
        self.batcher = OutcomeBatcher(store: store, maxBatch: configuration.outcomeBatchSize,
                                      maxDelay: configuration.outcomeBatchDelay, logger: logger)
    }

    /// How many steps are running now.
    public var inFlightCount: Int { inFlight.withLock { $0.count } }

    /// How many steps of `provider`'s kinds are running now.
    public func inFlightCount(provider: String) -> Int {
        inFlight.withLock { $0.values.lazy.filter { $0.provider == provider }.count }
    }

    /// What one claim pass may take: each capped executor's kinds up to its free slots, then the kinds
    /// of the executors without a cap together (capped kinds first, so a long backlog of uncapped work
    /// cannot starve them; their cap keeps them from starving the rest). Executors whose upstream is
    /// paused are left out, so their jobs stay queued.
    func claimPlan(free: Int) -> [(kinds: [JobKind], limit: Int)] {
        guard free > 0 else { return [] }
        var unlimited: [JobKind] = []
        var capped: [(kinds: [JobKind], limit: Int)] = []
        for executor in registry.executors where executor.isAccepting {
            let kinds = executor.kinds.filter { registry.executor(for: $0)?.provider == executor.provider }
            if let cap = executor.maxInFlight {
                let slots = cap - inFlightCount(provider: executor.provider)
                if slots > 0 { capped.append((kinds, slots)) }
            } else {
                unlimited.append(contentsOf: kinds)
            }
        }
        if !unlimited.isEmpty { capped.append((unlimited, free)) }
        return capped
    }

    public func run() async throws {
        await withGracefulShutdownHandler {
            await withDiscardingTaskGroup { group in
                group.addTask { await self.heartbeatLoop() }
                group.addTask { await self.batcher.run() }
                await self.claimLoop(&group)
                await self.drain()
                group.cancelAll()
            }
        } onGracefulShutdown: {
            self.stopping.store(true, ordering: .relaxed)
            self.wake.signal()
        }
    }

    /// Lets running steps finish and record their outcome, up to the drain timeout; then gives the
    /// leases of what is still running back (a job caught mid-submission keeps its attempt count, so
    /// its next attempt looks for the earlier submission upstream before sending it again).
    private func drain() async {
        let deadline = ContinuousClock.now + configuration.drainTimeout
        if inFlightCount > 0 { logger.info("draining", metadata: ["running": "\(inFlightCount)"]) }
        while inFlightCount > 0, !Task.isCancelled, ContinuousClock.now < deadline {
            await wake.wait(timeout: .milliseconds(100))
        }
        let unfinished = leases()
        guard !unfinished.isEmpty else { return }
        do {
            try await store.release(leases: unfinished)
            logger.notice("drain timeout: gave back leases of unfinished steps", metadata: ["jobs": "\(unfinished.count)"])
        } catch {
            logger.warning("could not give back leases; they will expire", metadata: ["error": "\(String(reflecting: error))"])
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
            // Claim in batches: only once a good share of the slots is free (or nothing runs), so a busy
            // worker runs one claim per batch rather than one per finished step.
            let running = inFlightCount
            let free = configuration.concurrency - running
            var wanted = free >= configuration.claimWhenFree || running == 0 ? min(free, configuration.batchSize) : 0
            var claimed: [ClaimedJob] = []
            var claimFailed = false
            var requested = 0
            for part in claimPlan(free: wanted) {
                let limit = min(part.limit, wanted - claimed.count)
                guard limit > 0 else { break }
                requested += limit
                do {
                    let started = ContinuousClock.now
                    let part = try await store.claim(kinds: part.kinds, limit: limit, owner: configuration.owner,
                                                     leaseDuration: configuration.leaseDuration)
                    Timer(label: "dreamd_claim_duration_seconds").recordNanoseconds(Int64((ContinuousClock.now - started).seconds * 1e9))
                    Counter(label: "dreamd_jobs_claimed_total").increment(by: part.count)
                    claimed += part
                } catch {
                    claimFailed = true
                    logger.warning("claim failed", metadata: ["error": "\(String(reflecting: error))"])
                    break
                }
            }
            wanted = requested
            if claimFailed, claimed.isEmpty {
                failures += 1
                try? await Task.sleep(for: BackoffPolicy(base: .milliseconds(200), cap: .seconds(10)).delay(afterAttempt: failures))
                continue
            }
            failures = 0
            for job in claimed {
                let provider = registry.executor(for: job.job.kind)?.provider ?? ""
                let loss = LeaseLoss()
                inFlight.withLock { $0[job.job.id] = Step(provider: provider, epoch: job.leaseEpoch, loss: loss) }
                group.addTask {
                    await self.runStep(job, loss: loss)
                    let free = self.inFlight.withLock { steps -> Int in
                        steps.removeValue(forKey: job.job.id)
                        return self.configuration.concurrency - steps.count
                    }
                    // Wake the claim loop only when it has something to do: a share of the slots is free.
                    if free >= self.configuration.claimWhenFree || free == self.configuration.concurrency { self.wake.signal() }
                }
            }
            if claimed.count < wanted || wanted == 0 {
                await wake.wait(timeout: configuration.idlePollInterval)
            }
        }
    }

    /// Promotes due scheduled jobs and takes back leases that ran out.
    private func maintain() async {
        do {
            let promoted = try await store.promoteDueJobs()
            let rescued = try await store.rescueExpiredLeases()
            if rescued > 0 { logger.warning("took over work with expired leases", metadata: ["jobs": "\(rescued)"]) }
            if promoted > 0 { logger.debug("promoted due jobs", metadata: ["jobs": "\(promoted)"]) }
        } catch {
            logger.warning("queue maintenance failed", metadata: ["error": "\(String(reflecting: error))"])
        }
    }

    /// The fencing tokens of the steps running now.
    private func leases() -> [JobLease] {
        inFlight.withLock { steps in steps.map { JobLease(id: $0.key, epoch: $0.value.epoch) } }
    }

    /// Renews the leases of running steps by their tokens; a step whose lease is gone (rescued after a
    /// stall, released, cancelled) is cancelled at once, since nothing it found could be recorded.
    private func heartbeatLoop() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: configuration.heartbeatInterval)
            let held = leases()
            guard !held.isEmpty, !Task.isCancelled else { continue }
            do {
                let renewed = try await store.heartbeat(leases: held, leaseDuration: configuration.leaseDuration)
                let lost = held.filter { !renewed.contains($0.id) }
                guard !lost.isEmpty else { continue }
                let signals = inFlight.withLock { steps in
                    lost.compactMap { lease in steps[lease.id].flatMap { $0.epoch == lease.epoch ? $0.loss : nil } }
                }
                for signal in signals { signal.signal() }
                QueueMetrics.leasesLost(signals.count)
                if !signals.isEmpty {
                    logger.warning("lost leases; cancelled their steps", metadata: ["jobs": "\(signals.count)"])
                }
            } catch {
                logger.warning("heartbeat failed", metadata: ["error": "\(String(reflecting: error))"])
            }
        }
    }

    /// Runs one step, cancelled as soon as its lease is lost.
    private func runStep(_ claimed: ClaimedJob, loss: LeaseLoss) async {
        await withTaskGroup(of: Void.self) { race in
            race.addTask { await self.execute(claimed, loss: loss) }
            race.addTask { await loss.wait() }
            await race.next()
            race.cancelAll()
        }
        if loss.isLost {
            logger.notice("step cancelled: its lease was lost (rescued, released or cancelled)", metadata: [
                "job_id": "\(claimed.job.id)", "lease_epoch": "\(claimed.leaseEpoch)",
            ])
        }
    }

    /// Runs one step of a claimed job and records its outcome (through the batcher; a success that
    /// trained checkpoints is written with them in one transaction).
    func execute(_ claimed: ClaimedJob, loss: LeaseLoss = LeaseLoss()) async {
        var logger = self.logger
        logger[metadataKey: "job_id"] = "\(claimed.job.id)"
        logger[metadataKey: "kind"] = "\(claimed.job.kind)"
        guard let executor = registry.executor(for: claimed.job.kind) else {
            logger.error("no executor for claimed job")
            return
        }
        let isSubmission = claimed.job.state == .submitting
        var claimed = claimed
        if isSubmission, executor.usesCallbacks, let callbacks {
            do {
                claimed.callbackURL = try await callbacks.newURL(jobID: claimed.job.id, provider: executor.provider)
            } catch {
                logger.warning("could not create a callback token; submitting without a callback", metadata: ["error": "\(String(reflecting: error))"])
            }
        }
        let outcome: StepOutcome
        if isSubmission, let refused = await expiredCheckpointOutcome(claimed, executor: executor, logger: logger) {
            // A checkpoint this job runs on expired while it waited: fail without calling the upstream.
            outcome = refused
        } else {
            let progress = ProgressWriter(store: store, lease: JobLease(id: claimed.job.id, epoch: claimed.leaseEpoch), logger: logger)
            let context = StepContext(logger: logger, reportProgress: { await progress.report($0) })
            outcome = isSubmission ? await executor.submit(claimed, context: context) : await executor.poll(claimed, context: context)
            await progress.flush()
        }
        guard !loss.isLost, !Task.isCancelled else { return }
        let actor: DreamdStore.Actor = isSubmission ? .worker : .poller
        let state: JobState?
        do {
            if case .succeeded(_, _, _, let checkpoints) = outcome, !checkpoints.isEmpty {
                state = try await store.record(outcome, for: claimed, provider: executor.provider, owner: configuration.owner,
                                               backoff: configuration.retryBackoff, actor: actor)?.state
            } else {
                let write = try store.outcomeWrite(outcome, for: claimed, provider: executor.provider,
                                                   backoff: configuration.retryBackoff, actor: actor)
                // A submission the upstream accepted is written at once: its upstream id must be stored
                // before a crash could lead to a second submission.
                var urgent = false
                if isSubmission, case .running = outcome { urgent = true }
                state = try await batcher.record(write, urgent: urgent)
            }
        } catch {
            logger.error("could not record the outcome; the lease will expire and the job will be taken over",
                         metadata: ["error": "\(String(reflecting: error))"])
            return
        }
        guard let state else {
            logger.notice("job changed while it was worked on (cancelled or taken over); outcome not recorded",
                          metadata: ["outcome": "\(outcome)"])
            return
        }
        let kind = claimed.job.kind.rawValue
        if !isSubmission { Counter(label: "dreamd_polls_total", dimensions: [("kind", kind)]).increment() }
        if state != claimed.job.state {
            Counter(label: "dreamd_job_transitions_total", dimensions: [("kind", kind), ("state", state.rawValue)]).increment()
        }
        if state != claimed.job.state || state.isFinal {
            var metadata: Logger.Metadata = [:]
            switch outcome {
            case .failed(let error, _), .retry(let error, _): metadata["error"] = "\(error.code): \(error.message)"
            default: break
            }
            logger.info("job \(state.rawValue)", metadata: metadata)
        }
    }

    /// `.failed(checkpoint_expired)` when a checkpoint the job names is known to be expired, else `nil`.
    /// A failed lookup lets the submission go ahead (dreamlook itself refuses a deleted checkpoint).
    func expiredCheckpointOutcome(_ claimed: ClaimedJob, executor: any JobExecutor, logger: Logger) async -> StepOutcome? {
        let references = executor.referencedCheckpoints(kind: claimed.job.kind, params: claimed.job.params)
        guard !references.isEmpty else { return nil }
        let expired: [ExpiredCheckpoint]
        do {
            expired = try await store.expiredCheckpoints(among: references.map(\.checkpointID))
        } catch {
            logger.warning("could not check the job's checkpoints for expiry", metadata: ["error": "\(String(reflecting: error))"])
            return nil
        }
        guard let first = expired.first, let reference = references.first(where: { $0.checkpointID == first.upstreamCheckpointID }) else {
            return nil
        }
        let message = "checkpoint \(first.upstreamCheckpointID) (\(reference.field)) expired at \(DreamdJSON.formatDate(first.expiredAt)) while the job was waiting; it was not submitted"
        return .failed(JobError(code: "checkpoint_expired", message: message), upstreamState: nil)
    }
}
