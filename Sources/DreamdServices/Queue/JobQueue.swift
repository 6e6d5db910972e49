import DreamdCore
import DreamdStore
import Foundation
import Logging
import Metrics

/// The jobs table as a ``LeasedQueue``: claims due jobs of the kinds whose upstream accepts work (within
/// each executor's in-flight cap), and runs one step of each (a submission or a poll) through its kind's
/// executor. Outcomes are written many per statement by a ``WriteBatcher`` (``OutcomeBatcher``).
struct JobQueue: LeasedQueue {
    let store: JobStore
    let registry: ExecutorRegistry
    let configuration: WorkerConfiguration
    let callbacks: CallbackEndpoint?
    let batcher: OutcomeBatcher
    let logger: Logger

    func lease(of claimed: ClaimedJob) -> Lease {
        Lease(id: claimed.job.id, epoch: claimed.leaseEpoch)
    }

    /// Claims by the ``claimPlan(free:running:)``: one statement per capped upstream with free slots, and one
    /// for all uncapped kinds. A part that fails after others succeeded ends the pass with what was claimed.
    func claim(limit: Int, running: [ClaimedJob]) async throws -> [ClaimedJob] {
        var claimed: [ClaimedJob] = []
        for part in claimPlan(free: limit, running: running) {
            let limit = min(part.limit, limit - claimed.count)
            guard limit > 0 else { break }
            do {
                let started = ContinuousClock.now
                let part = try await store.claim(kinds: part.kinds, limit: limit, owner: configuration.owner,
                                                 leaseDuration: configuration.leaseDuration, holdingKinds: holdingKinds,
                                                 markingKinds: markingKinds)
                Timer(label: "dreamd_claim_duration_seconds").recordNanoseconds(Int64((ContinuousClock.now - started).seconds * 1e9))
                Counter(label: "dreamd_jobs_claimed_total").increment(by: part.count)
                claimed += part
            } catch {
                if claimed.isEmpty { throw error }
                logger.warning("claim failed", metadata: ["error": "\(LogSafe.describe(error))"])
                break
            }
        }
        return claimed
    }

    /// The kinds whose executors settle lost submissions by listing: their fresh submissions are held while
    /// one of their jobs waits on a held reconciliation.
    var holdingKinds: [JobKind] {
        registry.executors.filter(\.reconcilesByListing).flatMap(\.kinds)
    }

    /// The kinds whose submissions record their callback token before anything is sent (callbacks on and
    /// the executor takes them): a rescued one without its token was never sent and goes again at once.
    var markingKinds: [JobKind] {
        callbacks == nil ? [] : registry.executors.filter(\.usesCallbacks).flatMap(\.kinds)
    }

    /// What one claim pass may take: each capped executor's kinds up to its free slots, then the kinds
    /// of the executors without a cap together (capped kinds first, so a long backlog of uncapped work
    /// cannot starve them; their cap keeps them from starving the rest). Executors whose upstream is
    /// paused are left out, so their jobs stay queued.
    func claimPlan(free: Int, running: [ClaimedJob]) -> [(kinds: [JobKind], limit: Int)] {
        guard free > 0 else { return [] }
        var unlimited: [JobKind] = []
        var capped: [(kinds: [JobKind], limit: Int)] = []
        for executor in registry.executors where executor.isAccepting {
            let kinds = executor.kinds.filter { registry.executor(for: $0)?.provider == executor.provider }
            if let cap = executor.maxInFlight {
                let busy = running.lazy.filter { self.registry.executor(for: $0.job.kind)?.provider == executor.provider }.count
                if cap - busy > 0 { capped.append((kinds, cap - busy)) }
            } else {
                unlimited.append(contentsOf: kinds)
            }
        }
        if !unlimited.isEmpty { capped.append((unlimited, free)) }
        return capped
    }

    func renew(_ leases: [Lease]) async throws -> Set<UUID> {
        try await store.heartbeat(leases: leases, leaseDuration: configuration.leaseDuration)
    }

    /// A job caught mid-submission goes back to `queued` and keeps its attempt count, so its next attempt
    /// looks for the earlier submission upstream before sending it again; a running job is polled again.
    func release(_ leases: [Lease]) async throws {
        try await store.release(leases: leases)
    }

