import DreamdStore
import Foundation
import Hummingbird

/// Requires `Authorization: Bearer <key>` with a live API key whose scope allows the route, and
/// holds each key to its request rate. Puts the key on the context.
public struct AuthMiddleware: RouterMiddleware {
    public typealias Context = APIRequestContext
    let keys: APIKeyStore
    let rateLimiter: KeyRateLimiter?

    public init(keys: APIKeyStore, rateLimiter: KeyRateLimiter? = nil) {
        self.keys = keys
        self.rateLimiter = rateLimiter
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let header = request.headers[.authorization] else {
            throw unauthorized("missing Authorization: Bearer <key> header")
        }
        let parts = header.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else {
            throw unauthorized("the Authorization header must be `Bearer <key>`")
        }
        guard let key = try await keys.authenticate(token: String(parts[1]).trimmingCharacters(in: .whitespaces)) else {
            throw unauthorized("unknown or revoked API key")
        }
        let required = Self.requiredScope(method: request.method, path: request.uri.path)
        guard key.scope.allows(required) else {
            throw APIError(.forbidden, code: "forbidden", message: "this key's scope is \(key.scope.rawValue); \(request.method) \(request.uri.path) needs \(required.rawValue)")
        }
        if let rateLimiter, let wait = rateLimiter.admit(key.id) {
            var error = APIError(.tooManyRequests, code: "rate_limited", message: "too many requests for this key; retry after \(wait) s")
            error.headers[.retryAfter] = "\(wait)"
            throw error
        }
        var context = context
        context.apiKey = key
        context.logger[metadataKey: "api_key"] = "\(key.prefix)…"
        return try await next(request, context)
    }

    /// Reads need `read` (a cost estimate is a read); changes need `submit`; webhook, delivery and upstream
    /// administration need `admin`.
    static func requiredScope(method: HTTPRequest.Method, path: String) -> APIKeyScope {
        if path == "/v1/estimate" { return .read }
        let adminPrefixes = ["/v1/subscriptions", "/v1/deliveries", "/v1/upstreams", "/v1/keys"]
        if adminPrefixes.contains(where: { path.hasPrefix($0) }) { return method == .get ? .read : .admin }
        switch method {
        case .get, .head: return .read
        default: return .submit
        }
    }

    func unauthorized(_ message: String) -> APIError {
        var error = APIError(.unauthorized, code: "unauthorized", message: message)
        error.headers[.wwwAuthenticate] = "Bearer"
        return error
    }
}
