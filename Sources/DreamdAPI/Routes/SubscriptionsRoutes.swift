import DreamdCore
import DreamdStore
import Foundation
import Hummingbird

/// What the webhook routes need besides the stores.
public struct WebhookAPISettings: Sendable {
    /// Which destinations a subscription URL written as an IP address may name.
    public var destinationPolicy: DestinationPolicy
    /// How long a rotated-out secret keeps signing.
    public var secretOverlap: Duration

    public init(destinationPolicy: DestinationPolicy, secretOverlap: Duration) {
        self.destinationPolicy = destinationPolicy
        self.secretOverlap = secretOverlap
    }
}

/// `/v1/subscriptions`: webhook subscribers. The secret is in the answer of create and rotate only.
public struct SubscriptionsRoutes: Sendable {
    let subscriptions: SubscriptionStore
    let deliveries: DeliveryStore
    let settings: WebhookAPISettings

    public init(subscriptions: SubscriptionStore, deliveries: DeliveryStore, settings: WebhookAPISettings) {
        self.subscriptions = subscriptions
        self.deliveries = deliveries
        self.settings = settings
    }

    public func register(on routes: ScopedRoutes) {
        routes.admin.post("subscriptions", use: create)
        routes.read.get("subscriptions", use: list)
        routes.read.get("subscriptions/:id", use: get)
        routes.admin.patch("subscriptions/:id", use: update)
        routes.admin.delete("subscriptions/:id", use: delete)
        routes.admin.post("subscriptions/:id/rotate-secret", use: rotate)
        routes.admin.post("subscriptions/:id/recover", use: recover)
    }

    @Sendable func create(_ request: Request, context: APIRequestContext) async throws -> Response {
        let input = try SubscriptionInput(body: try await RequestBody.json(request, context: context), creating: true,
                                          policy: settings.destinationPolicy)
        let secret = input.secret ?? WebhookSecret.generate()
        let subscription = try await subscriptions.create(.init(
            url: input.url ?? "", eventTypes: input.eventTypes ?? [], description: input.description ?? "",
            enabled: input.enabled ?? true, secret: secret))
        context.logger.info("webhook subscription created", metadata: ["subscription_id": "\(subscription.id)"])
        var response = try JSONResponse.make(WithSecret(subscription: subscription, secret: secret.text, previousSecretExpiresAt: nil),
                                             status: .created)
        response.headers[.location] = "/v1/subscriptions/\(subscription.id.uuidString.lowercased())"
        return response
    }

    @Sendable func list(_ request: Request, context: APIRequestContext) async throws -> Response {
        try JSONResponse.make(["data": try await subscriptions.list()])
    }

    @Sendable func get(_ request: Request, context: APIRequestContext) async throws -> Response {
        let id = try Self.subscriptionID(context)
        guard let subscription = try await subscriptions.subscription(id: id) else { throw Self.notFound(id) }
        return try JSONResponse.make(subscription)
    }

    @Sendable func update(_ request: Request, context: APIRequestContext) async throws -> Response {
        let id = try Self.subscriptionID(context)
        let input = try SubscriptionInput(body: try await RequestBody.json(request, context: context), creating: false,
                                          policy: settings.destinationPolicy)
        let patch = SubscriptionStore.Patch(url: input.url, eventTypes: input.eventTypes, description: input.description, enabled: input.enabled)
        guard let subscription = try await subscriptions.update(id: id, patch) else { throw Self.notFound(id) }
        return try JSONResponse.make(subscription)
    }

    @Sendable func delete(_ request: Request, context: APIRequestContext) async throws -> Response {
        let id = try Self.subscriptionID(context)
        guard try await subscriptions.delete(id: id) else { throw Self.notFound(id) }
        context.logger.info("webhook subscription deleted", metadata: ["subscription_id": "\(id)"])
        return Response(status: .noContent)
    }

    @Sendable func rotate(_ request: Request, context: APIRequestContext) async throws -> Response {
        let id = try Self.subscriptionID(context)
        let secret = WebhookSecret.generate()
        guard let subscription = try await subscriptions.rotateSecret(id: id, to: secret, overlap: settings.secretOverlap) else {
            throw Self.notFound(id)
        }
        context.logger.info("webhook secret rotated", metadata: ["subscription_id": "\(id)"])
        let expires = settings.secretOverlap > .zero ? Date().addingTimeInterval(settings.secretOverlap.seconds) : nil
        return try JSONResponse.make(WithSecret(subscription: subscription, secret: secret.text, previousSecretExpiresAt: expires))
    }

    @Sendable func recover(_ request: Request, context: APIRequestContext) async throws -> Response {
        let id = try Self.subscriptionID(context)
        let body = try await RequestBody.json(request, context: context)
        guard let object = body.objectValue else { throw APIError.badRequest("the body must be a JSON object", code: "invalid_json") }
        if let unknown = object.keys.sorted().first(where: { $0 != "since" }) {
            throw SubscriptionInput.invalid(unknown, "is not a known field")
        }
        guard let text = object["since"]?.stringValue, let since = DreamdJSON.parseDate(text) else {
            throw APIError.invalid(ValidationError(field: "since", message: "is required: an ISO-8601 date-time"), code: "invalid_request")
        }
        switch try await deliveries.recover(subscriptionID: id, since: since) {
        case .redelivered(let count):
            context.logger.info("failed deliveries recovered", metadata: ["subscription_id": "\(id)", "deliveries": "\(count)"])
            return try JSONResponse.make(["redelivered": count])
        case .subscriptionDisabled:
            throw APIError(.conflict, code: "subscription_disabled", message: "the subscription is disabled; enable it first")
        case .notFound:
            throw Self.notFound(id)
        }
    }

    static func subscriptionID(_ context: APIRequestContext) throws -> UUID {
        guard let text = context.parameters.get("id"), let id = UUID(uuidString: text) else {
            throw APIError.notFound("no such subscription (ids are UUIDs)")
        }
        return id
    }

    static func notFound(_ id: UUID) -> APIError {
        APIError.notFound("no subscription \(id.uuidString.lowercased())")
    }
}

/// A subscription with its secret: the answer of create and rotate, the only places it is shown.
struct WithSecret: Encodable {
    var subscription: Subscription
    var secret: String
    var previousSecretExpiresAt: Date?

    enum CodingKeys: String, CodingKey {
        case secret
        case previousSecretExpiresAt = "previous_secret_expires_at"
    }

    func encode(to encoder: any Encoder) throws {
        try subscription.encode(to: encoder)
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(secret, forKey: .secret)
        if let previousSecretExpiresAt { try c.encode(previousSecretExpiresAt, forKey: .previousSecretExpiresAt) }
    }
}
