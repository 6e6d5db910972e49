import DreamdCore
import DreamdStore
import Hummingbird
import Logging

/// Builds the HTTP API's router: health routes without a key, `/v1` behind bearer keys, errors in
/// the contract's JSON shape everywhere.
public enum APIRouter {
    public static func build(
        jobs: JobStore, keys: APIKeyStore, callbacks: CallbackStore, checkpoints: CheckpointStore,
        registry: ExecutorRegistry, readiness: @escaping HealthRoutes.ReadinessProbe
    ) -> Router<APIRequestContext> {
        let router = Router(context: APIRequestContext.self)
        router.add(middleware: ErrorMiddleware())
        HealthRoutes(probe: readiness).register(on: router)
        CallbacksRoutes(callbacks: callbacks, jobs: jobs, registry: registry).register(on: router)
        let v1 = router.group("v1").add(middleware: AuthMiddleware(keys: keys))
        JobsRoutes(jobs: jobs, registry: registry, checkpoints: checkpoints).register(on: v1)
        CheckpointsRoutes(checkpoints: checkpoints).register(on: v1)
        return router
    }
}
