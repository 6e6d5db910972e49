import DreamdStore
import Logging
import Metrics
import PostgresNIO
import ServiceLifecycle

/// Samples the queue every `interval` into gauges: `dreamd_jobs{kind,state}` for every unfinished state,
/// and `dreamd_queue_oldest_age_seconds{kind}` (how long the oldest due job has waited). Every enabled
/// kind has its series from the first sample on, at 0 while it has no such jobs, so dashboards and
/// alerts see an idle queue rather than no data.
public struct QueueSampler: Service {
    static let unfinishedStates = ["scheduled", "queued", "submitting", "running"]

    let client: PostgresClient
    let kinds: [String]
    let interval: Duration
    let logger: Logger

    public init(client: PostgresClient, kinds: [String] = [], interval: Duration = .seconds(5), logger: Logger) {
        self.client = client
        self.kinds = kinds
        self.interval = interval
        self.logger = logger
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            var seen = Set(kinds.flatMap { kind in Self.unfinishedStates.map { [kind, $0] } })
            while !Task.isCancelled {
                do {
                    var current: Set<[String]> = []
                    let rows = try await client.rows("""
                        SELECT kind, state, count(*)::int8,
                               COALESCE(extract(epoch FROM now() - min(run_at) FILTER (WHERE state = 'queued')), 0)::float8
                        FROM jobs WHERE state IN ('scheduled', 'queued', 'submitting', 'running')
                        GROUP BY kind, state
                        """, logger: logger)
                    var oldest: [String: Double] = [:]
                    for (kind, state, count, age) in try rows.decode((String, String, Int64, Double).self) {
                        Gauge(label: "dreamd_jobs", dimensions: [("kind", kind), ("state", state)]).record(count)
                        current.insert([kind, state])
                        oldest[kind] = max(oldest[kind] ?? 0, age)
                    }
                    for key in seen.subtracting(current) {
                        Gauge(label: "dreamd_jobs", dimensions: [("kind", key[0]), ("state", key[1])]).record(0)
                    }
                    for kind in Set(seen.map { $0[0] }).union(oldest.keys) {
                        Gauge(label: "dreamd_queue_oldest_age_seconds", dimensions: [("kind", kind)]).record(oldest[kind] ?? 0)
                    }
                    seen = current.union(seen)
                } catch {
                    // A query cut short by shutdown is not worth a warning.
                    if !Task.isCancelled {
                        logger.warning("queue sample failed", metadata: ["error": "\(String(reflecting: error))"])
                    }
                }
                try? await Task.sleep(for: interval)
            }
        }
    }
}