    /// Promotes due scheduled jobs, takes back leases that ran out, and applies callbacks that had to wait.
    func maintain() async {
        do {
            let promoted = try await store.promoteDueJobs()
            let rescued = try await store.rescueExpiredLeases()
            if rescued > 0 { logger.warning("took over work with expired leases", metadata: ["jobs": "\(rescued)"]) }
            if promoted > 0 { logger.debug("promoted due jobs", metadata: ["jobs": "\(promoted)"]) }
            if let callbacks {
                // Callbacks that came while their job was busy are applied now that it is free.
                try await CallbackProcessor(callbacks: callbacks.store, jobs: store, registry: registry, logger: logger).processPending()
            }
        } catch {
            logger.warning("queue maintenance failed", metadata: ["error": "\(LogSafe.describe(error))"])
        }
    }

    func background() async {
        await batcher.run()
    }

    /// Runs one step of a claimed job (a submission or a poll) through its kind's executor and records its
    /// outcome: through the batcher, or, for a success that trained checkpoints, with them in one transaction.
    func run(_ claimed: ClaimedJob) async {
        var logger = self.logger
        logger[metadataKey: "job_id"] = "\(claimed.job.id)"
        logger[metadataKey: "kind"] = "\(claimed.job.kind)"
        guard let executor = registry.executor(for: claimed.job.kind) else {
            logger.error("no executor for claimed job")
            return
        }
        let isSubmission = claimed.job.state == .submitting
        // A submission's callback token is also its durable mark (migration 0026): the executor has it written
        // right before its request goes out (`StepContext.markSubmission`), and sends nothing without it.
        var markSubmission: @Sendable () async throws -> String? = { nil }
        if isSubmission, executor.usesCallbacks, let callbacks {
            let (jobID, provider) = (claimed.job.id, executor.provider)
            markSubmission = { try await callbacks.newURL(jobID: jobID, provider: provider) }
        }
        let outcome: StepOutcome
        if isSubmission, claimed.job.attempt > claimed.job.maxAttempts, !executor.reconcilesByListing {
            // Taken back from a worker that stopped on the last attempt: this executor cannot tell whether
            // that submission reached the upstream, and sending it past its attempts is not allowed.
            outcome = .failed(JobError(code: "lease_expired",
                                       message: "the worker holding this job's last attempt (\(claimed.job.maxAttempts)) stopped mid-submission; not sent again"),
                              upstreamState: nil)
        } else if isSubmission, let refused = await expiredCheckpointOutcome(claimed, executor: executor, logger: logger) {
            // A checkpoint this job runs on expired while it waited: fail without calling the upstream.
            outcome = refused
        } else {
            let progress = ProgressWriter(store: store, lease: Lease(id: claimed.job.id, epoch: claimed.leaseEpoch), logger: logger)
            let context = StepContext(logger: logger, reportProgress: { await progress.report($0) }, markSubmission: markSubmission)
            outcome = isSubmission ? await executor.submit(claimed, context: context) : await executor.poll(claimed, context: context)
            await progress.flush()
        }
        guard !Task.isCancelled else { return }
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
                // So is an unsettled one: its hold on the kind's submissions must reach the other daemons now.
                var urgent = false
                if isSubmission, case .running = outcome { urgent = true }
                if case .unsettled = outcome { urgent = true }
                state = try await batcher.submit(write, urgent: urgent)
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
        if state == .running, executor.usesCallbacks, let callbacks {
            // A callback that came while this step held the job waited in the inbox: apply it now.
            do {
                try await CallbackProcessor(callbacks: callbacks.store, jobs: store, registry: registry, logger: logger)
                    .processWaiting(jobID: claimed.job.id)
            } catch {
                logger.warning("could not apply a callback that waited; the maintenance pass will",
                               metadata: ["error": "\(LogSafe.describe(error))"])
            }
        }
        let kind = claimed.job.kind.rawValue
        if !isSubmission { Counter(label: "dreamd_polls_total", dimensions: [("kind", kind)]).increment() }
        if state != claimed.job.state {
            Counter(label: "dreamd_job_transitions_total", dimensions: [("kind", kind), ("state", state.rawValue)]).increment()
        }
        if state != claimed.job.state || state.isFinal {
            var metadata: Logger.Metadata = [:]
            switch outcome {
            case .failed(let error, _), .retry(let error, _), .unsettled(let error, _, _, _, _):
                metadata["error"] = "\(error.code): \(error.message)"
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
