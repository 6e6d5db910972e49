import DreamdCore
import DreamdStore
import Foundation
import Logging
import Metrics
import ServiceLifecycle
import Synchronization

/// Claims due jobs and runs one step of each (a submission or a poll) through its kind's executor.
///
/// Idle workers sleep until a NOTIFY (`JobNotificationListener`), a finished job or the poll fallback
/// wakes them. Leases of running steps are renewed by a heartbeat; on graceful shutdown the worker
/// stops claiming and lets running steps finish.
public final class JobWorker: Service, Sendable {
    let store: JobStore
    let registry: ExecutorRegistry
    let configuration: WorkerConfiguration
    let wake: WakeSignal
    let logger: Logger
    let callbacks: CallbackEndpoint?
    /// The steps running now: job id → the provider of its executor.
    private let inFlight = Mutex<[UUID: String]>([:])
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
    }

    /// How many steps are running now.
    public var inFlightCount: Int { inFlight.withLock { $0.count } }

    /// How many steps of `provider`'s kinds are running now.
    public func inFlightCount(provider: String) -> Int {
        inFlight.withLock { $0.values.lazy.filter { $0 == provider }.count }
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
        let unfinished = Array(inFlight.withLock { $0.keys })
        guard !unfinished.isEmpty else { return }
        do {
            try await store.release(ids: unfinished, owner: configuration.owner)
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
            let free = configuration.concurrency - inFlightCount
            var wanted = min(free, configuration.batchSize)
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
                inFlight.withLock { $0[job.job.id] = provider }
                group.addTask {
                    await self.execute(job)
                    _ = self.inFlight.withLock { $0.removeValue(forKey: job.job.id) }
                    self.wake.signal()
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

    private func heartbeatLoop() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: configuration.heartbeatInterval)
            let ids = Array(inFlight.withLock { $0.keys })
            guard !ids.isEmpty, !Task.isCancelled else { continue }
            do {
                let renewed = try await store.heartbeat(ids: ids, owner: configuration.owner, leaseDuration: configuration.leaseDuration)
                if renewed.count < ids.count {
                    logger.warning("lost leases", metadata: ["jobs": "\(ids.count - renewed.count)"])
                }
            } catch {
                logger.warning("heartbeat failed", metadata: ["error": "\(String(reflecting: error))"])
            }
        }
    }

    /// Runs one step of a claimed job and records its outcome.
    func execute(_ claimed: ClaimedJob) async {
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
            let progress = ProgressWriter(store: store, jobID: claimed.job.id, owner: configuration.owner, logger: logger)
            let context = StepContext(logger: logger, reportProgress: { await progress.report($0) })
            outcome = isSubmission ? await executor.submit(claimed, context: context) : await executor.poll(claimed, context: context)
            await progress.flush()
        }
        for attempt in 1...5 {
            do {
                let job = try await store.record(outcome, for: claimed, provider: executor.provider, owner: configuration.owner,
                                                 backoff: configuration.retryBackoff, actor: isSubmission ? .worker : .poller)
                if let job {
                    if !isSubmission { Counter(label: "dreamd_polls_total", dimensions: [("kind", job.kind.rawValue)]).increment() }
                    if job.state != claimed.job.state {
                        Counter(label: "dreamd_job_transitions_total", dimensions: [("kind", job.kind.rawValue), ("state", job.state.rawValue)]).increment()
                    }
                    if job.state != claimed.job.state || job.state.isFinal {
                        logger.info("job \(job.state.rawValue)", metadata: job.error.map { ["error": "\($0.code): \($0.message)"] } ?? [:])
                    }
                } else {
                    logger.notice("job changed while it was worked on (cancelled or taken over); outcome not recorded",
                                  metadata: ["outcome": "\(outcome)"])
                }
                return
            } catch {
                logger.warning("recording the outcome failed", metadata: ["error": "\(String(reflecting: error))", "try": "\(attempt)"])
                try? await Task.sleep(for: .milliseconds(200 * attempt * attempt))
            }
        }
        logger.error("could not record the outcome; the lease will expire and the job will be taken over")
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
