import DreamdCore
import DreamdStore
import Foundation
import Logging
import ServiceLifecycle

/// Runs the job queue: claims due jobs and runs one step of each (a submission or a poll) through its
/// kind's executor, on the ``LeaseEngine`` with a ``JobQueue``.
///
/// Claims are real batches (a claim once a good share of the slots is free), outcomes are written many per
/// statement, every claim carries its fencing token, and a step whose lease is lost is cancelled at once.
/// Idle workers sleep until a NOTIFY (`JobNotificationListener`), freed slots or the poll fallback wake
/// them; on graceful shutdown the worker stops claiming and lets running steps finish (`drainTimeout`).
public final class JobWorker: Service, Sendable {
    let engine: LeaseEngine<JobQueue>

    public init(
        store: JobStore, registry: ExecutorRegistry, configuration: WorkerConfiguration, wake: WakeSignal = WakeSignal(),
        callbacks: CallbackEndpoint? = nil, logger: Logger
    ) {
        var logger = logger
        logger[metadataKey: "worker"] = "\(configuration.owner)"
        let batcher = OutcomeBatcher.outcomes(store: store, maxBatch: configuration.outcomeBatchSize,
                                              maxDelay: configuration.outcomeBatchDelay, logger: logger)
        let queue = JobQueue(store: store, registry: registry, configuration: configuration, callbacks: callbacks,
                             batcher: batcher, logger: logger)
        engine = LeaseEngine(queue: queue, configuration: LeaseEngineConfiguration(
            name: "jobs", concurrency: configuration.concurrency, batchSize: configuration.batchSize,
            claimWhenFree: configuration.claimWhenFree, heartbeatInterval: configuration.heartbeatInterval,
            idlePollInterval: configuration.idlePollInterval, maintenanceInterval: configuration.maintenanceInterval,
            drainTimeout: configuration.drainTimeout
        ), wake: wake, logger: logger)
    }

    /// How many steps are running now.
    public var inFlightCount: Int { engine.runningCount }

    public func run() async throws {
        await engine.run()
    }
}
