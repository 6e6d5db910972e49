import DreamdCore
import DreamdStore
import Foundation
import Hummingbird

/// `POST /v1/jobs/{id}/retry` (`submit` scope): a `failed` or `cancelled` job runs again as a new round of
/// attempts. The audit row (`failed → queued`) names the key that asked; any other state is 409 `not_retryable`.
public struct JobRetryRoute: Sendable {
    let jobs: JobStore

    public init(jobs: JobStore) {
        self.jobs = jobs
    }

    public func register(on routes: ScopedRoutes) {
        routes.submit.post("jobs/:id/retry", use: retry)
    }

    @Sendable func retry(_ request: Request, context: APIRequestContext) async throws -> Response {
        let id = try JobsRoutes.jobID(context)
        let requester = JobStore.Requester(keyID: context.apiKey?.id, keyName: context.apiKey?.name)
        switch try await jobs.retry(id: id, actor: .api, requester: requester) {
        case .retried(let job):
            context.logger.info("job retried", metadata: ["job_id": "\(job.id)", "kind": "\(job.kind)"])
            return try JSONResponse.make(job)
        case .notRetryable(let job):
            throw APIError(.conflict, code: "not_retryable",
                           message: "only a failed or cancelled job can be retried; this one is \(job.state.rawValue)",
                           details: ["state": .string(job.state.rawValue)])
        case .notFound:
            throw APIError.notFound("no job \(id.uuidString.lowercased())")
        }
    }
}
