import DreamdCore
import Foundation
import Logging
import PostgresNIO

/// Webhook subscriptions in PostgreSQL. Secrets are written here and read only by the delivery
/// claim; this store hands a secret back only from `create` and `rotateSecret`.
public struct SubscriptionStore: Sendable {
    public let client: PostgresClient
    public let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// A subscription to create.
    public struct NewSubscription: Sendable {
        public var id: UUID
        public var url: String
        public var eventTypes: [String]
        public var description: String
        public var enabled: Bool
        public var secret: WebhookSecret

        public init(id: UUID = UUID(), url: String, eventTypes: [String], description: String = "", enabled: Bool = true,
                    secret: WebhookSecret = .generate()) {
            self.id = id
            self.url = url
            self.eventTypes = eventTypes
            self.description = description
            self.enabled = enabled
            self.secret = secret
        }
    }

    /// Creates a subscription. The caller shows `new.secret` once and forgets it.
    public func create(_ new: NewSubscription) async throws -> Subscription {
        let rows = try await client.rows("""
            INSERT INTO subscriptions (id, url, event_types, description, enabled, secret, disabled_reason)
            VALUES (\(new.id), \(new.url), \(new.eventTypes), \(new.description), \(new.enabled), \(new.secret.text),
                    CASE WHEN \(new.enabled) THEN NULL ELSE 'disabled by request' END)
            RETURNING \(unescaped: SubscriptionColumns.list)
            """, logger: logger).rows
        guard let row = rows.first else { throw JobStoreError.corruptRow("INSERT returned no row") }
        return try Subscription(row: row)
    }

    /// Every subscription, oldest first.
    public func list() async throws -> [Subscription] {
        try await client.rows("SELECT \(unescaped: SubscriptionColumns.list) FROM subscriptions ORDER BY created_at, id", logger: logger)
            .rows.map(Subscription.init(row:))
    }

    public func subscription(id: UUID) async throws -> Subscription? {
        try await client.rows("SELECT \(unescaped: SubscriptionColumns.list) FROM subscriptions WHERE id = \(id)", logger: logger)
            .rows.first.map(Subscription.init(row:))
    }

    /// Fields a `PATCH` may change; `nil` leaves a field as it is.
    public struct Patch: Sendable {
        public var url: String?
        public var eventTypes: [String]?
        public var description: String?
        public var enabled: Bool?

        public init(url: String? = nil, eventTypes: [String]? = nil, description: String? = nil, enabled: Bool? = nil) {
            self.url = url
            self.eventTypes = eventTypes
            self.description = description
            self.enabled = enabled
        }
    }

    /// Applies a patch. Enabling clears `disabled_reason` and the failing streak; disabling records
    /// `disabled by request`. Returns `nil` when there is no such subscription.
    public func update(id: UUID, _ patch: Patch) async throws -> Subscription? {
        try await client.rows("""
            UPDATE subscriptions SET
                url = COALESCE(\(patch.url), url),
                event_types = COALESCE(\(patch.eventTypes)::text[], event_types),
                description = COALESCE(\(patch.description), description),
                disabled_reason = CASE
                    WHEN \(patch.enabled)::boolean IS TRUE THEN NULL
                    WHEN \(patch.enabled)::boolean IS FALSE AND enabled THEN 'disabled by request'
                    ELSE disabled_reason END,
                failing_since = CASE WHEN \(patch.enabled)::boolean IS TRUE AND NOT enabled THEN NULL ELSE failing_since END,
                enabled = COALESCE(\(patch.enabled), enabled),
                updated_at = now()
            WHERE id = \(id)
            RETURNING \(unescaped: SubscriptionColumns.list)
            """, logger: logger).rows.first.map(Subscription.init(row:))
    }

    /// Deletes a subscription with its deliveries and their attempts. Returns whether it existed.
    public func delete(id: UUID) async throws -> Bool {
        try await client.rows("DELETE FROM subscriptions WHERE id = \(id) RETURNING id", logger: logger).rows.count == 1
    }

    /// Replaces the secret. The old one keeps signing beside the new one until `overlap` from now;
    /// a second rotation within the overlap drops the oldest. Returns `nil` when there is no such subscription.
    public func rotateSecret(id: UUID, to secret: WebhookSecret, overlap: Duration) async throws -> Subscription? {
        try await client.rows("""
            UPDATE subscriptions SET
                previous_secret = CASE WHEN \(Self.millis(overlap)) > 0 THEN secret END,
                previous_secret_expires_at = CASE WHEN \(Self.millis(overlap)) > 0
                    THEN now() + \(Self.millis(overlap)) * interval '1 millisecond' END,
                secret = \(secret.text),
                updated_at = now()
            WHERE id = \(id)
            RETURNING \(unescaped: SubscriptionColumns.list)
            """, logger: logger).rows.first.map(Subscription.init(row:))
    }

    /// The secrets that sign for a subscription now: the current one, then the previous one while it
    /// overlaps. For tests and tools; the delivery path reads them in its claim.
    public func signingSecrets(id: UUID) async throws -> [WebhookSecret] {
        let rows = try await client.rows("""
            SELECT secret, CASE WHEN previous_secret_expires_at > now() THEN previous_secret END
            FROM subscriptions WHERE id = \(id)
            """, logger: logger)
        for (current, previous) in try rows.decode((String, String?).self) {
            return try [current, previous].compactMap { $0 }.map { try WebhookSecret($0) }
        }
        return []
    }

    static func millis(_ duration: Duration) -> Int64 { Int64(duration.seconds * 1000) }
}
