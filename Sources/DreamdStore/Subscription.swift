import Foundation
import PostgresNIO

/// A webhook subscription as the API shows it: never its secret.
public struct Subscription: Sendable, Hashable, Encodable {
    public var id: UUID
    public var url: String
    public var eventTypes: [String]
    public var description: String
    public var enabled: Bool
    public var disabledReason: String?
    public var createdAt: Date
    public var updatedAt: Date
    public var lastSuccessAt: Date?
    public var failingSince: Date?

    enum CodingKeys: String, CodingKey {
        case id, url, description, enabled
        case eventTypes = "event_types"
        case disabledReason = "disabled_reason"
        case createdAt = "created_at"
        case updatedAt = "updated_at"
        case lastSuccessAt = "last_success_at"
        case failingSince = "failing_since"
    }

    /// Encodes every key, `null` included, so the shape is stable.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id.uuidString.lowercased(), forKey: .id)
        try c.encode(url, forKey: .url)
        try c.encode(eventTypes, forKey: .eventTypes)
        try c.encode(description, forKey: .description)
        try c.encode(enabled, forKey: .enabled)
        try c.encode(disabledReason, forKey: .disabledReason)
        try c.encode(createdAt, forKey: .createdAt)
        try c.encode(updatedAt, forKey: .updatedAt)
        try c.encode(lastSuccessAt, forKey: .lastSuccessAt)
        try c.encode(failingSince, forKey: .failingSince)
    }
}

/// The columns subscription queries select, in the order `Subscription.init(row:)` reads them.
enum SubscriptionColumns {
    static let list = "id, url, event_types, description, enabled, disabled_reason, created_at, updated_at, last_success_at, failing_since"
}

extension Subscription {
    init(row: PostgresRow) throws {
        let c = row.makeRandomAccess()
        self.init(
            id: try c[0].decode(UUID.self), url: try c[1].decode(String.self), eventTypes: try c[2].decode([String].self),
            description: try c[3].decode(String.self), enabled: try c[4].decode(Bool.self),
            disabledReason: try c[5].decode(String?.self), createdAt: try c[6].decode(Date.self),
            updatedAt: try c[7].decode(Date.self), lastSuccessAt: try c[8].decode(Date?.self),
            failingSince: try c[9].decode(Date?.self)
        )
    }
}
