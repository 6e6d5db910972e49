import DreamdStore
import Foundation
import Hummingbird

/// Requires `Authorization: Bearer <key>` with a live API key; puts the key on the context.
public struct AuthMiddleware: RouterMiddleware {
    public typealias Context = APIRequestContext
    let keys: APIKeyStore

    public init(keys: APIKeyStore) { self.keys = keys }

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
        var context = context
        context.apiKey = key
        context.logger[metadataKey: "api_key"] = "\(key.prefix)…"
        return try await next(request, context)
    }

    func unauthorized(_ message: String) -> APIError {
        var error = APIError(.unauthorized, code: "unauthorized", message: message)
        error.headers[.wwwAuthenticate] = "Bearer"
        return error
    }
}
