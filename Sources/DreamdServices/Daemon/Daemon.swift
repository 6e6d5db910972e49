import AsyncHTTPClient
import DreamdAPI
import DreamdCore
import DreamdStore
import DreamdUpstreams
import Foundation
import Hummingbird
import Logging
import PostgresNIO
import ServiceLifecycle

/// Wires the daemon: one `ServiceGroup` with the database client first (it must outlive the
/// services that drain into it), the HTTP client, the LISTEN loop, the worker, and the HTTP API.
public struct Daemon: Sendable {
    public let configuration: DaemonConfiguration
    public let postgres: PostgresClient
    public let httpClient: HTTPClient
    public let jobs: JobStore
    public let keys: APIKeyStore
    public let callbacks: CallbackStore
    public let checkpoints: CheckpointStore
    public let callbackEndpoint: CallbackEndpoint
    /// Paces every dreamlook call of this process; a 429 pauses dreamlook only.
    public let dreamlookGate: UpstreamGate
    /// Dream Engines: its own HTTP client (it follows redirects, as the SDK does), catalog cache and health.
    public let dreamHTTPClient: HTTPClient
    public let dreamCatalog: ModelCatalog
    public let dreamHealth: UpstreamHealth
    public let registry: ExecutorRegistry
    public let wake = WakeSignal()
    public let migrations: MigrationRunner
    let logger: Logger

    public init(configuration: DaemonConfiguration, migrations: MigrationRunner, logger: Logger) throws {
        self.configuration = configuration
        self.migrations = migrations
        self.logger = logger
        postgres = PostgresClient(configuration: try configuration.databaseURL.clientConfiguration(
            maximumConnections: configuration.databaseMaxConnections), backgroundLogger: logger)
        var httpConfiguration = HTTPClient.Configuration()
        httpConfiguration.redirectConfiguration = .disallow
        httpConfiguration.timeout = .init(connect: .seconds(10), read: .seconds(Int64(configuration.upstreamTimeout.seconds)))
        httpClient = HTTPClient(eventLoopGroupProvider: .singleton, configuration: httpConfiguration)
        jobs = JobStore(client: postgres, logger: logger, checkpointRetention: configuration.checkpointRetention)
        keys = APIKeyStore(client: postgres, logger: logger)
        callbacks = CallbackStore(client: postgres, logger: logger)
        checkpoints = CheckpointStore(client: postgres, logger: logger)
        callbackEndpoint = CallbackEndpoint(store: callbacks, baseURL: configuration.publicURL)
        dreamlookGate = UpstreamGate(name: DreamlookClient.provider, ratePerSecond: configuration.dreamlookRequestsPerSecond)
        let dreamlook = DreamlookClient(baseURL: configuration.dreamlookBaseURL, apiKey: configuration.dreamlookAPIKey,
                                        httpClient: httpClient, timeout: configuration.upstreamTimeout, gate: dreamlookGate)
        var dreamHTTP = HTTPClient.Configuration()
        // Dream Engines' hosting answers long calls with a 303 to a polling URL (the SDK follows redirects).
        dreamHTTP.redirectConfiguration = .follow(max: 10, allowCycles: false)
        dreamHTTP.timeout = .init(connect: .seconds(10), read: .seconds(Int64(configuration.dreamTimeout.seconds)))
        dreamHTTPClient = HTTPClient(eventLoopGroupProvider: .singleton, configuration: dreamHTTP)
        let dreamClient = DreamEnginesClient(baseURL: configuration.dreamBaseURL, apiKey: configuration.dreamAPIKey,
                                             httpClient: dreamHTTPClient, rolloutTimeout: configuration.dreamTimeout,
                                             requestTimeout: min(configuration.dreamTimeout, .seconds(10)))
        dreamCatalog = ModelCatalog(client: dreamClient, ttl: configuration.modelsTTL, logger: logger)
        dreamHealth = UpstreamHealth(name: DreamEnginesClient.provider, maxInFlight: configuration.dreamMaxInFlight)
        let dreamEngines = DreamEnginesExecutor(
            client: dreamClient, catalog: dreamCatalog, storage: RolloutStorage(dataDirectory: configuration.dataDirectory),
            health: dreamHealth, pauseCooldown: configuration.dreamPauseCooldown, maxInFlight: configuration.dreamMaxInFlight
        )
        registry = ExecutorRegistry([
            dreamEngines,
            DreamlookExecutor(
                client: dreamlook,
                pollSchedule: PollSchedule(first: configuration.pollInterval, cap: configuration.pollIntervalCap),
                usesCallbacks: configuration.callbacksEnabled,
                callbackPollCap: configuration.callbackPollIntervalCap
            ),
        ])
    }

