import DreamdStore
import Foundation
import Hummingbird

/// Requires `Authorization: Bearer <key>` with a live API key and holds each key to its request rate.
/// Puts the key on the context; the scope a route needs is checked by the group it is registered on
/// (`ScopedRoutes`, `RequireScope`).
///
/// Failed authentications are counted per client address (`failures`): once an address has used up
/// its allowance, its requests get 429 with `Retry-After` before any database lookup, so a loop of
/// guessed keys costs the database nothing.
public struct AuthMiddleware: RouterMiddleware {
    public typealias Context = APIRequestContext
    let keys: APIKeyStore
    let rateLimiter: KeyRateLimiter?
    let failures: AddressRateLimiter?

    public init(keys: APIKeyStore, rateLimiter: KeyRateLimiter? = nil, failures: AddressRateLimiter? = nil) {
        self.keys = keys
        self.rateLimiter = rateLimiter
        self.failures = failures
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let address = context.clientAddress
        if let failures, let wait = failures.wait(for: address) {
            throw APIError.rateLimited("too many failed authentications from this address; retry after \(wait) s", retryAfter: wait)
        }
        guard let key = try await authenticate(request) else {
            _ = failures?.admit(address)
            throw unauthorized(Self.failureMessage(request))
        }
        if let rateLimiter, let wait = rateLimiter.admit(key.id) {
            throw APIError.rateLimited("too many requests for this key; retry after \(wait) s", retryAfter: wait)
        }
        var context = context
        context.apiKey = key
        context.logger[metadataKey: "api_key"] = "\(key.prefix)…"
        return try await next(request, context)
    }

    /// The live key named by `Authorization: Bearer <key>`, or `nil` when there is none.
    func authenticate(_ request: Request) async throws -> APIKey? {
        guard let token = Self.bearerToken(request) else { return nil }
        return try await keys.authenticate(token: token)
    }

    static func bearerToken(_ request: Request) -> String? {
        guard let header = request.headers[.authorization] else { return nil }
        let parts = header.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
        return String(parts[1]).trimmingCharacters(in: .whitespaces)
    }

    static func failureMessage(_ request: Request) -> String {
        guard let header = request.headers[.authorization] else { return "missing Authorization: Bearer <key> header" }
        return bearerToken(request) == nil || header.isEmpty ? "the Authorization header must be `Bearer <key>`" : "unknown or revoked API key"
    }

    func unauthorized(_ message: String) -> APIError {
        var error = APIError(.unauthorized, code: "unauthorized", message: message)
        error.headers[.wwwAuthenticate] = "Bearer"
        return error
    }
}
