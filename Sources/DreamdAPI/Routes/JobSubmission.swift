import Crypto
import DreamdCore
import DreamdStore
import Foundation

/// A parsed and validated `POST /v1/jobs` body.
struct JobSubmission: Sendable {
    static let allowedKeys: Set<String> = ["kind", "params", "run_at", "priority", "max_attempts", "metadata", "archive_checkpoints"]
    static let priorityRange = -100...100
    static let maxMetadataBytes = 16 * 1024

    var kind: JobKind
    var params: JSONValue
    var runAt: Date?
    var priority: Int
    var maxAttempts: Int
    var metadata: JSONValue
    /// `archive_checkpoints`: keep a copy of the checkpoints this dreambooth job trains (stored on the job).
    var archiveCheckpoints = false
    /// The body as received.
    var body: JSONValue

    /// SHA-256 of the body's canonical JSON: the identity an `Idempotency-Key` is bound to.
    var requestHash: String {
        get throws {
            let canonical = try DreamdJSON.encoder().encode(body)
            return SHA256.hash(data: canonical).map { String(format: "%02x", $0) }.joined()
        }
    }

    /// The executor of the job's kind.
    var executor: any JobExecutor

    /// Validates `body` against the contract; the params are checked by `validateParams()`.
    init(body: JSONValue, registry: ExecutorRegistry) throws {
        guard let object = body.objectValue else {
            throw APIError.badRequest("the body must be a JSON object", code: "invalid_json")
        }
        let reader = try ParamsReader(body, path: "body")
        if let unknown = object.keys.sorted().first(where: { !Self.allowedKeys.contains($0) }) {
            throw APIError.invalid(ValidationError(field: unknown, message: "is not a known field"))
        }
        guard let kindValue = object["kind"], !kindValue.isNull else {
            throw APIError.invalid(ValidationError(field: "kind", message: "is required"))
        }
        guard let kindText = kindValue.stringValue else {
            throw APIError.invalid(ValidationError(field: "kind", message: "must be a string"))
        }
        kind = JobKind(rawValue: kindText)
        guard let executor = registry.executor(for: kind) else {
            if JobKind.contractKinds.contains(kind) {
                throw APIError(.unprocessableContent, code: "unsupported_kind",
                               message: "kind \(kindText) is not enabled on this daemon (enabled: \(registry.kinds.map(\.rawValue).joined(separator: ", ")))",
                               details: ["field": "kind"])
            }
            throw APIError.invalid(ValidationError(
                field: "kind", message: "must be one of \(JobKind.contractKinds.map(\.rawValue).joined(separator: ", ")), got \(kindText)"))
        }
        self.executor = executor
        guard let params = object["params"], !params.isNull else {
            throw APIError.invalid(ValidationError(field: "params", message: "is required"))
        }
        self.params = params
        if let runAtValue = object["run_at"], !runAtValue.isNull {
            guard let text = runAtValue.stringValue, let date = DreamdJSON.parseDate(text) else {
                throw APIError.invalid(ValidationError(field: "run_at", message: "must be an ISO-8601 date-time"))
            }
            runAt = date
        }
        do {
            priority = try reader.optionalInt("priority", in: Self.priorityRange) ?? 0
            maxAttempts = try reader.optionalInt("max_attempts", in: 1...100) ?? 5
            if let archive = try reader.optionalBool("archive_checkpoints"), archive {
                guard kind == .dreambooth || kind == .dreamboothImageGen else {
                    throw ValidationError(field: "archive_checkpoints", message: "applies only to dreambooth and dreambooth_image_gen jobs")
                }
                archiveCheckpoints = true
            }
        } catch let error as ValidationError {
            throw APIError.invalid(ValidationError(field: String(error.field.dropFirst("body.".count)), message: error.message))
        }
        metadata = object["metadata"] ?? .object([:])
        if metadata.isNull { metadata = .object([:]) }
        guard metadata.objectValue != nil else {
            throw APIError.invalid(ValidationError(field: "metadata", message: "must be an object"))
        }
        guard metadata.jsonText.utf8.count <= Self.maxMetadataBytes else {
            throw APIError.invalid(ValidationError(field: "metadata", message: "must be at most \(Self.maxMetadataBytes) bytes"))
        }
        self.body = body
    }

    /// Asks the kind's executor to check the params (which may load a catalog or fetch a file).
    func validateParams() async throws {
        do {
            try await executor.validateSubmission(kind: kind, params: params)
        } catch {
            throw APIError(submissionCheck: error)
        }
    }
}

extension APIError {
    /// 422 for an invalid job, 503 when what is needed to judge it cannot be had now.
    init(submissionCheck error: SubmissionCheckError) {
        switch error {
        case .invalid(let validation):
            self = .invalid(validation)
        case .unavailable(let code, let message):
            self.init(.serviceUnavailable, code: code, message: message)
            headers[.retryAfter] = "5"
        }
    }
}
