import DreamdCore
import DreamdStore
import Hummingbird
import Logging

/// Builds the HTTP API's router: health routes without a key, `/v1` behind bearer keys, errors in
/// the contract's JSON shape everywhere.
public enum APIRouter {
    /// The stores and settings of the webhook routes (`/v1/subscriptions`, `/v1/deliveries`).
    public struct Webhooks: Sendable {
        public var subscriptions: SubscriptionStore
        public var deliveries: DeliveryStore
        public var settings: WebhookAPISettings

        public init(subscriptions: SubscriptionStore, deliveries: DeliveryStore, settings: WebhookAPISettings) {
            self.subscriptions = subscriptions
            self.deliveries = deliveries
            self.settings = settings
        }
    }

    /// Settings of the optional parts of the API.
    public struct Options: Sendable {
        /// The Dream Engines catalog behind `/v1/models`; `nil` when Dream Engines is not enabled.
        public var catalog: (any ModelCatalogSource)?
        /// Largest body of `POST /v1/jobs/bulk` (`DREAMD_BULK_MAX_BYTES`).
        public var bulkMaxBytes: Int
        /// Failed authentications (bad keys, unknown callback tokens) per client address; `nil`: unlimited.
        public var authFailures: AddressRateLimiter?
        /// How long callback tokens outlive their job, and how many callbacks each may store.
        public var callbackPolicy: CallbackStore.TokenPolicy

        public init(catalog: (any ModelCatalogSource)? = nil, bulkMaxBytes: Int = 64 << 20,
                    authFailures: AddressRateLimiter? = nil, callbackPolicy: CallbackStore.TokenPolicy = .init()) {
            self.catalog = catalog
            self.bulkMaxBytes = bulkMaxBytes
            self.authFailures = authFailures
            self.callbackPolicy = callbackPolicy
        }
    }

    public static func build(
        jobs: JobStore, schedules: ScheduleStore, keys: APIKeyStore, callbacks: CallbackStore, checkpoints: CheckpointStore,
        registry: ExecutorRegistry, rateLimiter: KeyRateLimiter? = nil, readiness: @escaping HealthRoutes.ReadinessProbe,
        webhooks: Webhooks? = nil,
        options: Options = Options()
    ) -> Router<APIRequestContext> {
        let router = Router(context: APIRequestContext.self)
        router.add(middleware: ErrorMiddleware())
        router.add(middleware: RefuseNULMiddleware())
        router.add(middleware: MethodNotAllowedMiddleware(operations: OpenAPIDocument.operations))
        HealthRoutes(probe: readiness).register(on: router)
        router.get("openapi.json") { _, _ in try JSONResponse.make(OpenAPIDocument.json(registry: registry)) }
        CallbacksRoutes(callbacks: callbacks, jobs: jobs, registry: registry, policy: options.callbackPolicy,
                        failures: options.authFailures)
            .register(on: router)
        let v1 = ScopedRoutes(v1: router.group("v1").add(
            middleware: AuthMiddleware(keys: keys, rateLimiter: rateLimiter, failures: options.authFailures)))
        JobsRoutes(jobs: jobs, registry: registry, checkpoints: checkpoints).register(on: v1)
        JobRetryRoute(jobs: jobs).register(on: v1)
        CheckpointsRoutes(checkpoints: checkpoints).register(on: v1)
        SchedulesRoutes(schedules: schedules, registry: registry).register(on: v1)
        if let webhooks {
            SubscriptionsRoutes(subscriptions: webhooks.subscriptions, deliveries: webhooks.deliveries, settings: webhooks.settings)
                .register(on: v1)
            DeliveriesRoutes(deliveries: webhooks.deliveries).register(on: v1)
        }
        BulkRoutes(batches: BatchStore(client: jobs.client, logger: jobs.logger), registry: registry, checkpoints: checkpoints,
                   maxBytes: options.bulkMaxBytes)
            .register(on: v1)
        EstimateRoutes(registry: registry).register(on: v1)
        ModelsRoutes(catalog: options.catalog).register(on: v1)
        UpstreamsRoutes(registry: registry, pauses: UpstreamPauseStore(client: jobs.client, logger: jobs.logger)).register(on: v1)
        return router
    }
}
