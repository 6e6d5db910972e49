import DreamdCore
import DreamdStore
import DreamdUpstreams
import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import _NIOFileSystem

/// Settings of the checkpoint archiver.
public struct ArchiverConfiguration: Sendable {
    /// `DREAMD_DATA_DIR/checkpoints`.
    public var directory: String
    /// Downloads at once (`DREAMD_ARCHIVE_CONCURRENCY`).
    public var concurrency: Int
    /// Who holds the leases (unique per process).
    public var owner: String
    /// How long a claim holds before another archiver may take it over (renewed while downloading).
    public var leaseDuration: Duration
    /// How often to look for due archives.
    public var pollInterval: Duration
    /// Waits between failed attempts.
    public var retryBackoff: BackoffPolicy
    /// Archived files older than this are deleted and their `archived_path` cleared (`DREAMD_ARCHIVE_RETENTION`; `nil`: keep).
    public var retention: Duration?

    public init(directory: String, concurrency: Int = 2, owner: String = "archiver-\(UUID().uuidString.prefix(8).lowercased())",
                leaseDuration: Duration = .seconds(60), pollInterval: Duration = .seconds(1),
                retryBackoff: BackoffPolicy = BackoffPolicy(base: .seconds(30), cap: .seconds(3600)), retention: Duration? = nil) {
        self.directory = directory
        self.concurrency = concurrency
        self.owner = owner
        self.leaseDuration = leaseDuration
        self.pollInterval = pollInterval
        self.retryBackoff = retryBackoff
        self.retention = retention
    }
}

/// Copies checkpoints whose archive was requested to `DREAMD_DATA_DIR/checkpoints/` before dreamlook deletes them,
/// on the ``LeaseEngine`` with an ``ArchiveQueue``.
///
/// Claims archives through the database with a lease (one daemon downloads each), runs up to
/// `concurrency` downloads at once, renews the leases while downloading (a download whose lease is lost is
/// cancelled), refreshes an expired signed URL by reading the training job from dreamlook again, and
/// retries failures with backoff. A checkpoint that expires before its archive succeeds ends `failed` with
/// an error saying so. Shutdown stops downloads where they are and gives their leases back: the `.part`
/// file is continued by the next attempt with a `Range` request.
public final class CheckpointArchiver: Service, Sendable {
    let engine: LeaseEngine<ArchiveQueue>

    public init(store: CheckpointStore, dreamlook: DreamlookClient, downloader: CheckpointDownloader,
                configuration: ArchiverConfiguration, logger: Logger) {
        var logger = logger
        logger[metadataKey: "service"] = "checkpoint-archiver"
        engine = LeaseEngine(queue: ArchiveQueue(store: store, dreamlook: dreamlook, downloader: downloader,
                                                 configuration: configuration, logger: logger),
                             configuration: LeaseEngineConfiguration(
                                 name: "archives", concurrency: configuration.concurrency, batchSize: configuration.concurrency,
                                 claimWhenFree: 1, heartbeatInterval: configuration.leaseDuration / 3,
                                 idlePollInterval: configuration.pollInterval, maintenanceInterval: .seconds(60), drainTimeout: .zero
                             ), logger: logger)
    }

    public func run() async throws {
        await engine.run()
    }
}

/// Checkpoint archives as a ``LeasedQueue``: claims due archives (pending, or archiving with a lease that
/// ran out), and runs one download attempt of each. Maintenance deletes archived files past retention.
struct ArchiveQueue: LeasedQueue {
    let store: CheckpointStore
    let dreamlook: DreamlookClient
    let downloader: CheckpointDownloader
    let configuration: ArchiverConfiguration
    let logger: Logger

    func lease(of task: ArchiveTask) -> Lease {
        Lease(id: task.id, epoch: task.leaseEpoch)
    }

    func claim(limit: Int, running: [ArchiveTask]) async throws -> [ArchiveTask] {
        try await store.claimArchives(owner: configuration.owner, limit: limit, leaseDuration: configuration.leaseDuration)
    }

    func renew(_ leases: [Lease]) async throws -> Set<UUID> {
        try await store.renewArchiveLeases(leases, leaseDuration: configuration.leaseDuration)
    }

    func release(_ leases: [Lease]) async throws {
        try await store.releaseArchives(leases)
    }

    func maintain() async {
        if let retention = configuration.retention { await applyRetention(retention) }
    }

