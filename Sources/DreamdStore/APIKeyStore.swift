import Crypto
import Foundation
import Logging
import PostgresNIO

/// What a key may do: `admin` ⊃ `submit` ⊃ `read`.
public enum APIKeyScope: String, Sendable, Codable, CaseIterable, Comparable {
    /// GET routes.
    case read
    /// `read`, plus creating, changing and cancelling jobs and schedules.
    case submit
    /// Everything, including webhook subscriptions, deliveries and upstream controls.
    case admin

    var rank: Int { switch self { case .read: 0; case .submit: 1; case .admin: 2 } }
    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rank < rhs.rank }

    /// Whether a key of this scope may use a route that needs `required`.
    public func allows(_ required: APIKeyScope) -> Bool { self >= required }
}

/// An API key as listed: never its token.
public struct APIKey: Sendable, Codable, Hashable {
    public var id: UUID
    public var name: String
    public var prefix: String
    public var createdAt: Date
    public var revokedAt: Date?
    public var scope: APIKeyScope = .admin

    enum CodingKeys: String, CodingKey {
        case id, name, prefix, scope
        case createdAt = "created_at"
        case revokedAt = "revoked_at"
    }
}

/// Bearer keys for the HTTP API. Only a SHA-256 of each token is stored; the token is shown once.
public struct APIKeyStore: Sendable {
    public let client: PostgresClient
    public let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// Tokens look like `dmd_` followed by 43 base64url characters (32 random bytes).
    static func newToken() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        return "dmd_" + Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    static func hash(_ token: String) -> String {
        SHA256.hash(data: Data(token.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    /// Creates a key. The returned token is the only time it is ever visible.
    public func create(name: String, scope: APIKeyScope = .admin) async throws -> (key: APIKey, token: String) {
        let token = Self.newToken()
        let id = UUID()
        let prefix = String(token.prefix(12))
        let rows = try await client.rows("""
            INSERT INTO api_keys (id, name, token_hash, token_prefix, scope)
            VALUES (\(id), \(name), \(Self.hash(token)), \(prefix), \(scope.rawValue))
            RETURNING created_at
            """, logger: logger)
        var createdAt = Date()
        for value in try rows.decode(Date.self) { createdAt = value }
        return (APIKey(id: id, name: name, prefix: prefix, createdAt: createdAt, revokedAt: nil, scope: scope), token)
    }

    public func list() async throws -> [APIKey] {
        let rows = try await client.rows(
            "SELECT id, name, token_prefix, created_at, revoked_at, scope FROM api_keys ORDER BY created_at", logger: logger)
        var keys: [APIKey] = []
        for (id, name, prefix, created, revoked, scope) in try rows.decode((UUID, String, String, Date, Date?, String).self) {
            keys.append(APIKey(id: id, name: name, prefix: prefix, createdAt: created, revokedAt: revoked, scope: APIKeyScope(rawValue: scope) ?? .read))
        }
        return keys
    }

    /// Revokes the keys with this id or name. Returns how many were revoked.
    public func revoke(idOrName: String) async throws -> Int {
        let id = UUID(uuidString: idOrName)
        let rows = try await client.rows("""
            UPDATE api_keys SET revoked_at = now()
            WHERE revoked_at IS NULL AND (id = \(id)::uuid OR (\(id)::uuid IS NULL AND name = \(idOrName)))
            RETURNING id
            """, logger: logger).rows
        return rows.count
    }

    /// The live key whose token this is, if any.
    public func authenticate(token: String) async throws -> APIKey? {
        guard token.hasPrefix("dmd_"), token.count < 200 else { return nil }
        let rows = try await client.rows("""
            SELECT id, name, token_prefix, created_at, revoked_at, scope FROM api_keys
            WHERE token_hash = \(Self.hash(token)) AND revoked_at IS NULL
            """, logger: logger)
        for (id, name, prefix, created, revoked, scope) in try rows.decode((UUID, String, String, Date, Date?, String).self) {
            return APIKey(id: id, name: name, prefix: prefix, createdAt: created, revokedAt: revoked, scope: APIKeyScope(rawValue: scope) ?? .read)
        }
        return nil
    }
}
