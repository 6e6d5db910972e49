import Hummingbird

/// Refuses a request whose path or query holds a NUL (`%00`) with 400: PostgreSQL cannot store or
/// compare such text, so it would otherwise surface as a database error deep in a route.
struct RefuseNULMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let target = request.uri.description
        if target.contains("%00") || target.utf8.contains(0) {
            throw APIError.badRequest("the request's path or query holds a NUL character (%00)", code: "invalid_request")
        }
        return try await next(request, context)
    }
}
