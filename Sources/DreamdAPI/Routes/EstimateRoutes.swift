import DreamdCore
import Foundation
import Hummingbird

/// `POST /v1/estimate`: what a job, or N rows like it, would cost, from the upstream's price list.
/// The body is a job body (`{"kind", "params", ...}`), optionally with `"rows": N`.
public struct EstimateRoutes: Sendable {
    let registry: ExecutorRegistry
    static let maxRows = 100_000_000

    public init(registry: ExecutorRegistry) { self.registry = registry }

    public func register(on routes: ScopedRoutes) {
        routes.read.post("estimate", use: estimate)
    }

    @Sendable func estimate(_ request: Request, context: APIRequestContext) async throws -> Response {
        var body = try await RequestBody.json(request, context: context)
        guard var object = body.objectValue else { throw APIError.badRequest("the body must be a JSON object", code: "invalid_json") }
        var rows = 1
        if let value = object.removeValue(forKey: "rows"), !value.isNull {
            guard let count = value.intValue, (1...Self.maxRows).contains(count) else {
                throw APIError.invalid(ValidationError(field: "rows", message: "must be an integer from 1 to \(Self.maxRows)"))
            }
            rows = count
        }
        body = .object(object)
        let submission = try JobSubmission(body: body, registry: registry)
        let estimate: CostEstimate?
        do {
            estimate = try await submission.executor.estimate(kind: submission.kind, params: submission.params)
        } catch {
            throw APIError(submissionCheck: error)
        }
        guard let estimate else {
            throw APIError(.unprocessableContent, code: "estimate_unavailable",
                           message: "kind \(submission.kind) has no cost estimate before it runs", details: ["field": "kind"])
        }
        let totalFrames = estimate.framesPerRow * rows
        let answer: JSONValue = [
            "kind": .string(submission.kind.rawValue), "model": .string(estimate.model), "rows": .number(Double(rows)),
            "frames_per_row": .number(Double(estimate.framesPerRow)), "total_frames": .number(Double(totalFrames)),
            "price_per_frame_usd": .number(estimate.pricePerFrameUSD),
            "total_usd": .number(Self.usd(Double(totalFrames) * estimate.pricePerFrameUSD)),
        ]
        return try JSONResponse.make(answer)
    }

    /// Rounds to a millionth of a dollar (the precision of `jobs.cost_usd`), dropping float noise.
    static func usd(_ value: Double) -> Double { (value * 1_000_000).rounded() / 1_000_000 }
}
