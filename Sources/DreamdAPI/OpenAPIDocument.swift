import DreamdCore
import DreamdStore

/// The OpenAPI 3.1 document served at `GET /openapi.json`. Every route the router serves is listed in
/// `operations` (a test checks that the two agree); the schemas (`OpenAPIDocument+Schemas.swift`) state
/// the limits the code checks, and each job kind's params come from its executor.
public enum OpenAPIDocument {
    /// A query parameter and its schema (a bare string literal is a free-form string parameter).
    public struct QueryParameter: Sendable, ExpressibleByStringLiteral {
        public var name: String
        public var schema: JSONValue
        public var description: String?

        public init(_ name: String, _ schema: JSONValue, description: String? = nil) {
            self.name = name
            self.schema = schema
            self.description = description
        }

        public init(stringLiteral name: String) { self.init(name, JSONSchema.string(maxLength: 256)) }
    }

    /// One documented operation.
    public struct Operation: Sendable {
        public var method: String
        /// OpenAPI path, e.g. `/v1/jobs/{id}`.
        public var path: String
        public var summary: String
        public var tag: String
        /// Whether the route needs a bearer key.
        public var authenticated: Bool
        public var successStatus: String
        /// A schema of `components/schemas`.
        public var requestSchema: String?
        public var responseSchema: String?
        public var query: [QueryParameter] = []
        /// The media type of the request body.
        public var requestContentType = "application/json"
        /// Error statuses besides the ones every operation has (400, 404, 413, 422; 401, 403, 429 with a key).
        public var errors: [String] = []
        /// Links from this operation's success to others (OpenAPI `links`): name → operationId and parameters.
        public var links: [String: JSONValue] = [:]
        /// Answers other than success and the error body: status → (description, schema).
        public var otherResponses: [String: OtherResponse] = [:]
        /// Whether the operation takes an `Idempotency-Key` header.
        public var idempotent = false
    }

    /// A documented answer that is neither the success nor the error body.
    public struct OtherResponse: Sendable {
        public var description: String
        public var schema: String?
    }

    /// The state names a `state=` list takes, comma-separated.
    static func stateList(_ states: [String]) -> JSONValue {
        let one = "(" + states.joined(separator: "|") + ")"
        return JSONSchema.string(minLength: 1, maxLength: 256, pattern: "^\(one)(,\(one))*$")
            .described("A comma-separated list of: \(states.joined(separator: ", ")).")
    }

    static let limit = QueryParameter("limit", JSONSchema.integer(1...500), description: "Page size (default 50 or 100).")
    static let cursor = QueryParameter("cursor", JSONSchema.string(maxLength: 64, pattern: JobCursor.tokenPattern), description: "next_cursor of the previous page.")
    static let uuid: JSONValue = ["type": "string", "format": "uuid"]

    static func idLink(_ operationID: String) -> JSONValue {
        ["operationId": .string(operationID), "parameters": ["id": "$response.body#/id"]]
    }

