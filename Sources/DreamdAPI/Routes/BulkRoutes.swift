import Crypto
import DreamdCore
import DreamdStore
import Foundation
import Hummingbird
import NIOCore

/// Bulk submission (the SDK's `predict_many`, as durable jobs): `POST /v1/jobs/bulk` takes JSON lines,
/// each a `POST /v1/jobs` body, validates every row, and inserts all of them in one transaction or none;
/// `GET /v1/batches/{id}` follows the batch.
public struct BulkRoutes: Sendable {
    let batches: BatchStore
    let registry: ExecutorRegistry
    let expiryCheck: ExpiredCheckpointCheck
    /// Largest accepted bulk body (`DREAMD_BULK_MAX_BYTES`).
    let maxBytes: Int
    static let maxRows = 10_000
    /// Most per-row errors reported in one answer.
    static let maxReportedErrors = 1000
    static let contentTypes = ["application/x-ndjson", "application/jsonl", "application/json-lines", "application/x-jsonlines", "application/jsonlines"]

    public init(batches: BatchStore, registry: ExecutorRegistry, checkpoints: CheckpointStore? = nil, maxBytes: Int) {
        self.batches = batches
        self.registry = registry
        self.expiryCheck = ExpiredCheckpointCheck(checkpoints: checkpoints)
        self.maxBytes = maxBytes
    }

    public func register(on routes: ScopedRoutes) {
        routes.submit.post("jobs/bulk", use: submit)
        routes.read.get("batches/:id", use: get)
    }

    @Sendable func submit(_ request: Request, context: APIRequestContext) async throws -> Response {
        let mediaType = request.headers[.contentType]?.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
        guard let mediaType, Self.contentTypes.contains(mediaType) else {
            throw APIError(.unsupportedMediaType, code: "unsupported_media_type",
                           message: "send JSON lines, one job body per line, as Content-Type: application/x-ndjson (or application/jsonl)")
        }
        var request = request
        let body: ByteBuffer
        do {
            body = try await request.collectBody(upTo: maxBytes)
        } catch is NIOTooManyBytesError {
            throw APIError(.contentTooLarge, code: "payload_too_large", message: "the bulk body exceeds \(maxBytes) bytes (DREAMD_BULK_MAX_BYTES)")
        }
        let idempotencyKey = try IdempotencyKey.read(from: request)
        let received = ContinuousClock.now
        let lines = Self.lines(body)
        guard !lines.isEmpty else { throw APIError.badRequest("the body holds no rows; send one job body per line", code: "empty_body") }
        guard lines.count <= Self.maxRows else {
            throw APIError(.contentTooLarge, code: "too_many_rows", message: "a bulk submission holds at most \(Self.maxRows) rows, got \(lines.count)")
        }
        var valid: [(line: Int, submission: JobSubmission)] = []
        valid.reserveCapacity(lines.count)
        var rowErrors: [(line: Int, error: APIError)] = []
        for (number, text) in lines {
            do {
                guard let text else { throw APIError.badRequest("the line is not valid UTF-8", code: "invalid_json") }
                let value: JSONValue
                do { value = try JSONValue.parse(text) } catch {
                    throw APIError.badRequest("the line is not valid JSON: \(error.description)", code: "invalid_json")
                }
                do { try value.requireStorable() } catch { throw APIError.invalid(error, code: "invalid_value") }
                let submission = try JobSubmission(body: value, registry: registry)
                try await submission.validateParams()
                valid.append((number, submission))
            } catch let error as APIError {
                if error.status == .serviceUnavailable { throw error }
                rowErrors.append((number, error))
            }
        }
        // Expired checkpoints: one query for every row.
        for (index, refusal) in try await expiryCheck.refusals(valid.map(\.submission)) {
            rowErrors.append((valid[index].line, refusal))
        }
        guard rowErrors.isEmpty else {
            let reported = rowErrors.sorted { $0.line < $1.line }.prefix(Self.maxReportedErrors).map { row -> JSONValue in
                let field = row.error.details?["field"]?.stringValue
                var message = row.error.message
                if let field, message.hasPrefix(field + ": ") { message.removeFirst(field.count + 2) }
                return ["line": .number(Double(row.line)), "code": .string(row.error.code),
                        "field": field.map(JSONValue.string) ?? .null, "message": .string(message)]
            }
            throw APIError(.unprocessableContent, code: "invalid_rows",
                           message: "\(rowErrors.count) of \(lines.count) rows are invalid; nothing was submitted",
                           details: ["rows": .array(reported), "invalid": .number(Double(rowErrors.count)), "total": .number(Double(lines.count)),
                                     "truncated": .bool(rowErrors.count > reported.count)])
        }
        let jobs = valid.map { _, submission in
            JobStore.NewJob(
                kind: submission.kind, params: submission.params, runAt: submission.runAt, priority: submission.priority,
                maxAttempts: submission.maxAttempts, metadata: submission.metadata, apiKeyID: context.apiKey?.id,
                provider: submission.executor.provider, archiveCheckpoints: submission.archiveCheckpoints
            )
        }
        let hash = SHA256.hash(data: Data(body.readableBytesView)).map { String(format: "%02x", $0) }.joined()
        let started = ContinuousClock.now
        let validateMs = Int((started - received).seconds * 1000)
        switch try await batches.insert(jobs, apiKeyID: context.apiKey?.id, idempotencyKey: idempotencyKey, requestHash: hash) {
        case .created(let summary, let ids):
            context.logger.info("bulk submission", metadata: ["batch_id": "\(summary.id)", "jobs": "\(ids.count)", "validate_ms": "\(validateMs)",
                                                              "insert_ms": "\(Int((ContinuousClock.now - started).seconds * 1000))"])
            var answer = try DreamdJSON.value(summary)
            if case .object(var object) = answer {
                object["job_ids"] = .array(ids.map { .string($0.uuidString.lowercased()) })
                answer = .object(object)
            }
            var response = try JSONResponse.make(answer, status: .created)
            response.headers[.location] = "/v1/batches/\(summary.id.uuidString.lowercased())"
            return response
        case .replayed(let summary):
            return try JSONResponse.make(summary, status: .ok)
        case .conflict(let id):
            throw APIError(.conflict, code: "idempotency_conflict", message: "Idempotency-Key was already used with a different body",
                           details: ["batch_id": .string(id.uuidString.lowercased())])
        }
    }

    @Sendable func get(_ request: Request, context: APIRequestContext) async throws -> Response {
        guard let text = context.parameters.get("id"), let id = UUID(uuidString: text) else {
            throw APIError.notFound("no such batch (ids are UUIDs)")
        }
        guard let summary = try await batches.summary(id: id) else { throw APIError.notFound("no batch \(id.uuidString.lowercased())") }
        return try JSONResponse.make(summary)
    }

    /// Non-blank lines with their 1-based line numbers; `nil` for a line that is not UTF-8 (refused as
    /// `invalid_json`, as a `POST /v1/jobs` body would be, rather than stored with U+FFFD in its place).
    static func lines(_ body: ByteBuffer) -> [(Int, String?)] {
        var result: [(Int, String?)] = []
        var number = 0
        for line in body.readableBytesView.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            number += 1
            guard let decoded = String(validating: line, as: UTF8.self) else {
                result.append((number, nil))
                continue
            }
            let text = decoded.trimmingCharacters(in: .whitespacesAndNewlines)
            if !text.isEmpty { result.append((number, text)) }
        }
        return result
    }
}
