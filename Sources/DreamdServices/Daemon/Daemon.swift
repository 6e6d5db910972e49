import AsyncHTTPClient
import DreamdAPI
import DreamdCore
import DreamdStore
import DreamdUI
import DreamdUpstreams
import Foundation
import Hummingbird
import Logging
import PostgresNIO
import Prometheus
import ServiceLifecycle

/// Wires the daemon: one `ServiceGroup` with the database client first (it must outlive the
/// services that drain into it), the HTTP clients, the LISTEN loop, the job worker, the scheduler, the
/// webhook delivery worker, and the HTTP API.
public struct Daemon: Sendable {
    public let configuration: DaemonConfiguration
    public let postgres: PostgresClient
    public let httpClient: HTTPClient
    public let jobs: JobStore
    public let schedules: ScheduleStore
    public let keys: APIKeyStore
    public let callbacks: CallbackStore
    public let checkpoints: CheckpointStore
    public let callbackEndpoint: CallbackEndpoint
    /// Paces every dreamlook call of this process; a 429 pauses dreamlook only.
    public let dreamlookGate: UpstreamGate
    /// The dreamlook client (the archiver reads jobs again for fresh checkpoint URLs).
    public let dreamlook: DreamlookClient
    /// Dream Engines: its own HTTP client (it follows redirects, as the SDK does), catalog cache and health.
    public let dreamHTTPClient: HTTPClient
    public let dreamCatalog: ModelCatalog
    public let dreamHealth: UpstreamHealth
    public let registry: ExecutorRegistry
    public let wake = WakeSignal()
    /// Webhook delivery: its own HTTP client (no redirects, explicit timeouts), stores and wake-up.
    public let webhookHTTPClient: HTTPClient
    public let subscriptions: SubscriptionStore
    public let deliveries: DeliveryStore
    public let deliveryWake = WakeSignal()
    public let migrations: MigrationRunner
    /// Where `/metrics` reads from; the process bootstraps swift-metrics with it (`serve` does).
    public let metricsRegistry: PrometheusCollectorRegistry?
    let logger: Logger