    public static let operations: [Operation] = [
        .init(method: "get", path: "/healthz", summary: "The process is up", tag: "health", authenticated: false, successStatus: "200", responseSchema: "Health"),
        .init(method: "get", path: "/readyz", summary: "The database answers and migrations are current (else 503)", tag: "health", authenticated: false, successStatus: "200", responseSchema: "Health",
              otherResponses: ["503": .init(description: "not ready", schema: "Health")]),
        .init(method: "get", path: "/metrics", summary: "Prometheus metrics", tag: "health", authenticated: false, successStatus: "200"),
        .init(method: "get", path: "/openapi.json", summary: "This document", tag: "health", authenticated: false, successStatus: "200", responseSchema: "Object"),
        .init(method: "post", path: "/callbacks/{provider}/{token}", summary: "An upstream's callback (the token is the credential)", tag: "callbacks", authenticated: false, successStatus: "202", requestSchema: "Object", errors: ["429"]),
        .init(method: "post", path: "/v1/jobs", summary: "Submit a job (Idempotency-Key supported)", tag: "jobs", authenticated: true, successStatus: "201", requestSchema: "JobRequest", responseSchema: "Job",
              errors: ["409", "503"],
              links: ["GetJob": idLink("get_v1_jobs_by_id"), "GetJobEvents": idLink("get_v1_jobs_by_id_events"), "CancelJob": idLink("post_v1_jobs_by_id_cancel")],
              otherResponses: ["200": .init(description: "replayed (same Idempotency-Key and body)", schema: "Job")], idempotent: true),
        .init(method: "get", path: "/v1/jobs", summary: "List jobs, newest first", tag: "jobs", authenticated: true, successStatus: "200", responseSchema: "JobPage",
              query: [.init("state", stateList(JobState.allCases.map(\.rawValue))), "kind",
                      .init("schedule_id", uuid), .init("batch_id", uuid),
                      .init("created_after", JSONSchema.dateTime), .init("created_before", JSONSchema.dateTime), limit, cursor]),
        .init(method: "get", path: "/v1/jobs/{id}", summary: "A job", tag: "jobs", authenticated: true, successStatus: "200", responseSchema: "Job"),
        .init(method: "get", path: "/v1/jobs/{id}/events", summary: "A job's audit trail, oldest first", tag: "jobs", authenticated: true, successStatus: "200", responseSchema: "JobEvents"),
        .init(method: "get", path: "/v1/jobs/{id}/output", summary: "The text a streaming job produced so far", tag: "jobs", authenticated: true, successStatus: "200", responseSchema: "JobOutput",
              query: [.init("offset", JSONSchema.integer(0...JobsRoutes.maxOutputOffset))]),
        .init(method: "post", path: "/v1/jobs/{id}/cancel", summary: "Cancel a job that has not finished", tag: "jobs", authenticated: true, successStatus: "200", responseSchema: "Job", errors: ["409"]),
        .init(method: "post", path: "/v1/jobs/{id}/retry", summary: "Run a failed or cancelled job again as a new round of attempts (submit scope; 409 not_retryable otherwise)", tag: "jobs", authenticated: true, successStatus: "200", responseSchema: "Job", errors: ["409"]),
        .init(method: "post", path: "/v1/jobs/bulk", summary: "Submit up to 10,000 jobs as JSON lines, all or nothing", tag: "jobs", authenticated: true, successStatus: "201", requestSchema: "JobRequest", responseSchema: "BulkSubmission",
              requestContentType: "application/x-ndjson", errors: ["409", "415", "503"], idempotent: true),
        .init(method: "get", path: "/v1/batches/{id}", summary: "A bulk submission's counts and cost", tag: "jobs", authenticated: true, successStatus: "200", responseSchema: "Batch"),
        .init(method: "post", path: "/v1/estimate", summary: "What a job (or N rows of it) would cost", tag: "jobs", authenticated: true, successStatus: "200", requestSchema: "EstimateRequest", responseSchema: "Estimate", errors: ["503"]),
        .init(method: "get", path: "/v1/models", summary: "The Dream Engines model catalog (cached)", tag: "upstreams", authenticated: true, successStatus: "200", responseSchema: "Object", errors: ["503"]),
        .init(method: "get", path: "/v1/models/{slug}", summary: "One Dream Engines model", tag: "upstreams", authenticated: true, successStatus: "200", responseSchema: "Object", errors: ["503"]),
        .init(method: "get", path: "/v1/upstreams", summary: "Each upstream's state in this process (healthy, paused, unhealthy)", tag: "upstreams", authenticated: true, successStatus: "200", responseSchema: "Upstreams"),
        .init(method: "post", path: "/v1/upstreams/{name}/resume", summary: "Lift an upstream's dispatch pause (e.g. after a 402) in every daemon on the database", tag: "upstreams", authenticated: true, successStatus: "200", responseSchema: "Object"),
        .init(method: "get", path: "/v1/checkpoints", summary: "Trained checkpoints, soonest expiry first", tag: "checkpoints", authenticated: true, successStatus: "200", responseSchema: "CheckpointList",
              query: [.init("state", stateList(["available", "expiring", "expired"])), .init("job_id", uuid),
                      .init("expiring_within", JSONSchema.string(maxLength: 64, pattern: durationPattern), description: "A duration such as 12h or 1h30m."), limit]),
        .init(method: "get", path: "/v1/checkpoints/{id}", summary: "A checkpoint", tag: "checkpoints", authenticated: true, successStatus: "200", responseSchema: "Checkpoint"),
        .init(method: "patch", path: "/v1/checkpoints/{id}", summary: "Override a checkpoint's expiry (expires_at or retention)", tag: "checkpoints", authenticated: true, successStatus: "200", requestSchema: "CheckpointPatch", responseSchema: "Checkpoint", errors: ["409"]),
        .init(method: "post", path: "/v1/schedules", summary: "Create a schedule", tag: "schedules", authenticated: true, successStatus: "201", requestSchema: "ScheduleCreate", responseSchema: "Schedule",
              errors: ["503"],
              links: ["GetSchedule": idLink("get_v1_schedules_by_id"), "PatchSchedule": idLink("patch_v1_schedules_by_id"),
                      "PreviewSchedule": idLink("get_v1_schedules_by_id_preview"), "DeleteSchedule": idLink("delete_v1_schedules_by_id")]),
        .init(method: "get", path: "/v1/schedules", summary: "List schedules", tag: "schedules", authenticated: true, successStatus: "200", responseSchema: "SchedulePage",
              query: [.init("enabled", JSONSchema.boolean), limit, cursor]),
        .init(method: "get", path: "/v1/schedules/{id}", summary: "A schedule with its recent runs", tag: "schedules", authenticated: true, successStatus: "200", responseSchema: "Schedule"),
        .init(method: "patch", path: "/v1/schedules/{id}", summary: "Change a schedule", tag: "schedules", authenticated: true, successStatus: "200", requestSchema: "SchedulePatch", responseSchema: "Schedule", errors: ["503"]),
        .init(method: "delete", path: "/v1/schedules/{id}", summary: "Delete a schedule (its jobs are kept)", tag: "schedules", authenticated: true, successStatus: "204"),
        .init(method: "post", path: "/v1/schedules/{id}/trigger", summary: "Create a job of the schedule now", tag: "schedules", authenticated: true, successStatus: "201", responseSchema: "Job", errors: ["409", "503"]),
        .init(method: "get", path: "/v1/schedules/{id}/preview", summary: "The next fire times", tag: "schedules", authenticated: true, successStatus: "200", responseSchema: "SchedulePreview",
              query: [.init("count", JSONSchema.integer(1...100))], errors: ["409"]),
        .init(method: "post", path: "/v1/subscriptions", summary: "Create a webhook subscription (its secret is shown only now)", tag: "webhooks", authenticated: true, successStatus: "201", requestSchema: "SubscriptionCreate", responseSchema: "SubscriptionWithSecret",
              links: ["GetSubscription": idLink("get_v1_subscriptions_by_id"), "PatchSubscription": idLink("patch_v1_subscriptions_by_id"),
                      "RotateSecret": idLink("post_v1_subscriptions_by_id_rotate_secret"), "DeleteSubscription": idLink("delete_v1_subscriptions_by_id")]),
        .init(method: "get", path: "/v1/subscriptions", summary: "List webhook subscriptions", tag: "webhooks", authenticated: true, successStatus: "200", responseSchema: "SubscriptionList"),
        .init(method: "get", path: "/v1/subscriptions/{id}", summary: "A webhook subscription", tag: "webhooks", authenticated: true, successStatus: "200", responseSchema: "Subscription"),
        .init(method: "patch", path: "/v1/subscriptions/{id}", summary: "Change a webhook subscription", tag: "webhooks", authenticated: true, successStatus: "200", requestSchema: "SubscriptionPatch", responseSchema: "Subscription"),
        .init(method: "delete", path: "/v1/subscriptions/{id}", summary: "Delete a webhook subscription", tag: "webhooks", authenticated: true, successStatus: "204"),
        .init(method: "post", path: "/v1/subscriptions/{id}/rotate-secret", summary: "Rotate the signing secret (the old one keeps signing for the overlap)", tag: "webhooks", authenticated: true, successStatus: "200", responseSchema: "SubscriptionWithSecret"),
        .init(method: "post", path: "/v1/subscriptions/{id}/recover", summary: "Redeliver failed deliveries since a time", tag: "webhooks", authenticated: true, successStatus: "200", requestSchema: "Recover", responseSchema: "Object", errors: ["409"]),
        .init(method: "get", path: "/v1/deliveries", summary: "The delivery log", tag: "webhooks", authenticated: true, successStatus: "200", responseSchema: "DeliveryPage",
              query: [.init("subscription_id", uuid), .init("event_id", uuid),
                      .init("state", stateList(DeliveryState.allCases.map(\.rawValue))), limit, cursor]),
        .init(method: "get", path: "/v1/deliveries/{id}", summary: "A delivery with its attempts", tag: "webhooks", authenticated: true, successStatus: "200", responseSchema: "Object"),
        .init(method: "post", path: "/v1/deliveries/{id}/redeliver", summary: "Send a delivery again (same webhook-id)", tag: "webhooks", authenticated: true, successStatus: "201", responseSchema: "Object", errors: ["409"]),
    ]

