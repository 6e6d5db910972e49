import DreamdCore
import DreamdStore
import Foundation
import Hummingbird
import Logging

/// `/v1/jobs`: submit, list, get, audit trail, cancel.
public struct JobsRoutes: Sendable {
    let jobs: JobStore
    let registry: ExecutorRegistry
    /// Where submissions naming a trained checkpoint are checked for expiry.
    let checkpoints: CheckpointStore?

    public init(jobs: JobStore, registry: ExecutorRegistry, checkpoints: CheckpointStore? = nil) {
        self.jobs = jobs
        self.registry = registry
        self.checkpoints = checkpoints
    }

    public func register(on routes: ScopedRoutes) {
        routes.submit.post("jobs", use: submit)
        routes.read.get("jobs", use: list)
        routes.read.get("jobs/:id", use: get)
        routes.read.get("jobs/:id/events", use: events)
        routes.submit.post("jobs/:id/cancel", use: cancel)
        routes.read.get("jobs/:id/output", use: output)
    }

    @Sendable func submit(_ request: Request, context: APIRequestContext) async throws -> Response {
        let body = try await RequestBody.json(request, context: context)
        let submission = try JobSubmission(body: body, registry: registry)
        let idempotencyKey = try IdempotencyKey.read(from: request)
        if let idempotencyKey,
           let earlier = try await jobs.existing(idempotencyKey: idempotencyKey, requestHash: try submission.requestHash,
                                                 apiKeyID: context.apiKey?.id) {
            // Idempotent replay first: a retried request gets its job without being validated again.
            return try answer(earlier)
        }
        try await submission.validateParams()
        try await ExpiredCheckpointCheck(checkpoints: checkpoints).refuseExpiredCheckpoints(submission)
        let new = JobStore.NewJob(
            kind: submission.kind, params: submission.params, runAt: submission.runAt, priority: submission.priority,
            maxAttempts: submission.maxAttempts, metadata: submission.metadata, idempotencyKey: idempotencyKey,
            requestHash: try submission.requestHash, apiKeyID: context.apiKey?.id,
            provider: registry.executor(for: submission.kind)?.provider, archiveCheckpoints: submission.archiveCheckpoints
        )
        return try answer(try await jobs.insert(new), logger: context.logger)
    }

    /// The answer to a submission: 201 with the new job, 200 with the job a known Idempotency-Key made,
    /// 409 when that key came with another body.
    func answer(_ outcome: JobStore.InsertOutcome, logger: Logger? = nil) throws -> Response {
        switch outcome {
        case .created(let job):
            logger?.info("job submitted", metadata: ["job_id": "\(job.id)", "kind": "\(job.kind)"])
            var response = try JSONResponse.make(job, status: .created)
            response.headers[.location] = "/v1/jobs/\(job.id.uuidString.lowercased())"
            return response
        case .replayed(let job):
            return try JSONResponse.make(job, status: .ok)
        case .conflict(let job):
            throw APIError(.conflict, code: "idempotency_conflict",
                           message: "Idempotency-Key was already used with a different body",
                           details: ["job_id": .string(job.id.uuidString.lowercased())])
        }
    }

    @Sendable func list(_ request: Request, context: APIRequestContext) async throws -> Response {
        let query = request.uri.queryParameters
        var filter = JobStore.ListFilter()
        if let states = try QueryValue.list(query["state"], name: "state", of: JobState.self) { filter.states = states }
        if let kinds = query["kind"] {
            guard kinds.utf8.count <= 256 else { throw QueryValue.invalid("kind must be at most 256 characters") }
            filter.kinds = kinds.split(separator: ",").map { JobKind(rawValue: String($0)) }
        }
        filter.scheduleID = try QueryValue.uuid(query["schedule_id"], name: "schedule_id")
        filter.batchID = try QueryValue.uuid(query["batch_id"], name: "batch_id")
        filter.createdAfter = try QueryValue.date(query["created_after"], name: "created_after")
        filter.createdBefore = try QueryValue.date(query["created_before"], name: "created_before")
        if let limit = try QueryValue.limit(query["limit"]) { filter.limit = limit }
        filter.cursor = try QueryValue.cursor(query["cursor"])
        let page = try await jobs.list(filter)
        return try JSONResponse.make(JobPage(data: page.jobs, nextCursor: page.next?.token))
    }

    @Sendable func get(_ request: Request, context: APIRequestContext) async throws -> Response {
        let id = try Self.jobID(context)
        guard let job = try await jobs.job(id: id) else { throw APIError.notFound("no job \(id.uuidString.lowercased())") }
        return try JSONResponse.make(job)
    }

    @Sendable func events(_ request: Request, context: APIRequestContext) async throws -> Response {
        let id = try Self.jobID(context)
        let events = try await jobs.events(jobID: id)
        if events.isEmpty, try await jobs.job(id: id) == nil { throw APIError.notFound("no job \(id.uuidString.lowercased())") }
        return try JSONResponse.make(["data": events])
    }

    @Sendable func cancel(_ request: Request, context: APIRequestContext) async throws -> Response {
        let id = try Self.jobID(context)
        switch try await jobs.cancel(id: id) {
        case .cancelled(let job):
            context.logger.info("job cancelled", metadata: ["job_id": "\(job.id)", "kind": "\(job.kind)"])
            return try JSONResponse.make(job)
        case .alreadyFinal(let job):
            throw APIError(.conflict, code: "job_finished", message: "job is already \(job.state.rawValue)",
                           details: ["state": .string(job.state.rawValue)])
        case .notFound:
            throw APIError.notFound("no job \(id.uuidString.lowercased())")
        }
    }

    /// The text a streaming job has produced so far (the full text once it succeeded), from `offset` on.
    @Sendable func output(_ request: Request, context: APIRequestContext) async throws -> Response {
        let id = try Self.jobID(context)
        let offset = try QueryValue.int(request.uri.queryParameters["offset"], name: "offset", in: 0...Self.maxOutputOffset) ?? 0
        guard let output = try await jobs.output(id: id, from: offset) else { throw APIError.notFound("no job \(id.uuidString.lowercased())") }
        return try JSONResponse.make([
            "text": .string(output.text), "offset": .number(Double(offset)), "length": .number(Double(output.length)),
            "state": .string(output.state.rawValue), "final": .bool(output.state.isFinal),
        ] as JSONValue)
    }

    /// The largest `offset` of `GET /v1/jobs/{id}/output` (PostgreSQL's text positions are 32-bit).
    static let maxOutputOffset = Int(Int32.max) - 1

    static func jobID(_ context: APIRequestContext) throws -> UUID {
        guard let text = context.parameters.get("id"), let id = UUID(uuidString: text) else {
            throw APIError.notFound("no such job (ids are UUIDs)")
        }
        return id
    }
}

/// A page of `GET /v1/jobs`.
struct JobPage: Encodable {
    var data: [Job]
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
