import AsyncHTTPClient
import BenchSupport
import DreamdCore
import DreamdServices
import DreamdStore
import Foundation
import Hummingbird
import Logging
import NIOCore
import PostgresNIO
import ServiceLifecycle

/// Measures webhook delivery through the daemon's own path (outbox trigger → fan-out → claim →
/// sign → HTTP POST → record) to a local receiver:
///
/// 1. burst: N events committed in one statement, drained by the delivery worker: deliveries/s;
/// 2. paced: events committed one per transaction at a steady rate: p50/p99/max latency from the
///    event's commit (`events.created_at`) to its receipt by the receiver.
///
/// Usage: WebhookBench <database-url> [events=5000] [subscriptions=1] [concurrency=32] [per-subscription=32]
///        [paced-rate=200] [paced-seconds=10]
@main
struct WebhookBench {
    static func main() async throws {
        let arguments = CommandLine.arguments
        guard arguments.count >= 2 else {
            FileHandle.standardError.write(Data("usage: WebhookBench DATABASE_URL [events=5000] [subscriptions=1] [concurrency=32] [per-subscription=32] [paced-rate=200] [paced-seconds=10]\n".utf8))
            exit(2)
        }
        func argument(_ index: Int, _ fallback: Int) -> Int { arguments.count > index ? Int(arguments[index]) ?? fallback : fallback }
        let url = try DatabaseURL(arguments[1])
        let events = argument(2, 5000)
        let subscriptionCount = argument(3, 1)
        let concurrency = argument(4, 32)
        let perSubscription = argument(5, 32)
        let pacedRate = argument(6, 200)
        let pacedSeconds = argument(7, 10)

        var logger = Logger(label: "bench")
        logger.logLevel = .error
        let client = PostgresClient(configuration: try url.clientConfiguration(maximumConnections: 40), backgroundLogger: logger)
        let receiver = WebhookReceiver.byWebhookID()
        let (ready, readyContinuation) = AsyncStream<Int>.makeStream()
        let httpClient = HTTPClient(eventLoopGroupProvider: .singleton, configuration: WebhookSender.clientConfiguration(timeout: .seconds(15), connectionsPerHost: concurrency))

        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { await client.run() }
            let receiverGroup = ServiceGroup(services: [receiver.application(logger: logger) { readyContinuation.yield($0) }], logger: logger)
            tasks.addTask { try await receiverGroup.run() }
            var readyIterator = ready.makeAsyncIterator()
            let port = await readyIterator.next() ?? 0

            try await client.query("TRUNCATE delivery_attempts, deliveries, subscriptions, events CASCADE", logger: logger)
            let subscriptions = SubscriptionStore(client: client, logger: logger)
            for index in 0..<subscriptionCount {
                _ = try await subscriptions.create(.init(url: "http://127.0.0.1:\(port)/hooks/\(index)", eventTypes: ["job.*"]))
            }
            let store = DeliveryStore(client: client, logger: logger)
            let configuration = WebhookConfiguration(
                retrySchedule: try RetrySchedule.parse("1s,5s"), destinationPolicy: DestinationPolicy(allowPrivate: true),
                attemptTimeout: .seconds(15), concurrency: concurrency, perSubscription: perSubscription, batchSize: 32,
                idlePollInterval: .milliseconds(200), maintenanceInterval: .seconds(5), owner: "bench"
            )
            let wake = WakeSignal()
            let worker = DeliveryWorker(
                store: store,
                sender: WebhookSender(httpClient: httpClient, policy: configuration.destinationPolicy, timeout: configuration.attemptTimeout),
                configuration: configuration, wake: wake, logger: logger)
            let listener = JobNotificationListener(client: client, channels: [JobNotificationListener.deliveriesChannel: wake], logger: logger)
            let workers = ServiceGroup(services: [listener, worker], logger: logger)
            tasks.addTask { try await workers.run() }
            try await Task.sleep(for: .milliseconds(300))

            let payload = Self.payload()
            let deliveries = events * subscriptionCount

            // 1. Burst.
            let burstStart = ContinuousClock.now
            try await client.query("""
                INSERT INTO events (id, type, payload)
                SELECT gen_random_uuid(), 'job.succeeded', \(payload)::jsonb FROM generate_series(1, \(events))
                """, logger: logger)
            let committed = ContinuousClock.now
            while receiver.count < deliveries { try await Task.sleep(for: .milliseconds(5)) }
            let received = ContinuousClock.now
            while try await Self.count(client, "SELECT count(*)::int FROM deliveries WHERE state <> 'succeeded'", logger) > 0 {
                try await Task.sleep(for: .milliseconds(10))
            }
            let recorded = ContinuousClock.now
            let burstLatencies = try await Self.latencies(client, receiver: receiver, logger: logger)
            let receiveSeconds = (received - committed).seconds
            let recordSeconds = (recorded - committed).seconds
            print(String(format: "burst: %d events x %d subscription(s) = %d deliveries, committed in %.2f s (one INSERT, fan-out by trigger)",
                         events, subscriptionCount, deliveries, (committed - burstStart).seconds))
            print(String(format: "burst: all received in %.2f s = %.0f deliveries/s; all recorded succeeded in %.2f s = %.0f deliveries/s",
                         receiveSeconds, Double(deliveries) / receiveSeconds, recordSeconds, Double(deliveries) / recordSeconds))
            print(String(format: "burst: commit -> receipt p50 %.0f ms, p99 %.0f ms (includes waiting behind the backlog)",
                         burstLatencies.percentile(0.5) * 1000, burstLatencies.percentile(0.99) * 1000))

            // 2. Paced: one event per transaction at a steady rate.
            receiver.reset()
            try await client.query("TRUNCATE delivery_attempts, deliveries, events CASCADE", logger: logger)
            let total = pacedRate * pacedSeconds
            let interval = Duration.seconds(1) / pacedRate
            let start = ContinuousClock.now
            for index in 0..<total {
                let due = start + interval * index
                if due > ContinuousClock.now { try await Task.sleep(until: due) }
                try await client.query("INSERT INTO events (id, type, payload) VALUES (gen_random_uuid(), 'job.succeeded', \(payload)::jsonb)",
                                       logger: logger)
            }
            let pacedExpected = total * subscriptionCount
            let deadline = ContinuousClock.now + .seconds(60)
            while receiver.count < pacedExpected, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
            let paced = try await Self.latencies(client, receiver: receiver, logger: logger)
            print(String(format: "paced: %d events/s for %d s (%d deliveries, one transaction per event): commit -> receipt p50 %.1f ms, p99 %.1f ms, max %.1f ms",
                         pacedRate, pacedSeconds, pacedExpected, paced.percentile(0.5) * 1000, paced.percentile(0.99) * 1000,
                         (paced.last ?? 0) * 1000))
            // Deliveries recorded as succeeded (not receipts): the attempt row and the delivery's state committed.
            print(String(format: "DELIVERIES_PER_SECOND=%.0f", Double(deliveries) / recordSeconds))
            print(String(format: "PEAK_RSS_MB=%.1f", ProcessMemory.peakResidentMegabytes()))
            print(String(format: "PACED_P50_MS=%.1f", paced.percentile(0.5) * 1000))
            print(String(format: "PACED_P99_MS=%.1f", paced.percentile(0.99) * 1000))

            await workers.triggerGracefulShutdown()
            await receiverGroup.triggerGracefulShutdown()
            try await httpClient.shutdown()
            tasks.cancelAll()
        }
    }

    /// A payload of the size of a real `job.succeeded` event (about 1 KB).
    static func payload() -> String {
        let job: JSONValue = [
            "id": .string(UUID().uuidString.lowercased()), "kind": "image_gen", "state": "succeeded", "attempt": 1, "max_attempts": 5,
            "params": ["prompt": "a watercolor fox in a snowy forest, soft light", "num_samples": 2, "width": 512, "height": 512,
                       "base_model": "stable-diffusion-v1-5"],
            "result": ["image_gen_results": [["generated_images": [
                ["url": .string("https://cdn.example/" + String(repeating: "a", count: 120))],
                ["url": .string("https://cdn.example/" + String(repeating: "b", count: 120))],
            ]]]],
            "priority": 0, "cost_usd": 0.02, "metadata": [:], "error": .null, "schedule_id": .null,
            "created_at": "2026-01-01T00:00:00.000000Z", "updated_at": "2026-01-01T00:00:05.000000Z",
            "finished_at": "2026-01-01T00:00:05.000000Z", "run_at": "2026-01-01T00:00:00.000000Z",
            "upstream": ["provider": "dreamlook", "job_id": "ig_0123456789", "state": "success"],
        ]
        let event: JSONValue = ["type": "job.succeeded", "timestamp": "2026-01-01T00:00:05.000000Z", "data": job]
        return (try? DreamdJSON.string(event)) ?? "{}"
    }

    static func count(_ client: PostgresClient, _ sql: String, _ logger: Logger) async throws -> Int {
        for try await value in try await client.query(PostgresQuery(unsafeSQL: sql), logger: logger).decode(Int.self) { return value }
        return 0
    }

    /// Seconds from each event's commit to the first receipt of it, sorted.
    static func latencies(_ client: PostgresClient, receiver: WebhookReceiver, logger: Logger) async throws -> [Double] {
        let receipts = receiver.firstReceipts()
        var result: [Double] = []
        let rows = try await client.query("SELECT id::text, extract(epoch FROM created_at)::float8 FROM events", logger: logger)
        for try await (id, created) in rows.decode((String, Double).self) {
            if let received = receipts[id] { result.append(received - created) }
        }
        return result.sorted()
    }
}
