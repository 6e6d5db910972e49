import AsyncHTTPClient
import DreamdCore
import DreamdServices
import DreamdSim
import DreamdStore
import Foundation
import Logging
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import ServiceLifecycle
import Synchronization
import Metrics
import Prometheus

/// Runs the simulator on a free loopback port for the duration of `body`.
func withSimulator<T: Sendable>(
    dreamlookKey: String? = "dl-test", queueTime: Duration = .milliseconds(100), runTime: Duration = .milliseconds(200),
    _ body: @Sendable (Simulator) async throws -> T
) async throws -> T {
    var configuration = Simulator.Configuration()
    configuration.port = 0
    configuration.dreamlookAPIKey = dreamlookKey
    configuration.dreamgenAPIKey = "dg-test"
    configuration.queueTime = queueTime
    configuration.runTime = runTime
    let simulator = Simulator(configuration: configuration)
    var logger = Logger(label: "sim")
    logger.logLevel = .critical
    return try await withListeningServices(logger: logger, { [simulator.application(logger: logger, onServerRunning: $0)] }) { _ in
        try await body(simulator)
    }
}

/// A running daemon (API, worker, listener) against a test database and the simulator.
struct RunningDaemon: Sendable {
    let daemon: Daemon
    let baseURL: String
    let token: String

    /// Sends a request to the API with the test key; returns status and parsed JSON.
    func request(_ method: HTTPMethod, _ path: String, body: String? = nil, headers: [(String, String)] = [], token: String? = nil,
                 contentType: String = "application/json") async throws -> (status: Int, json: JSONValue) {
        try await apiRequest(method, baseURL + path, body: body, headers: headers, token: token ?? self.token, contentType: contentType)
    }

    func submit(_ body: String, headers: [(String, String)] = []) async throws -> (status: Int, json: JSONValue) {
        try await request(.POST, "/v1/jobs", body: body, headers: headers)
    }

    func job(_ id: String) async throws -> JSONValue {
        try await request(.GET, "/v1/jobs/\(id)").json
    }

    /// Waits until the job is final and returns it.
    func waitFinal(_ id: String, timeout: Duration = .seconds(60)) async throws -> JSONValue {
        let holder = Mutex<JSONValue>(.null)
        _ = try await eventually(timeout: timeout, interval: .milliseconds(50)) {
            let job = try await self.job(id)
            holder.withLock { $0 = job }
            return JobState(rawValue: job["state"]?.stringValue ?? "")?.isFinal == true
        }
        return holder.withLock { $0 }
    }
}

/// Environment for a daemon under test: fast polls and retries.
func testEnvironment(database: TestDatabase, dreamlookURL: String, overrides: [String: String] = [:]) -> [String: String] {
    var environment = [
        "DATABASE_URL": "postgres://\(database.url.user)@\(database.url.host):\(database.url.port)/\(database.url.database)",
        "DREAMD_LISTEN": "127.0.0.1:0",
        "DREAMLOOK_BASE_URL": dreamlookURL,
        "DREAM_BASE_URL": dreamlookURL,
        "DREAMLOOK_API_KEY": "dl-test",
        "DREAMGEN_BASE_URL": dreamlookURL,
        "DREAMGEN_API_KEY": "dg-test",
        "DREAMD_POLL_INTERVAL": "100ms",
        "DREAMD_POLL_INTERVAL_MAX": "300ms",
        "DREAMD_RETRY_BACKOFF": "50ms",
        "DREAMD_RETRY_BACKOFF_MAX": "200ms",
        "DREAMD_IDLE_POLL": "200ms",
        "DREAMD_LEASE_DURATION": "3s",
        "DREAMD_DB_MAX_CONNECTIONS": "8",
        // The simulators and test servers live on loopback.
        "DREAMD_INPUT_ALLOW_PRIVATE": "true",
    ]
    if let password = database.url.password {
        environment["DATABASE_URL"] = "postgres://\(database.url.user):\(password)@\(database.url.host):\(database.url.port)/\(database.url.database)"
    }
    environment.merge(overrides) { $1 }
    return environment
}

/// Runs a whole daemon for the duration of `body`, with an API key ready.
func withDaemon<T: Sendable>(
    database: TestDatabase, simulator: Simulator, overrides: [String: String] = [:],
    _ body: @Sendable (RunningDaemon) async throws -> T
) async throws -> T {
    let configuration = try DaemonConfiguration(environment: testEnvironment(database: database, dreamlookURL: simulator.baseURL, overrides: overrides))
    let daemon = try Daemon(configuration: configuration, migrations: try TestDatabase.migrations(),
                            metricsRegistry: TestMetrics.registry, logger: database.logger)
    let token = try await database.keys.create(name: "test").token
    return try await withListeningServices(logger: database.logger, { daemon.services(onServerRunning: $0) }) { port in
        try await body(RunningDaemon(daemon: daemon, baseURL: "http://127.0.0.1:\(port)", token: token))
    }
}

/// A valid `image_gen` job body.
func imageGenBody(prompt: String = "a watercolor fox", extra: String = "") -> String {
    #"{"kind": "image_gen", "params": {"prompt": "\#(prompt)", "num_samples": 2, "width": 512, "height": 512, "base_model": "sd-1.5"}\#(extra)}"#
}

/// One Prometheus registry for the test process (swift-metrics can be bootstrapped once per process).
enum TestMetrics {
    static let registry: PrometheusCollectorRegistry = {
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        return registry
    }()
}

/// A plain GET returning the body as text (for non-JSON routes such as /metrics).
struct HTTPClientRequestBuilder {
    var request: HTTPClientRequest

    static func get(_ url: String) -> HTTPClientRequestBuilder {
        HTTPClientRequestBuilder(request: HTTPClientRequest(url: url))
    }

    mutating func text() async throws -> String {
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        return String(buffer: try await response.body.collect(upTo: 16 << 20))
    }
}

/// One HTTP call to a dreamd API with a bearer token (none when empty); returns status and parsed JSON.
func apiRequest(_ method: HTTPMethod, _ url: String, body: String? = nil, headers: [(String, String)] = [], token: String,
                contentType: String = "application/json") async throws -> (status: Int, json: JSONValue) {
    var request = HTTPClientRequest(url: url)
    request.method = method
    if !token.isEmpty { request.headers.add(name: "authorization", value: "Bearer \(token)") }
    for (name, value) in headers { request.headers.add(name: name, value: value) }
    if let body {
        request.headers.add(name: "content-type", value: contentType)
        request.body = .bytes(ByteBuffer(string: body))
    }
    let response = try await HTTPClient.shared.execute(request, timeout: .seconds(120))
    let buffer = try await response.body.collect(upTo: 32 << 20)
    let json = (try? DreamdJSON.decoder().decode(JSONValue.self, from: Data(buffer.readableBytesView))) ?? .null
    return (Int(response.status.code), json)
}
