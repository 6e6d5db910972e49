import Crypto
import DreamdStore
import Foundation
import Logging
import PostgresNIO

/// The key a session was opened with, as the dashboard shows it: never its token.
public struct SessionKey: Sendable, Hashable {
    public var id: UUID
    public var name: String
    public var scope: APIKeyScope
}

/// A signed-in browser: the key it signed in with (never its token) and the CSRF token of its forms.
public struct DashboardSession: Sendable {
    /// The key the session was opened with, read afresh on every request (a revoked key has no session).
    public var key: SessionKey
    /// The value every state-changing form must carry (`csrf`): derived from the session token, which
    /// only the browser holds (an httpOnly cookie), so another site can neither read nor compute it.
    public var csrfToken: String
    public var expiresAt: Date

    /// Whether this session's key may do what needs `scope`.
    public func allows(_ scope: APIKeyScope) -> Bool { key.scope.allows(scope) }
}

/// Dashboard sessions in `ui_sessions` (migration 0020). The cookie holds a random token; the table holds
/// its SHA-256, so a copy of the table opens no session.
public struct SessionStore: Sendable {
    let client: PostgresClient
    let logger: Logger
    /// How long a session lasts from sign-in.
    public let lifetime: Duration

    public init(client: PostgresClient, logger: Logger, lifetime: Duration = .seconds(8 * 3600)) {
        self.client = client
        self.logger = logger
        self.lifetime = lifetime
    }

    /// 32 random bytes, base64url: a session token or a sign-in form's token.
    static func randomToken() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        return Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    static func hash(_ text: String) -> String {
        SHA256.hash(data: Data(text.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    /// The CSRF token of the session whose token this is.
    static func csrfToken(sessionToken: String) -> String {
        hash("dreamd-ui-csrf:" + sessionToken)
    }

    /// Opens a session for `key`; returns the token for the cookie.
    public func open(keyID: UUID) async throws -> String {
        let token = Self.randomToken()
        let seconds = Double(lifetime.components.seconds)
        try await client.rows("""
            INSERT INTO ui_sessions (token_hash, api_key_id, expires_at)
            VALUES (\(Self.hash(token)), \(keyID), now() + \(seconds) * interval '1 second')
            """, logger: logger)
        // Expired sessions are removed as new ones open (indexed by expiry; usually nothing to do).
        try await client.rows("DELETE FROM ui_sessions WHERE expires_at < now()", logger: logger)
        return token
    }

    /// The live session of this token: not expired, its key not revoked.
    public func session(token: String) async throws -> DashboardSession? {
        guard !token.isEmpty, token.count < 100 else { return nil }
        let rows = try await client.rows("""
            UPDATE ui_sessions s SET last_seen_at = now()
            FROM api_keys k
            WHERE s.token_hash = \(Self.hash(token)) AND s.expires_at > now()
              AND k.id = s.api_key_id AND k.revoked_at IS NULL
            RETURNING k.id, k.name, k.scope, s.expires_at
            """, logger: logger)
        for (id, name, scope, expires) in try rows.decode((UUID, String, String, Date).self) {
            let key = SessionKey(id: id, name: name, scope: APIKeyScope(rawValue: scope) ?? .read)
            return DashboardSession(key: key, csrfToken: Self.csrfToken(sessionToken: token), expiresAt: expires)
        }
        return nil
    }

    /// Ends the session of this token (signing out).
    public func close(token: String) async throws {
        try await client.rows("DELETE FROM ui_sessions WHERE token_hash = \(Self.hash(token))", logger: logger)
    }
}
