import DreamdCore
import DreamdStore
import Foundation
import Hummingbird

/// `/v1/deliveries`: the delivery log, one delivery with its attempts, and redelivery.
public struct DeliveriesRoutes: Sendable {
    let deliveries: DeliveryStore

    public init(deliveries: DeliveryStore) {
        self.deliveries = deliveries
    }

    public func register(on routes: ScopedRoutes) {
        routes.read.get("deliveries", use: list)
        routes.read.get("deliveries/:id", use: get)
        routes.admin.post("deliveries/:id/redeliver", use: redeliver)
    }

    @Sendable func list(_ request: Request, context: APIRequestContext) async throws -> Response {
        let query = request.uri.queryParameters
        var filter = DeliveryStore.ListFilter()
        filter.subscriptionID = try QueryValue.uuid(query["subscription_id"], name: "subscription_id")
        filter.eventID = try QueryValue.uuid(query["event_id"], name: "event_id")
        if let states = try QueryValue.list(query["state"], name: "state", of: DeliveryState.self) { filter.states = states }
        if let limit = try QueryValue.limit(query["limit"]) { filter.limit = limit }
        filter.cursor = try QueryValue.cursor(query["cursor"])
        let page = try await deliveries.list(filter)
        return try JSONResponse.make(DeliveryPage(data: page.deliveries, nextCursor: page.next?.token))
    }

    @Sendable func get(_ request: Request, context: APIRequestContext) async throws -> Response {
        let id = try Self.deliveryID(context)
        guard let delivery = try await deliveries.delivery(id: id) else { throw Self.notFound(id) }
        let attempts = try await deliveries.attempts(deliveryID: id)
        return try JSONResponse.make(DeliveryWithAttempts(delivery: delivery, attempts: attempts))
    }

    @Sendable func redeliver(_ request: Request, context: APIRequestContext) async throws -> Response {
        let id = try Self.deliveryID(context)
        switch try await deliveries.redeliver(id: id) {
        case .created(let delivery):
            context.logger.info("webhook redelivery requested", metadata: ["delivery_id": "\(delivery.id)", "redelivery_of": "\(id)"])
            var response = try JSONResponse.make(delivery, status: .created)
            response.headers[.location] = "/v1/deliveries/\(delivery.id.uuidString.lowercased())"
            return response
        case .subscriptionDisabled:
            throw APIError(.conflict, code: "subscription_disabled", message: "the delivery's subscription is disabled; enable it first")
        case .notFound:
            throw Self.notFound(id)
        }
    }

    static func deliveryID(_ context: APIRequestContext) throws -> UUID {
        guard let text = context.parameters.get("id"), let id = UUID(uuidString: text) else {
            throw APIError.notFound("no such delivery (ids are UUIDs)")
        }
        return id
    }

    static func notFound(_ id: UUID) -> APIError {
        APIError.notFound("no delivery \(id.uuidString.lowercased())")
    }
}

/// A page of `GET /v1/deliveries`.
struct DeliveryPage: Encodable {
    var data: [Delivery]
    var nextCursor: String?

    enum CodingKeys: String, CodingKey {
        case data
        case nextCursor = "next_cursor"
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(data, forKey: .data)
        try c.encode(nextCursor, forKey: .nextCursor)
    }
}

/// `GET /v1/deliveries/{id}`: the delivery and its attempts, oldest first.
struct DeliveryWithAttempts: Encodable {
    var delivery: Delivery
    var attempts: [DeliveryAttempt]

    enum CodingKeys: String, CodingKey {
        case attemptsLog = "attempts_log"
    }

    func encode(to encoder: any Encoder) throws {
        try delivery.encode(to: encoder)
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(attempts, forKey: .attemptsLog)
    }
}