    /// Whether the database answers and has every migration this binary knows.
    public func readiness() async -> [String: Result<String, HealthRoutes.ReadinessFailure>] {
        do {
            try await migrations.checkCurrent(client: postgres, logger: logger)
            var checks: [String: Result<String, HealthRoutes.ReadinessFailure>] = ["database": .success("reachable"), "migrations": .success("current")]
            // An upstream's state is reported, not judged: a paused upstream leaves the daemon ready.
            for executor in registry.executors {
                guard let status = executor.health?.status else { continue }
                var detail = status.state.rawValue
                if let until = status.pausedUntil { detail += " until \(DreamdJSON.formatDate(until))" }
                if let reason = status.reason { detail += ": \(reason)" }
                checks["upstream.\(status.name)"] = .success(detail)
            }
            return checks
        } catch let error as MigrationError {
            return ["database": .success("reachable"), "migrations": .failure(.init(error.description))]
        } catch {
            return ["database": .failure(.init("unreachable: \(String(describing: error).prefix(200))"))]
        }
    }

    /// The HTTP API application. `onServerRunning` receives the bound port (useful with port 0).
    public func apiApplication(onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }) -> some ApplicationProtocol & Service {
        let router = APIRouter.build(jobs: jobs, keys: keys, callbacks: callbacks, checkpoints: checkpoints,
                                     registry: registry, readiness: { await self.readiness() },
                                     options: .init(catalog: dreamCatalog, bulkMaxBytes: configuration.bulkMaxBytes))
        let callbackEndpoint = self.callbackEndpoint
        let configuration = self.configuration
        return Application(
            router: router,
            configuration: .init(address: .hostname(configuration.listenHost, port: configuration.listenPort), serverName: "dreamd"),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? 0
                if !configuration.publicURLIsExplicit {
                    callbackEndpoint.setBaseURL("http://\(configuration.listenHost):\(port)")
                }
                await onServerRunning(port)
            },
            logger: logger
        )
    }

    /// The worker with this daemon's store, executors and wake signal.
    public func worker() -> JobWorker {
        JobWorker(store: jobs, registry: registry, configuration: configuration.worker, wake: wake,
                  callbacks: configuration.callbacksEnabled ? callbackEndpoint : nil, logger: logger)
    }

    /// Every long-running part, in start order.
    public func services(onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }) -> [any Service] {
        [
            PostgresClientService(client: postgres),
            HTTPClientService(client: httpClient),
            HTTPClientService(client: dreamHTTPClient),
            JobNotificationListener(client: postgres, wake: wake, logger: logger),
            worker(),
            UpstreamMetrics(registry: registry),
            apiApplication(onServerRunning: onServerRunning),
        ]
    }

    /// Refuses to start on a database that is behind or was migrated with other files.
    public static func checkDatabase(configuration: DaemonConfiguration, migrations: MigrationRunner, logger: Logger) async throws {
        let client = PostgresClient(configuration: try configuration.databaseURL.clientConfiguration(maximumConnections: 1), backgroundLogger: logger)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            defer { group.cancelAll() }
            try await migrations.checkCurrent(client: client, logger: logger)
        }
    }

    /// Runs until SIGTERM/SIGINT, then drains gracefully. With `startupCheck`, first refuses a
    /// database whose migrations are not current.
    public func run(startupCheck: Bool = false, onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        if startupCheck { try await Self.checkDatabase(configuration: configuration, migrations: migrations, logger: logger) }
        let group = ServiceGroup(configuration: .init(
            services: services(onServerRunning: onServerRunning).map { .init(service: $0) },
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger
        ))
        try await group.run()
    }
}
