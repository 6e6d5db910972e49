import DreamdCore
import DreamdStore
import Foundation
import Hummingbird

/// `/v1/checkpoints`: checkpoints trained by dreambooth jobs, soonest expiry first.
public struct CheckpointsRoutes: Sendable {
    static let states = ["available", "expiring", "expired"]
    let checkpoints: CheckpointStore

    public init(checkpoints: CheckpointStore) { self.checkpoints = checkpoints }

    public func register(on routes: ScopedRoutes) {
        routes.read.get("checkpoints", use: list)
        routes.read.get("checkpoints/:id", use: get)
        routes.submit.patch("checkpoints/:id", use: patch)
    }

    @Sendable func list(_ request: Request, context: APIRequestContext) async throws -> Response {
        let query = request.uri.queryParameters
        let states = try QueryValue.list(query["state"], name: "state", allowed: Self.states) ?? []
        let jobID = try QueryValue.uuid(query["job_id"], name: "job_id")
        var within: Duration?
        if let text = query["expiring_within"] {
            do { within = try DurationParser.parse(String(text)) } catch {
                throw APIError.badRequest("expiring_within: \(error.description)", code: "invalid_parameter")
            }
        }
        let limit = try QueryValue.limit(query["limit"]) ?? 100
        return try JSONResponse.make(["data": try await checkpoints.list(states: states, jobID: jobID, expiringWithin: within, limit: limit)])
    }

    @Sendable func get(_ request: Request, context: APIRequestContext) async throws -> Response {
        guard let text = context.parameters.get("id"), let id = UUID(uuidString: text),
              let checkpoint = try await checkpoints.checkpoint(id: id) else {
            throw APIError.notFound("no such checkpoint")
        }
        return try JSONResponse.make(checkpoint)
    }

    /// `PATCH /v1/checkpoints/{id}` with `{"expires_at": ISO-8601}` or `{"retention": "72h"}` (from `trained_at`):
    /// the per-checkpoint retention override (e.g. a plan that keeps checkpoints longer upstream).
    @Sendable func patch(_ request: Request, context: APIRequestContext) async throws -> Response {
        // The body is checked first, so a bad one is a 422 whether or not the checkpoint exists.
        let body = try await RequestBody.json(request, context: context)
        guard let object = body.objectValue else { throw APIError.badRequest("the body must be a JSON object", code: "invalid_json") }
        if let unknown = object.keys.sorted().first(where: { !["expires_at", "retention"].contains($0) }) {
            throw APIError.invalid(ValidationError(field: unknown, message: "is not a known field (expires_at or retention)"), code: "invalid_checkpoint")
        }
        let requestedAt: Date?
        let retention: Duration?
        switch (object["expires_at"], object["retention"]) {
        case (let value?, nil):
            guard let text = value.stringValue, let date = DreamdJSON.parseDate(text) else {
                throw APIError.invalid(ValidationError(field: "expires_at", message: "must be an ISO-8601 date-time"), code: "invalid_checkpoint")
            }
            (requestedAt, retention) = (date, nil)
        case (nil, let value?):
            guard let text = value.stringValue, let duration = try? DurationParser.parse(text), duration > .zero else {
                throw APIError.invalid(ValidationError(field: "retention", message: "must be a positive duration such as 72h"), code: "invalid_checkpoint")
            }
            (requestedAt, retention) = (nil, duration)
        case (nil, nil):
            throw APIError.invalid(ValidationError(field: "expires_at", message: "give expires_at or retention"), code: "invalid_checkpoint")
        case (_?, _?):
            throw APIError.invalid(ValidationError(field: "retention", message: "give expires_at or retention, not both"), code: "invalid_checkpoint")
        }
        guard let text = context.parameters.get("id"), let id = UUID(uuidString: text),
              let current = try await checkpoints.checkpoint(id: id) else {
            throw APIError.notFound("no such checkpoint")
        }
        let expiresAt = requestedAt ?? current.trainedAt.addingTimeInterval(retention?.seconds ?? 0)
        guard expiresAt > current.trainedAt else {
            throw APIError.invalid(ValidationError(field: object["expires_at"] != nil ? "expires_at" : "retention",
                                                   message: "must put expiry after trained_at"), code: "invalid_checkpoint")
        }
        do {
            guard let updated = try await checkpoints.setExpiry(id: id, expiresAt: expiresAt) else { throw APIError.notFound("no such checkpoint") }
            context.logger.info("checkpoint expiry changed", metadata: ["checkpoint_id": "\(id)", "expires_at": "\(DreamdJSON.formatDate(expiresAt))"])
            return try JSONResponse.make(updated)
        } catch CheckpointStoreError.alreadyExpired(let at) {
            throw APIError(.conflict, code: "checkpoint_expired", message: "checkpoint expired at \(DreamdJSON.formatDate(at)); dreamlook has deleted it",
                           details: ["expired_at": .string(DreamdJSON.formatDate(at))])
        }
    }
}
