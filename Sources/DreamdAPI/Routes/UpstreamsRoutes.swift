import DreamdCore
import DreamdStore
import Foundation
import Hummingbird

/// `GET /v1/upstreams`: each upstream's state as this process sees it (healthy, paused, unhealthy);
/// `POST /v1/upstreams/{name}/resume`: lifts a pause (e.g. after a 402, once credits are topped up) here
/// and in the shared `upstream_pauses` table, so every process resumes (`UpstreamPauseSync`).
public struct UpstreamsRoutes: Sendable {
    let registry: ExecutorRegistry
    let pauses: UpstreamPauseStore

    public init(registry: ExecutorRegistry, pauses: UpstreamPauseStore) {
        self.registry = registry
        self.pauses = pauses
    }

    public func register(on routes: ScopedRoutes) {
        routes.read.get("upstreams", use: list)
        routes.admin.post("upstreams/:name/resume", use: resume)
    }

    /// The state of every upstream the daemon runs jobs on. Upstreams whose executor does not track
    /// its health are listed as `healthy` with `"tracked": false`.
    static func statuses(_ registry: ExecutorRegistry) throws -> [JSONValue] {
        try registry.executors.map { executor -> JSONValue in
            guard let health = executor.health else {
                return ["name": .string(executor.provider), "state": "healthy", "paused_until": .null, "reason": .null,
                        "in_flight": .null, "max_in_flight": .null, "since": .null, "tracked": false,
                        "kinds": .array(executor.kinds.map { .string($0.rawValue) })]
            }
            guard case .object(var object) = try DreamdJSON.value(health.status) else { return .null }
            object["tracked"] = true
            object["kinds"] = .array(executor.kinds.map { .string($0.rawValue) })
            return .object(object)
        }
    }

    @Sendable func list(_ request: Request, context: APIRequestContext) async throws -> Response {
        try JSONResponse.make(["data": .array(try Self.statuses(registry))] as JSONValue)
    }

    @Sendable func resume(_ request: Request, context: APIRequestContext) async throws -> Response {
        let name = context.parameters.get("name") ?? ""
        guard let executor = registry.executors.first(where: { $0.provider == name }) else {
            throw APIError.notFound("no upstream \(name) (known: \(registry.executors.map(\.provider).joined(separator: ", ")))")
        }
        guard let health = executor.health else {
            throw APIError(.conflict, code: "not_pausable", message: "upstream \(name) has no dispatch pause to lift")
        }
        let wasPausedHere = health.resume()
        let wasPausedShared = try await pauses.resume(upstream: name)
        let wasPaused = wasPausedHere || wasPausedShared
        context.logger.notice("upstream dispatch resumed", metadata: ["upstream": "\(name)", "was_paused": "\(wasPaused)"])
        guard case .object(var object) = try DreamdJSON.value(health.status) else { return try JSONResponse.make(JSONValue.null) }
        object["was_paused"] = .bool(wasPaused)
        return try JSONResponse.make(JSONValue.object(object))
    }
}
