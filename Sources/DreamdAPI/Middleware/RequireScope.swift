import DreamdStore
import Hummingbird

/// Refuses a request whose key's scope is below `required` (403). It is attached to a route group, so
/// it runs for exactly the routes registered on that group, after the router has matched the route:
/// however the path is spelled (`//`, `/./`, a trailing slash, percent-encoding), the route that answers
/// is the route whose scope is checked. The raw path is never read for authorisation.
struct RequireScope: RouterMiddleware {
    typealias Context = APIRequestContext
    let required: APIKeyScope

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        // `AuthMiddleware` runs first on every `/v1` route; a missing key here is a wiring error, refused all the same.
        guard let key = context.apiKey else {
            throw APIError(.unauthorized, code: "unauthorized", message: "an API key is required")
        }
        guard key.scope.allows(required) else {
            let route = context.endpointPath ?? "this route"
            throw APIError(.forbidden, code: "forbidden",
                           message: "this key's scope is \(key.scope.rawValue); \(request.method) \(route) needs \(required.rawValue)")
        }
        return try await next(request, context)
    }
}