    /// A positive duration `DurationParser` reads: up to four `<integer><unit>` (ms, s, m, h or d), the
    /// first one not zero (the parser also takes fractions; the document offers the plain form).
    static let durationPattern = "^0{0,3}[1-9][0-9]{0,4}(ms|s|m|h|d)([0-9]{1,5}(ms|s|m|h|d)){0,3}$"

    /// The document, given the job kinds this daemon runs (each with its params' schema) and any
    /// operations the running router adds.
    public static func json(registry: ExecutorRegistry = ExecutorRegistry(), extra: [Operation] = []) -> JSONValue {
        var paths: [String: [String: JSONValue]] = [:]
        for operation in operations + extra {
            paths[operation.path, default: [:]][operation.method] = entry(operation)
        }
        var components = schemas.objectValue ?? [:]
        components.merge(jobSchemas(registry: registry)) { $1 }
        return [
            "openapi": "3.1.0",
            "info": ["title": "dreamd", "version": "1.0.0", "description": "Orchestrates paid remote AI jobs through a PostgreSQL-backed queue."],
            "paths": .object(paths.mapValues { .object($0) }),
            "components": [
                "securitySchemes": ["bearer": ["type": "http", "scheme": "bearer"]],
                "schemas": .object(components),
            ],
        ]
    }

