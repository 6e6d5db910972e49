import DreamdStore
import Hummingbird

/// The `/v1` routes, one group per key scope. A route declares the scope it needs by the group it is
/// registered on: `routes.read.get("jobs", ...)`, `routes.submit.post("jobs", ...)`,
/// `routes.admin.post("subscriptions", ...)`.
///
/// Reads need `read` (a cost estimate is a read); changes to jobs, schedules and checkpoints need
/// `submit`; webhook subscriptions, deliveries and upstream pauses need `admin` to change.
public struct ScopedRoutes {
    /// Routes any live key may use.
    public let read: RouterGroup<APIRequestContext>
    /// Routes that change jobs, schedules or checkpoints.
    public let submit: RouterGroup<APIRequestContext>
    /// Routes that administer webhooks, deliveries and upstreams.
    public let admin: RouterGroup<APIRequestContext>

    /// Groups under `v1`, which must already authenticate the key (`AuthMiddleware`).
    public init(v1: RouterGroup<APIRequestContext>) {
        read = v1.group().add(middleware: RequireScope(required: .read))
        submit = v1.group().add(middleware: RequireScope(required: .submit))
        admin = v1.group().add(middleware: RequireScope(required: .admin))
    }
}
