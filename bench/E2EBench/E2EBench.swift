import AsyncHTTPClient
import BenchSupport
import DreamdCore
import Foundation
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle

/// Measures jobs end to end through running `dreamd serve` processes (bench/e2e.sh starts them, the
/// database and `dreamd sim`): submit over REST → dreamlook (the simulator) → its callback → a poll
/// confirms → `job.succeeded` webhook at this process's local subscriber.
///
/// 1. throughput: `--jobs` image_gen jobs in bulk (`POST /v1/jobs/bulk`, 500 rows a request, spread
///    over the daemons), jobs/s from the first submission to the last job's webhook;
/// 2. latency: `--rate` jobs/s for `--seconds`, one `POST /v1/jobs` each, p50/p99/max from the job
///    finishing upstream (the simulator's `GET /sim/dreamlook/finished`) to its webhook arriving.
///
/// Usage: E2EBench --token KEY --simulator URL [--jobs 5000] [--rate 100] [--seconds 10] DAEMON_URL...
@main
struct E2EBench {
    struct Options {
        var token = ""
        var simulator = ""
        var jobs = 5000
        var rate = 100
        var seconds = 10
        var daemons: [String] = []

        init(_ arguments: [String]) throws {
            var rest = arguments.dropFirst()[...]
            while let argument = rest.popFirst() {
                func value() throws -> String {
                    guard let next = rest.popFirst() else { throw BenchError("\(argument) needs a value") }
                    return next
                }
                switch argument {
                case "--token": token = try value()
                case "--simulator": simulator = try value()
                case "--jobs": jobs = Int(try value()) ?? jobs
                case "--rate": rate = Int(try value()) ?? rate
                case "--seconds": seconds = Int(try value()) ?? seconds
                default: daemons.append(argument)
                }
            }
            guard !token.isEmpty, !simulator.isEmpty, !daemons.isEmpty else {
                throw BenchError("usage: E2EBench --token KEY --simulator URL [--jobs N] [--rate R] [--seconds S] DAEMON_URL...")
            }
        }
    }

    struct BenchError: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    static func main() async throws {
        let options: Options
        do { options = try Options(CommandLine.arguments) } catch {
            FileHandle.standardError.write(Data("\(error)\n".utf8))
            exit(2)
        }
        var logger = Logger(label: "e2e")
        logger.logLevel = .error
        let receiver = WebhookReceiver { _, body in Self.finalJobID(body) }
        let (ready, readyContinuation) = AsyncStream<Int>.makeStream()
        let api = APIClient(token: options.token, daemons: options.daemons)

        try await withThrowingTaskGroup(of: Void.self) { tasks in
            let receiverGroup = ServiceGroup(services: [receiver.application(logger: logger) { readyContinuation.yield($0) }], logger: logger)
            tasks.addTask { try await receiverGroup.run() }
            var readyIterator = ready.makeAsyncIterator()
            let port = await readyIterator.next() ?? 0
            try await api.subscribe(url: "http://127.0.0.1:\(port)/hooks/e2e")

            // 1. Throughput: everything at once, in bulk.
            let start = ContinuousClock.now
            try await api.submitInBulk(count: options.jobs, rowsPerRequest: 500)
            let accepted = ContinuousClock.now
            try await Self.waitFor(receiver, count: options.jobs, timeout: .seconds(600))
            let drained = ContinuousClock.now
            let seconds = (drained - start).seconds
            print(String(format: "throughput: %d jobs submitted in bulk over %d daemon(s), accepted in %.2f s; last webhook after %.2f s = %.0f jobs/s end to end",
                         options.jobs, options.daemons.count, (accepted - start).seconds, seconds, Double(options.jobs) / seconds))

            // 2. Latency at a steady rate, one job per request.
            receiver.reset()
            let total = options.rate * options.seconds
            let interval = Duration.seconds(1) / options.rate
            let pacedStart = ContinuousClock.now
            let ids = try await withThrowingTaskGroup(of: String.self) { submissions in
                for index in 0..<total {
                    let due = pacedStart + interval * index
                    if due > ContinuousClock.now { try await Task.sleep(until: due) }
                    submissions.addTask { try await api.submitOne(index: index) }
                }
                var ids: [String] = []
                for try await id in submissions { ids.append(id) }
                return ids
            }
            try await Self.waitFor(receiver, count: total, timeout: .seconds(120))
            let finished = try await api.finishTimes(simulator: options.simulator)
            let receipts = receiver.firstReceipts()
            let measured = ids.compactMap { id -> (id: String, latency: Double)? in
                guard let received = receipts[id], let ended = finished[id] else { return nil }
                return (id, received - ended)
            }.sorted { $0.latency < $1.latency }
            let latencies = measured.map(\.latency)
            print(String(format: "latency: %d jobs/s for %d s, %d jobs; upstream finished -> webhook received: p50 %.1f ms, p99 %.1f ms, max %.1f ms (%d measured)",
                         options.rate, options.seconds, total, latencies.percentile(0.5) * 1000, latencies.percentile(0.99) * 1000,
                         (latencies.last ?? .nan) * 1000, latencies.count))
            print(String(format: "JOBS_PER_SECOND=%.0f", Double(options.jobs) / seconds))
            print(String(format: "P99_MS=%.1f", latencies.percentile(0.99) * 1000))
            // The slowest 1 %, with the simulator's finish time of each (epoch seconds): e2e.sh prints their timelines.
            print("SLOWEST=" + measured.suffix(max(1, measured.count / 100)).reversed()
                .map { "\($0.id)@\(String(format: "%.3f", finished[$0.id] ?? 0))" }.joined(separator: ","))
            await receiverGroup.triggerGracefulShutdown()
            tasks.cancelAll()
        }
    }

