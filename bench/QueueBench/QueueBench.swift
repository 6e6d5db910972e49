import BenchSupport
import DreamdCore
import DreamdServices
import DreamdStore
import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle
import Synchronization

/// Drains no-op jobs through the daemon's own claim → execute → record path and prints jobs/s and the
/// process's peak RSS.
///
/// Usage: QueueBench <database-url> [jobs=200000] [workers=2] [concurrency=512] [batch=256] [subscriptions=0] [mode=drain]
///
/// - `subscriptions`: webhook subscriptions to `job.*` created first, so every finished job's outbox event
///   is fanned out to that many deliveries in the same statement (not delivered: no delivery worker runs).
/// - `mode=drain`: every job succeeds at its submission; the clock stops when none is left unfinished.
/// - `mode=inflight`: every job's submission is accepted "upstream" and the job stays `running` with its
///   next poll an hour away; reports the peak RSS once all of them are in flight.
@main
struct QueueBench {
    static func main() async throws {
        let arguments = CommandLine.arguments
        guard arguments.count >= 2 else {
            FileHandle.standardError.write(Data("usage: QueueBench DATABASE_URL [jobs=200000] [workers=2] [concurrency=512] [batch=256] [subscriptions=0] [mode=drain|inflight]\n".utf8))
            exit(2)
        }
        func argument(_ index: Int, _ fallback: Int) -> Int { arguments.count > index ? Int(arguments[index]) ?? fallback : fallback }
        let url = try DatabaseURL(arguments[1])
        let jobCount = argument(2, 200_000)
        let workerCount = argument(3, 2)
        let concurrency = argument(4, 512)
        let batch = argument(5, 256)
        let subscriptions = argument(6, 0)
        let inflight = arguments.count > 7 && arguments[7] == "inflight"
        var logger = Logger(label: "bench")
        logger.logLevel = .error
        let client = PostgresClient(configuration: try url.clientConfiguration(maximumConnections: 40), backgroundLogger: logger)
        let store = JobStore(client: client, logger: logger)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { await client.run() }
            try await client.query("TRUNCATE job_events, events, jobs, deliveries, subscriptions CASCADE", logger: logger)
            for index in 0..<subscriptions {
                try await client.query("""
                    INSERT INTO subscriptions (id, url, event_types, secret)
                    VALUES (gen_random_uuid(), \("http://127.0.0.1:9/hooks/\(index)"), ARRAY['job.*'], 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw')
                    """, logger: logger)
            }
            let insertStart = ContinuousClock.now
            var inserted = 0
            while inserted < jobCount {
                let chunk = min(50_000, jobCount - inserted)
                try await client.query("""
                    INSERT INTO jobs (id, kind, state, params)
                    SELECT gen_random_uuid(), 'noop', 'queued', '{}'::jsonb FROM generate_series(1, \(chunk))
                    """, logger: logger)
                inserted += chunk
            }
            let insertSeconds = (ContinuousClock.now - insertStart).seconds
            try await client.query("VACUUM ANALYZE jobs", logger: logger)
            let executor = NoopExecutor(inflight: inflight)
            let registry = ExecutorRegistry([executor])
            let workers = (1...workerCount).map { index in
                JobWorker(store: store, registry: registry, configuration: WorkerConfiguration(
                    concurrency: concurrency, batchSize: batch, idlePollInterval: .milliseconds(50),
                    maintenanceInterval: .seconds(5), owner: "bench-\(index)"
                ), logger: logger)
            }
            let group = ServiceGroup(services: workers, logger: logger)
            let start = ContinuousClock.now
            tasks.addTask { try await group.run() }
            // Steps are counted in process; the database is asked only for the tail, so the bench's own
            // queries do not compete with the queue's.
            while executor.steps < jobCount { try await Task.sleep(for: .milliseconds(10)) }
            let unfinished = inflight
                ? "SELECT count(*)::int FROM jobs WHERE state <> 'running' OR lease_owner IS NOT NULL"
                : "SELECT count(*)::int FROM jobs WHERE state IN ('queued', 'submitting')"
            while true {
                var remaining = 0
                for try await count in try await client.query(PostgresQuery(unsafeSQL: unfinished), logger: logger).decode(Int.self) {
                    remaining = count
                }
                if remaining == 0 { break }
                try await Task.sleep(for: .milliseconds(5))
            }
            let seconds = (ContinuousClock.now - start).seconds
            let rssMB = ProcessMemory.peakResidentMegabytes()
            await group.triggerGracefulShutdown()
            var deliveries = 0
            for try await count in try await client.query("SELECT count(*)::int FROM deliveries", logger: logger).decode(Int.self) {
                deliveries = count
            }
            print(String(format: "queue: inserted %d jobs in %.2f s (%.0f rows/s, INSERT ... SELECT of 50,000 rows)", jobCount, insertSeconds,
                         Double(jobCount) / insertSeconds))
            if inflight {
                print(String(format: "queue: %d jobs submitted and in flight upstream after %.2f s (%.0f jobs/s); peak RSS %.1f MB",
                             jobCount, seconds, Double(jobCount) / seconds, rssMB))
            } else {
                print(String(format: "queue: drained %d jobs in %.2f s with %d workers x %d concurrency, batch %d, %d subscription(s) (%d deliveries): %.0f jobs/s; peak RSS %.1f MB",
                             jobCount, seconds, workerCount, concurrency, batch, subscriptions, deliveries, Double(jobCount) / seconds, rssMB))
            }
            print(String(format: "JOBS_PER_SECOND=%.0f", Double(jobCount) / seconds))
            print(String(format: "PEAK_RSS_MB=%.1f", rssMB))
            tasks.cancelAll()
        }
    }
}

/// Does nothing and succeeds (or, `inflight`, is "accepted upstream" and polled an hour later): measures
/// the queue, not an upstream.
final class NoopExecutor: JobExecutor {
    let inflight: Bool
    private let count = Atomic<Int>(0)

    init(inflight: Bool) { self.inflight = inflight }

    var kinds: [JobKind] { ["noop"] }
    var provider: String { "bench" }
    /// Steps run so far.
    var steps: Int { count.load(ordering: .relaxed) }

    func validate(kind: JobKind, params: JSONValue) throws(ValidationError) {}

    func submit(_ claimed: ClaimedJob, logger: Logger) async -> StepOutcome {
        count.add(1, ordering: .relaxed)
        if inflight {
            return .running(upstreamJobID: "sim-\(claimed.job.id)", upstreamState: "queued",
                            nextCheck: Date().addingTimeInterval(3600), detail: nil)
        }
        return .succeeded(result: [:], costUSD: nil, upstreamState: nil)
    }

    func poll(_ claimed: ClaimedJob, logger: Logger) async -> StepOutcome {
        .failed(JobError(code: "noop", message: "never polled"), upstreamState: nil)
    }
}