    /// The file a checkpoint is archived to.
    public func path(for task: ArchiveTask) -> String {
        let format = task.fileFormat.flatMap { $0.isEmpty ? nil : $0 } ?? "bin"
        let ext = format.filter { $0.isLetter || $0.isNumber }
        let name = task.upstreamCheckpointID.filter { $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" }
        return "\(configuration.directory)/\(name).\(ext)"
    }

    /// One attempt at one archive (cancelled by the engine as soon as its lease is lost).
    func run(_ task: ArchiveTask) async {
        var logger = self.logger
        logger[metadataKey: "checkpoint"] = "\(task.upstreamCheckpointID)"
        await attempt(task, logger: logger)
    }

    private func attempt(_ task: ArchiveTask, logger: Logger) async {
        let destination = path(for: task)
        var url = task.url
        var refreshed = false
        while true {
            do {
                if url == nil {
                    url = try await refreshURL(task, logger: logger)
                    refreshed = true
                }
                let file = try await downloader.download(from: url ?? "", to: destination, expectedBytes: task.sizeBytes, logger: logger)
                let recorded = try await store.completeArchive(id: task.id, epoch: task.leaseEpoch, owner: configuration.owner, path: file.path,
                                                               bytes: file.bytes, sha256: file.sha256)
                if recorded {
                    logger.info("checkpoint archived", metadata: ["path": "\(file.path)", "bytes": "\(file.bytes)", "resumed": "\(file.resumed)"])
                } else {
                    logger.notice("checkpoint archived but the lease was lost; not recorded", metadata: ["path": "\(file.path)"])
                }
                return
            } catch let error as CheckpointDownloadError {
                if Task.isCancelled { return }
                if case .urlRejected = error, !refreshed {
                    logger.info("download URL refused; reading the job from dreamlook for a fresh one", metadata: ["error": "\(error)"])
                    url = nil
                    continue
                }
                await recordFailure(task, message: error.description, logger: logger)
                return
            } catch {
                if Task.isCancelled { return }
                await recordFailure(task, message: "\(error)", logger: logger)
                return
            }
        }
    }

    /// Reads the training job from dreamlook again: its job object carries freshly signed checkpoint URLs.
    func refreshURL(_ task: ArchiveTask, logger: Logger) async throws -> String {
        guard let upstreamJobID = task.upstreamJobID else { throw ArchiverError.noUpstreamJob }
        let job = try await dreamlook.job(jobType: task.jobType, id: upstreamJobID, logger: logger)
        guard let url = job.checkpoints.first(where: { $0.upstreamCheckpointID == task.upstreamCheckpointID })?.url else {
            throw ArchiverError.checkpointNotInJob(upstreamJobID)
        }
        try await store.updateURL(id: task.id, url: url)
        return url
    }

    private func recordFailure(_ task: ArchiveTask, message: String, logger: Logger) async {
        let delay = configuration.retryBackoff.delay(afterAttempt: task.attempts)
        let retryAt = Date().addingTimeInterval(delay.seconds)
        let giveUp = retryAt >= task.expiresAt
        if giveUp {
            logger.error("checkpoint archive failed and the checkpoint expires before a retry",
                         metadata: ["error": "\(message)", "expires_at": "\(DreamdJSON.formatDate(task.expiresAt))"])
        } else {
            logger.warning("checkpoint archive failed; will retry", metadata: ["error": "\(message)", "attempt": "\(task.attempts)",
                                                                             "retry_in": "\(DurationParser.format(delay))"])
        }
        do {
            try await store.failArchive(id: task.id, epoch: task.leaseEpoch, owner: configuration.owner, error: message, retryAt: retryAt, final: false)
        } catch {
            logger.warning("could not record the failed archive; its lease will run out", metadata: ["error": "\(String(reflecting: error))"])
        }
    }

    /// Deletes archived files older than `retention` and clears their `archived_path`.
    func applyRetention(_ retention: Duration) async {
        do {
            for (id, path) in try await store.archivesOlderThan(retention) {
                _ = try? await FileSystem.shared.removeItem(at: FilePath(path), strategy: .platformDefault, recursively: false)
                try await store.forgetArchive(id: id, path: path)
                logger.info("deleted archived checkpoint past archive retention", metadata: ["path": "\(path)"])
            }
        } catch {
            logger.warning("archive retention failed", metadata: ["error": "\(String(reflecting: error))"])
        }
    }
}

/// Archiver failures that are not download errors.
public enum ArchiverError: Error, CustomStringConvertible, Sendable {
    case noUpstreamJob
    case checkpointNotInJob(String)

    public var description: String {
        switch self {
        case .noUpstreamJob: "the training job has no upstream job id to refresh the download URL from"
        case .checkpointNotInJob(let job): "dreamlook job \(job) no longer lists this checkpoint"
        }
    }
}