    static func entry(_ operation: Operation) -> JSONValue {
        var entry: [String: JSONValue] = [
            "summary": .string(operation.summary),
            "tags": [.string(operation.tag)],
            "operationId": .string(operationID(operation)),
        ]
        var parameters: [JSONValue] = pathParameters(operation.path).map { name in
            let schema: JSONValue = name == "id" ? uuid : JSONSchema.string(minLength: 1, maxLength: 256)
            return ["name": .string(name), "in": "path", "required": true, "schema": schema]
        }
        parameters += operation.query.map { parameter in
            var object: [String: JSONValue] = ["name": .string(parameter.name), "in": "query", "required": false, "schema": parameter.schema]
            if let description = parameter.description { object["description"] = .string(description) }
            return .object(object)
        }
        if operation.idempotent {
            parameters.append(["name": "Idempotency-Key", "in": "header", "required": false,
                               "schema": JSONSchema.string(minLength: 1, maxLength: IdempotencyKey.maxLength, pattern: "^[!-~]+$")])
        }
        if !parameters.isEmpty { entry["parameters"] = .array(parameters) }
        if let request = operation.requestSchema {
            entry["requestBody"] = ["required": true, "content": .object([operation.requestContentType: ["schema": JSONSchema.ref(request)]])]
        }
        var success: [String: JSONValue] = ["description": "success"]
        if let response = operation.responseSchema {
            success["content"] = ["application/json": ["schema": JSONSchema.ref(response)]]
        }
        if !operation.links.isEmpty { success["links"] = .object(operation.links) }
        var responses: [String: JSONValue] = [operation.successStatus: .object(success)]
        let error: JSONValue = ["description": "error", "content": ["application/json": ["schema": JSONSchema.ref("Error")]]]
        var statuses = ["400", "404", "405", "413", "422"] + operation.errors
        if operation.authenticated { statuses += ["401", "403", "429"] }
        for status in statuses { responses[status] = error }
        for (status, other) in operation.otherResponses {
            var answer: [String: JSONValue] = ["description": .string(other.description)]
            if let schema = other.schema { answer["content"] = ["application/json": ["schema": JSONSchema.ref(schema)]] }
            responses[status] = .object(answer)
        }
        entry["responses"] = .object(responses)
        entry["security"] = operation.authenticated ? [["bearer": []]] : []
        return .object(entry)
    }

    static func operationID(_ operation: Operation) -> String {
        let words = operation.path.split(separator: "/").map { $0.hasPrefix("{") ? "by_" + $0.dropFirst().dropLast() : String($0) }
        return ([operation.method] + words).joined(separator: "_").replacingOccurrences(of: ".", with: "_").replacingOccurrences(of: "-", with: "_")
    }

    /// `{id}` names in an OpenAPI path.
    static func pathParameters(_ path: String) -> [String] {
        path.split(separator: "/").filter { $0.hasPrefix("{") && $0.hasSuffix("}") }.map { String($0.dropFirst().dropLast()) }
    }
}
