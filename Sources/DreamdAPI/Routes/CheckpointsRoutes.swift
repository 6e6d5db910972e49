import DreamdCore
import DreamdStore
import Foundation
import Hummingbird

/// `/v1/checkpoints`: checkpoints trained by dreambooth jobs, soonest expiry first.
public struct CheckpointsRoutes: Sendable {
    static let states = ["available", "expiring", "expired"]
    let checkpoints: CheckpointStore

    public init(checkpoints: CheckpointStore) { self.checkpoints = checkpoints }

    public func register(on group: RouterGroup<APIRequestContext>) {
        group.get("checkpoints", use: list)
        group.get("checkpoints/:id", use: get)
    }

    @Sendable func list(_ request: Request, context: APIRequestContext) async throws -> Response {
        let query = request.uri.queryParameters
        var states: [String] = []
        if let filter = query["state"] {
            states = filter.split(separator: ",").map(String.init)
            if let bad = states.first(where: { !Self.states.contains($0) }) {
                throw APIError.badRequest("state: unknown state \(bad) (one of \(Self.states.joined(separator: ", ")))", code: "invalid_parameter")
            }
        }
        var jobID: UUID?
        if let job = query["job_id"] {
            guard let id = UUID(uuidString: String(job)) else { throw APIError.badRequest("job_id must be a UUID", code: "invalid_parameter") }
            jobID = id
        }
        var limit = 100
        if let text = query["limit"] {
            guard let value = Int(text), (1...500).contains(value) else {
                throw APIError.badRequest("limit must be an integer from 1 to 500", code: "invalid_parameter")
            }
            limit = value
        }
        return try JSONResponse.make(["data": try await checkpoints.list(states: states, jobID: jobID, limit: limit)])
    }

    @Sendable func get(_ request: Request, context: APIRequestContext) async throws -> Response {
        guard let text = context.parameters.get("id"), let id = UUID(uuidString: text),
              let checkpoint = try await checkpoints.checkpoint(id: id) else {
            throw APIError.notFound("no such checkpoint")
        }
        return try JSONResponse.make(checkpoint)
    }
}
