import DreamdCore
import DreamdServices
import DreamdStore
import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle

/// Drains N no-op jobs through the daemon's own claim → execute → record path and prints jobs/s.
///
/// Usage: QueueBench <database-url> [jobs] [workers] [concurrency] [batch]
@main
struct QueueBench {
    static func main() async throws {
        let arguments = CommandLine.arguments
        guard arguments.count >= 2 else {
            FileHandle.standardError.write(Data("usage: QueueBench DATABASE_URL [jobs=20000] [workers=2] [concurrency=32] [batch=32]\n".utf8))
            exit(2)
        }
        let url = try DatabaseURL(arguments[1])
        let jobCount = arguments.count > 2 ? Int(arguments[2]) ?? 20_000 : 20_000
        let workerCount = arguments.count > 3 ? Int(arguments[3]) ?? 2 : 2
        let concurrency = arguments.count > 4 ? Int(arguments[4]) ?? 32 : 32
        let batch = arguments.count > 5 ? Int(arguments[5]) ?? 32 : 32
        var logger = Logger(label: "bench")
        logger.logLevel = .error
        let client = PostgresClient(configuration: try url.clientConfiguration(maximumConnections: 40), backgroundLogger: logger)
        let store = JobStore(client: client, logger: logger)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { await client.run() }
            try await client.query("TRUNCATE job_events, events, jobs CASCADE", logger: logger)
            let insertStart = ContinuousClock.now
            try await client.query("""
                INSERT INTO jobs (id, kind, state, params)
                SELECT gen_random_uuid(), 'noop', 'queued', '{}'::jsonb FROM generate_series(1, \(jobCount))
                """, logger: logger)
            let insertSeconds = (ContinuousClock.now - insertStart).seconds
            let registry = ExecutorRegistry([NoopExecutor()])
            let workers = (1...workerCount).map { index in
                JobWorker(store: store, registry: registry, configuration: WorkerConfiguration(
                    concurrency: concurrency, batchSize: batch, idlePollInterval: .milliseconds(50),
                    maintenanceInterval: .seconds(5), owner: "bench-\(index)"
                ), logger: logger)
            }
            let group = ServiceGroup(services: workers, logger: logger)
            let start = ContinuousClock.now
            tasks.addTask { try await group.run() }
            while true {
                var remaining = 0
                for try await count in try await client.query("SELECT count(*)::int FROM jobs WHERE state <> 'succeeded'", logger: logger)
                    .decode(Int.self) { remaining = count }
                if remaining == 0 { break }
                try await Task.sleep(for: .milliseconds(20))
            }
            let seconds = (ContinuousClock.now - start).seconds
            await group.triggerGracefulShutdown()
            print(String(format: "queue: inserted %d jobs in %.2f s (%.0f rows/s, one INSERT)", jobCount, insertSeconds, Double(jobCount) / insertSeconds))
            print(String(format: "queue: drained %d jobs in %.2f s with %d workers x %d concurrency, batch %d: %.0f jobs/s",
                         jobCount, seconds, workerCount, concurrency, batch, Double(jobCount) / seconds))
            print(String(format: "JOBS_PER_SECOND=%.0f", Double(jobCount) / seconds))
            tasks.cancelAll()
        }
    }
}

/// Does nothing and succeeds: measures the queue, not an upstream.
struct NoopExecutor: JobExecutor {
    var kinds: [JobKind] { ["noop"] }
    var provider: String { "bench" }
    func validate(kind: JobKind, params: JSONValue) throws(ValidationError) {}
    func submit(_ claimed: ClaimedJob, logger: Logger) async -> StepOutcome {
        .succeeded(result: [:], costUSD: nil, upstreamState: nil)
    }
    func poll(_ claimed: ClaimedJob, logger: Logger) async -> StepOutcome {
        .failed(JobError(code: "noop", message: "never polled"), upstreamState: nil)
    }
}