    public init(configuration: DaemonConfiguration, migrations: MigrationRunner, metricsRegistry: PrometheusCollectorRegistry? = nil, logger: Logger) throws {
        self.configuration = configuration
        self.metricsRegistry = metricsRegistry
        self.migrations = migrations
        self.logger = logger
        postgres = PostgresClient(configuration: try configuration.databaseURL.clientConfiguration(
            maximumConnections: configuration.databaseMaxConnections), backgroundLogger: logger)
        var httpConfiguration = HTTPClient.Configuration()
        httpConfiguration.redirectConfiguration = .disallow
        httpConfiguration.timeout = .init(connect: .seconds(10), read: .seconds(Int64(configuration.upstreamTimeout.seconds)))
        httpClient = HTTPClient(eventLoopGroupProvider: .singleton, configuration: httpConfiguration)
        webhookHTTPClient = HTTPClient(eventLoopGroupProvider: .singleton,
                                       configuration: WebhookSender.clientConfiguration(
                                           timeout: configuration.webhooks.attemptTimeout, connectionsPerHost: configuration.webhooks.concurrency))
        jobs = JobStore(client: postgres, logger: logger, checkpointRetention: configuration.checkpointRetention,
                        archiveAllCheckpoints: configuration.archiveCheckpoints)
        schedules = ScheduleStore(client: postgres, logger: logger)
        subscriptions = SubscriptionStore(client: postgres, logger: logger)
        deliveries = DeliveryStore(client: postgres, logger: logger)
        keys = APIKeyStore(client: postgres, logger: logger)
        callbacks = CallbackStore(client: postgres, logger: logger)
        checkpoints = CheckpointStore(client: postgres, logger: logger, expiryWarning: configuration.checkpointExpiryWarning)
        callbackEndpoint = CallbackEndpoint(store: callbacks, baseURL: configuration.publicURL)
        dreamlookGate = UpstreamGate(name: DreamlookClient.provider, ratePerSecond: configuration.dreamlookRequestsPerSecond)
        dreamlook = DreamlookClient(baseURL: configuration.dreamlookBaseURL, apiKey: configuration.dreamlookAPIKey,
                                        httpClient: httpClient, timeout: configuration.upstreamTimeout, gate: dreamlookGate)
        var dreamHTTP = HTTPClient.Configuration()
        // Dream Engines' hosting answers long calls with a 303 to a polling URL (the SDK follows redirects).
        dreamHTTP.redirectConfiguration = .follow(max: 10, allowCycles: false)
        dreamHTTP.timeout = .init(connect: .seconds(10), read: .seconds(Int64(configuration.dreamTimeout.seconds)))
        dreamHTTPClient = HTTPClient(eventLoopGroupProvider: .singleton, configuration: dreamHTTP)
        let dreamClient = DreamEnginesClient(baseURL: configuration.dreamBaseURL, apiKey: configuration.dreamAPIKey,
                                             httpClient: dreamHTTPClient, rolloutTimeout: configuration.dreamTimeout,
                                             requestTimeout: min(configuration.dreamTimeout, .seconds(10)),
                                             inputFetcher: GuardedFetcher(
                                                 httpClient: httpClient,
                                                 addressGuard: AddressGuard(policy: DestinationPolicy(allowPrivate: configuration.inputAllowPrivate))))
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
                callbackPollCap: configuration.callbackPollIntervalCap,
                authFaultDeadline: configuration.dreamlookAuthDeadline,
                reconcileDeadline: configuration.reconcileDeadline
            ),
            DreamGenExecutor(client: DreamGenClient(
                baseURL: configuration.dreamgenBaseURL, apiKey: configuration.dreamgenAPIKey, httpClient: httpClient,
                timeout: configuration.completionTimeout, idleTimeout: configuration.completionIdleTimeout
            )),
        ])
    }

    /// Whether the database answers and has every migration this binary knows.
    public func readiness() async -> [String: Result<String, HealthRoutes.ReadinessFailure>] {
        do {
            // Bounded twice: the outer deadline covers the wait for a connection (with the database gone the
            // pool makes it wait until its circuit breaker trips), the statement deadline a lost statement.
            let (migrations, postgres, logger) = (self.migrations, self.postgres, self.logger)
            try await StatementDeadline.$current.withValue(.seconds(3)) {
                try await DatabaseAvailability.withDeadline(.seconds(3)) {
                    try await migrations.checkCurrent(client: postgres, logger: logger)
                }
            }
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
    /// The API router with every route this daemon serves.
    public func router() -> Router<APIRequestContext> {
        let rateLimiter = configuration.apiRateLimit > 0
            ? KeyRateLimiter(rate: configuration.apiRateLimit, burst: configuration.apiRateBurst) : nil
        let webhooks = APIRouter.Webhooks(
            subscriptions: subscriptions, deliveries: deliveries,
            settings: WebhookAPISettings(destinationPolicy: configuration.webhooks.destinationPolicy,
                                         secretOverlap: configuration.webhooks.secretOverlap))
        // One allowance of failed authentications per address, shared by bearer keys and dashboard sign-ins.
        let authFailures = AddressRateLimiter(rate: configuration.authFailureRate, burst: configuration.authFailureBurst)
        let router = APIRouter.build(jobs: jobs, schedules: schedules, keys: keys, callbacks: callbacks, checkpoints: checkpoints,
                                     registry: registry, rateLimiter: rateLimiter, readiness: { await self.readiness() },
                                     webhooks: webhooks,
                                     options: .init(catalog: dreamCatalog, bulkMaxBytes: configuration.bulkMaxBytes,
                                                    authFailures: authFailures,
                                                    callbackPolicy: .init(grace: configuration.callbackGrace,
                                                                          maxCallbacks: configuration.callbackMaxPerToken)))
        // The web dashboard at /ui (DreamdUI).
        Dashboard(stores: .init(jobs: jobs, schedules: schedules, checkpoints: checkpoints, keys: keys, deliveries: deliveries,
                                subscriptions: subscriptions, pauses: UpstreamPauseStore(client: postgres, logger: logger), registry: registry),
                  options: .init(secureCookies: configuration.publicURL.lowercased().hasPrefix("https://"),
                                 dataDirectory: configuration.dataDirectory, authFailures: authFailures))
            .register(on: router)
        let registry = metricsRegistry
        router.get("metrics") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                     body: .init(byteBuffer: ByteBuffer(bytes: registry?.emitToBuffer() ?? [])))
        }
        return router
    }

    /// The HTTP API application. `onServerRunning` receives the bound port (useful with port 0).
    public func apiApplication(onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }) -> some ApplicationProtocol & Service {
        let router = router()
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

    /// The scheduler: turns due schedule ticks into jobs (safe to run in every process).
    public func scheduler() -> SchedulerService {
        SchedulerService(store: schedules, registry: registry, configuration: configuration.scheduler, logger: logger)
    }

    /// The webhook delivery worker, sending through `webhookHTTPClient` (or `resolver` instead of the system's).
    public func deliveryWorker(resolver: any HostResolver = SystemHostResolver()) -> DeliveryWorker {
        let webhooks = configuration.webhooks
        let sender = WebhookSender(httpClient: webhookHTTPClient, resolver: resolver, policy: webhooks.destinationPolicy,
                                   timeout: webhooks.attemptTimeout)
        return DeliveryWorker(store: deliveries, sender: sender, configuration: webhooks, wake: deliveryWake, logger: logger)
    }

    /// The service that moves checkpoints to `expiring` and `expired` on time.
    public func retentionSweeper() -> RetentionSweeper {
        RetentionSweeper(store: checkpoints, interval: configuration.retentionSweepInterval, logger: logger)
    }

    /// The service that copies requested checkpoints to `DREAMD_DATA_DIR/checkpoints/` before they expire.
    public func archiver(owner: String? = nil, leaseDuration: Duration? = nil) -> CheckpointArchiver {
        var settings = ArchiverConfiguration(
            directory: configuration.dataDirectory + "/checkpoints", concurrency: max(configuration.archiveConcurrency, 1),
            leaseDuration: leaseDuration ?? configuration.archiveLeaseDuration,
            retryBackoff: BackoffPolicy(base: configuration.archiveRetryBackoff, cap: .seconds(3600)),
            retention: configuration.archiveRetention
        )
        if let owner { settings.owner = owner }
        return CheckpointArchiver(store: checkpoints, dreamlook: dreamlook,
                                  downloader: CheckpointDownloader(httpClient: httpClient), configuration: settings, logger: logger)
    }

    /// Every long-running part, in start order (shut down in reverse).
    public func services(onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }) -> [any Service] {
        var services: [any Service] = [
            PostgresClientService(client: postgres),
            HTTPClientService(client: httpClient),
            HTTPClientService(client: webhookHTTPClient),
            HTTPClientService(client: dreamHTTPClient),
            JobNotificationListener(client: postgres, channels: [
                JobNotificationListener.channel: wake, JobNotificationListener.deliveriesChannel: deliveryWake,
            ], logger: logger),
            worker(),
            scheduler(),
            QueueSampler(client: postgres, kinds: registry.kinds.map(\.rawValue), logger: logger),
            deliveryWorker(),
            retentionSweeper(),
            UpstreamMetrics(registry: registry),
            UpstreamPauseSync(store: UpstreamPauseStore(client: postgres, logger: logger),
                              healths: registry.executors.compactMap(\.health), logger: logger),
        ]
        if configuration.archiveConcurrency > 0 { services.append(archiver()) }
        services.append(apiApplication(onServerRunning: onServerRunning))
        return services.map { StatementDeadlineScope(service: $0, deadline: configuration.statementTimeout) }
    }

    /// Refuses to start on a database that is behind or was migrated with other files.
    public static func checkDatabase(configuration: DaemonConfiguration, migrations: MigrationRunner, logger: Logger) async throws {
        let client = PostgresClient(configuration: try configuration.databaseURL.clientConfiguration(maximumConnections: 1), backgroundLogger: logger)
        try await PostgresClient.withRunning(client) { client in
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
