import DreamdCore
import Foundation
import Hummingbird

/// `GET /v1/models`, `GET /v1/models/{slug}`: the Dream Engines catalog, cached (`DREAMD_MODELS_TTL`).
public struct ModelsRoutes: Sendable {
    let catalog: (any ModelCatalogSource)?

    public init(catalog: (any ModelCatalogSource)?) { self.catalog = catalog }

    public func register(on routes: ScopedRoutes) {
        routes.read.get("models", use: list)
        routes.read.get("models/:slug", use: get)
    }

    func source() throws -> any ModelCatalogSource {
        guard let catalog else { throw APIError.notFound("no model catalog: Dream Engines is not enabled on this daemon") }
        return catalog
    }

    @Sendable func list(_ request: Request, context: APIRequestContext) async throws -> Response {
        let models: [JSONValue]
        do { models = try await source().models() } catch let error as SubmissionCheckError { throw APIError(submissionCheck: error) }
        return try JSONResponse.make(["data": .array(models)] as JSONValue)
    }

    @Sendable func get(_ request: Request, context: APIRequestContext) async throws -> Response {
        let slug = context.parameters.get("slug")?.removingPercentEncoding ?? ""
        let model: JSONValue?
        do { model = try await source().model(slug: slug) } catch let error as SubmissionCheckError { throw APIError(submissionCheck: error) }
        guard let model else { throw APIError.notFound("no model \(slug) in the catalog") }
        return try JSONResponse.make(model)
    }
}