    /// The job id of a `job.succeeded` or `job.failed` webhook's body.
    static func finalJobID(_ body: ByteBuffer) -> String? {
        struct Event: Decodable {
            struct Data: Decodable { let id: String }
            let type: String
            let data: Data
        }
        guard let event = try? JSONDecoder().decode(Event.self, from: Foundation.Data(body.readableBytesView)),
              event.type == "job.succeeded" || event.type == "job.failed" else { return nil }
        return event.data.id
    }

    static func waitFor(_ receiver: WebhookReceiver, count: Int, timeout: Duration) async throws {
        let deadline = ContinuousClock.now + timeout
        while receiver.distinct < count {
            guard ContinuousClock.now < deadline else {
                throw BenchError("only \(receiver.distinct) of \(count) jobs' final webhooks arrived within \(timeout)")
            }
            try await Task.sleep(for: .milliseconds(2))
        }
    }
}

/// The daemons' REST API and the simulator's finish times, over AsyncHTTPClient.
struct APIClient: Sendable {
    let token: String
    let daemons: [String]

    func jobBody(_ index: Int) -> String {
        #"{"kind":"image_gen","params":{"prompt":"e2e \#(index)","num_samples":1,"width":512,"height":512,"base_model":"sd-1.5"}}"#
    }

    func subscribe(url: String) async throws {
        let body = #"{"url":"\#(url)","event_types":["job.succeeded","job.failed"],"description":"e2e bench"}"#
        _ = try await send("POST", daemons[0] + "/v1/subscriptions", body: body, contentType: "application/json", expect: 201)
    }

    /// `count` jobs as JSON lines, `rowsPerRequest` a request, the requests spread over the daemons, four at once.
    func submitInBulk(count: Int, rowsPerRequest: Int) async throws {
        let chunks = stride(from: 0, to: count, by: rowsPerRequest).map { $0..<min($0 + rowsPerRequest, count) }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (number, chunk) in chunks.enumerated() {
                if number >= 4 { try await group.next() }
                let body = chunk.map(jobBody).joined(separator: "\n")
                let daemon = daemons[number % daemons.count]
                group.addTask {
                    _ = try await send("POST", daemon + "/v1/jobs/bulk", body: body, contentType: "application/x-ndjson", expect: 201)
                }
            }
            try await group.waitForAll()
        }
    }

    /// One job, to the daemons in turn; returns its id.
    func submitOne(index: Int) async throws -> String {
        struct Created: Decodable { let id: String }
        let data = try await send("POST", daemons[index % daemons.count] + "/v1/jobs", body: jobBody(index),
                                  contentType: "application/json", expect: 201)
        return try JSONDecoder().decode(Created.self, from: data).id
    }

    func finishTimes(simulator: String) async throws -> [String: Double] {
        struct Finished: Decodable { let finished: [String: Double] }
        let data = try await send("GET", simulator + "/sim/dreamlook/finished", body: nil, contentType: nil, expect: 200)
        return try JSONDecoder().decode(Finished.self, from: data).finished
    }

    private func send(_ method: String, _ url: String, body: String?, contentType: String?, expect: Int) async throws -> Data {
        var request = HTTPClientRequest(url: url)
        request.method = .init(rawValue: method)
        request.headers.add(name: "authorization", value: "Bearer \(token)")
        if let contentType { request.headers.add(name: "content-type", value: contentType) }
        if let body { request.body = .bytes(ByteBuffer(string: body)) }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(60))
        let bytes = try await response.body.collect(upTo: 64 << 20)
        guard Int(response.status.code) == expect else {
            throw E2EBench.BenchError("\(method) \(url): \(response.status.code) \(String(buffer: bytes).prefix(300))")
        }
        return Data(bytes.readableBytesView)
    }
}
