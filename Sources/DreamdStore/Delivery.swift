import Foundation
import PostgresNIO

/// States of a delivery: `pending` (waiting for its next attempt), `delivering` (claimed, an attempt
/// in flight), and the final `succeeded` and `failed`.
public enum DeliveryState: String, Sendable, Hashable, Codable, CaseIterable {
    case pending, delivering, succeeded, failed
}

/// One webhook delivery (an event to one subscription) as the API shows it.
public struct Delivery: Sendable, Hashable, Encodable {
    public var id: UUID
    public var eventID: UUID
    public var subscriptionID: UUID
    public var eventType: String
    public var state: DeliveryState
    public var attempts: Int
    public var nextAttemptAt: Date?
    public var lastStatus: Int?
    public var lastError: String?
    public var redeliveryOf: UUID?
    public var createdAt: Date
    public var updatedAt: Date
    public var deliveredAt: Date?

    enum CodingKeys: String, CodingKey {
        case id, state, attempts
        case eventID = "event_id"
        case subscriptionID = "subscription_id"
        case eventType = "event_type"
        case nextAttemptAt = "next_attempt_at"
        case lastStatus = "last_status"
        case lastError = "last_error"
        case redeliveryOf = "redelivery_of"
        case createdAt = "created_at"
        case updatedAt = "updated_at"
        case deliveredAt = "delivered_at"
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id.uuidString.lowercased(), forKey: .id)
        try c.encode(eventID.uuidString.lowercased(), forKey: .eventID)
        try c.encode(subscriptionID.uuidString.lowercased(), forKey: .subscriptionID)
        try c.encode(eventType, forKey: .eventType)
        try c.encode(state, forKey: .state)
        try c.encode(attempts, forKey: .attempts)
        try c.encode(nextAttemptAt, forKey: .nextAttemptAt)
        try c.encode(lastStatus, forKey: .lastStatus)
        try c.encode(lastError, forKey: .lastError)
        try c.encode(redeliveryOf?.uuidString.lowercased(), forKey: .redeliveryOf)
        try c.encode(createdAt, forKey: .createdAt)
        try c.encode(updatedAt, forKey: .updatedAt)
        try c.encode(deliveredAt, forKey: .deliveredAt)
    }
}

/// One attempt of a delivery: what was sent when, and what came back.
public struct DeliveryAttempt: Sendable, Hashable, Encodable {
    public var id: Int64
    public var attempt: Int
    public var attemptedAt: Date
    public var statusCode: Int?
    public var durationMs: Int
    public var responseBody: String?
    public var error: String?

    enum CodingKeys: String, CodingKey {
        case id, attempt, error
        case attemptedAt = "attempted_at"
        case statusCode = "status_code"
        case durationMs = "duration_ms"
        case responseBody = "response_body"
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(attempt, forKey: .attempt)
        try c.encode(attemptedAt, forKey: .attemptedAt)
        try c.encode(statusCode, forKey: .statusCode)
        try c.encode(durationMs, forKey: .durationMs)
        try c.encode(responseBody, forKey: .responseBody)
        try c.encode(error, forKey: .error)
    }
}

/// A delivery claimed for one attempt, with everything the sender needs.
public struct ClaimedDelivery: Sendable, Hashable {
    public var id: UUID
    public var eventID: UUID
    public var subscriptionID: UUID
    public var eventType: String
    /// Attempts made before this one.
    public var previousAttempts: Int
    public var url: String
    /// The exact body to send and sign: the event's payload as PostgreSQL renders it.
    public var payload: String
    /// Secrets that sign this attempt: the current one first, then the previous one while it overlaps.
    /// Never log these.
    public var secrets: [String]
    /// The claim's fencing token (`deliveries.lease_epoch` as the claim set it): the attempt is recorded
    /// only while it still matches, so a claim whose lease was rescued can record nothing.
    public var leaseEpoch: Int64

    public init(id: UUID, eventID: UUID, subscriptionID: UUID, eventType: String, previousAttempts: Int, url: String,
                payload: String, secrets: [String], leaseEpoch: Int64 = 0) {
        self.leaseEpoch = leaseEpoch
        self.id = id
        self.eventID = eventID
        self.subscriptionID = subscriptionID
        self.eventType = eventType
        self.previousAttempts = previousAttempts
        self.url = url
        self.payload = payload
        self.secrets = secrets
    }
}

enum DeliveryColumns {
    static func list(_ alias: String = "") -> String {
        let p = alias.isEmpty ? "" : "\(alias)."
        return """
            \(p)id, \(p)event_id, \(p)subscription_id, \(p)event_type, \(p)state, \(p)attempts, \(p)next_attempt_at, \
            \(p)last_status, \(p)last_error, \(p)redelivery_of, \(p)created_at, \(p)updated_at, \(p)delivered_at
            """
    }
}

extension Delivery {
    init(row: PostgresRow) throws {
        let c = row.makeRandomAccess()
        let stateText = try c[4].decode(String.self)
        guard let state = DeliveryState(rawValue: stateText) else { throw JobStoreError.corruptRow("unknown delivery state \(stateText)") }
        self.init(
            id: try c[0].decode(UUID.self), eventID: try c[1].decode(UUID.self), subscriptionID: try c[2].decode(UUID.self),
            eventType: try c[3].decode(String.self), state: state, attempts: try c[5].decode(Int.self),
            nextAttemptAt: try c[6].decode(Date?.self), lastStatus: try c[7].decode(Int?.self),
            lastError: try c[8].decode(String?.self), redeliveryOf: try c[9].decode(UUID?.self),
            createdAt: try c[10].decode(Date.self), updatedAt: try c[11].decode(Date.self), deliveredAt: try c[12].decode(Date?.self)
        )
    }
}
