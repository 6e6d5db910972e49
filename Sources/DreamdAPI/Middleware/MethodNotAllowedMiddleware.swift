import Hummingbird

/// Answers 405 with an `Allow` header, instead of the router's 404, when the path is a route's but the
/// method is not one it serves (`TRACE /v1/jobs`, `PUT /v1/jobs/{id}`).
struct MethodNotAllowedMiddleware<Context: RequestContext>: RouterMiddleware {
    /// Each documented path as its segments (`{id}` matches any one segment), with its methods.
    let routes: [(segments: [Substring], methods: [String])]

    init(operations: [OpenAPIDocument.Operation]) {
        var byPath: [String: [String]] = [:]
        for operation in operations { byPath[operation.path, default: []].append(operation.method.uppercased()) }
        routes = byPath.map { ($0.key.split(separator: "/"), $0.value.sorted()) }
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as HTTPError where error.status == .notFound {
            let segments = request.uri.path.split(separator: "/")
            // The most specific pattern, as the router picks it: `/v1/jobs/bulk` before `/v1/jobs/{id}`.
            guard let route = routes.filter({ Self.matches($0.segments, segments) })
                .min(by: { Self.placeholders($0.segments) < Self.placeholders($1.segments) }),
                  !route.methods.contains(request.method.rawValue) else { throw error }
            var refusal = APIError(.methodNotAllowed, code: "method_not_allowed",
                                   message: "\(request.method) is not served here; allowed: \(route.methods.joined(separator: ", "))")
            refusal.headers[.allow] = route.methods.joined(separator: ", ")
            throw refusal
        }
    }

    static func placeholders(_ pattern: [Substring]) -> Int { pattern.filter { $0.hasPrefix("{") }.count }

    static func matches(_ pattern: [Substring], _ path: [Substring]) -> Bool {
        pattern.count == path.count && zip(pattern, path).allSatisfy { $0.hasPrefix("{") || $0 == $1 }
    }
}
