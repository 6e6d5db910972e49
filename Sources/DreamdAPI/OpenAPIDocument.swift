import DreamdCore

/// The OpenAPI 3.1 document served at `GET /openapi.json`. Every route the router serves is listed in
/// `operations`; a test checks that the two agree.
public enum OpenAPIDocument {
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
        public var requestSchema: String?
        public var responseSchema: String?
        public var query: [String] = []
        /// The media type of the request body.
        public var requestContentType = "application/json"
    }

    public static let operations: [Operation] = [
        .init(method: "get", path: "/healthz", summary: "The process is up", tag: "health", authenticated: false, successStatus: "200"),
        .init(method: "get", path: "/readyz", summary: "The database answers and migrations are current (else 503)", tag: "health", authenticated: false, successStatus: "200"),
        .init(method: "get", path: "/metrics", summary: "Prometheus metrics", tag: "health", authenticated: false, successStatus: "200"),
        .init(method: "get", path: "/openapi.json", summary: "This document", tag: "health", authenticated: false, successStatus: "200"),
        .init(method: "post", path: "/callbacks/{provider}/{token}", summary: "An upstream's callback (the token is the credential)", tag: "callbacks", authenticated: false, successStatus: "202", requestSchema: "Object"),
        .init(method: "post", path: "/v1/jobs", summary: "Submit a job (Idempotency-Key supported)", tag: "jobs", authenticated: true, successStatus: "201", requestSchema: "JobRequest", responseSchema: "Job"),
        .init(method: "get", path: "/v1/jobs", summary: "List jobs, newest first", tag: "jobs", authenticated: true, successStatus: "200", responseSchema: "JobPage",
              query: ["state", "kind", "schedule_id", "batch_id", "created_after", "created_before", "limit", "cursor"]),
        .init(method: "get", path: "/v1/jobs/{id}", summary: "A job", tag: "jobs", authenticated: true, successStatus: "200", responseSchema: "Job"),
        .init(method: "get", path: "/v1/jobs/{id}/events", summary: "A job's audit trail, oldest first", tag: "jobs", authenticated: true, successStatus: "200", responseSchema: "Object"),
        .init(method: "get", path: "/v1/jobs/{id}/output", summary: "The text a streaming job produced so far", tag: "jobs", authenticated: true, successStatus: "200", responseSchema: "Object", query: ["offset"]),
        .init(method: "post", path: "/v1/jobs/{id}/cancel", summary: "Cancel a job that has not finished", tag: "jobs", authenticated: true, successStatus: "200", responseSchema: "Job"),
        .init(method: "post", path: "/v1/jobs/{id}/retry", summary: "Run a failed or cancelled job again as a new round of attempts (submit scope; 409 not_retryable otherwise)", tag: "jobs", authenticated: true, successStatus: "200", responseSchema: "Job"),
        .init(method: "post", path: "/v1/jobs/bulk", summary: "Submit up to 10,000 jobs as JSON lines, all or nothing", tag: "jobs", authenticated: true, successStatus: "201", requestSchema: "JobRequest", responseSchema: "Object", requestContentType: "application/x-ndjson"),
        .init(method: "get", path: "/v1/batches/{id}", summary: "A bulk submission's counts and cost", tag: "jobs", authenticated: true, successStatus: "200", responseSchema: "Object"),
        .init(method: "post", path: "/v1/estimate", summary: "What a job (or N rows of it) would cost", tag: "jobs", authenticated: true, successStatus: "200", requestSchema: "Object", responseSchema: "Object"),
        .init(method: "get", path: "/v1/models", summary: "The Dream Engines model catalog (cached)", tag: "upstreams", authenticated: true, successStatus: "200", responseSchema: "Object"),
        .init(method: "get", path: "/v1/models/{slug}", summary: "One Dream Engines model", tag: "upstreams", authenticated: true, successStatus: "200", responseSchema: "Object"),
        .init(method: "get", path: "/v1/upstreams", summary: "Each upstream's state in this process (healthy, paused, unhealthy)", tag: "upstreams", authenticated: true, successStatus: "200", responseSchema: "Object"),
        .init(method: "post", path: "/v1/upstreams/{name}/resume", summary: "Lift an upstream's dispatch pause (e.g. after a 402) in every daemon on the database", tag: "upstreams", authenticated: true, successStatus: "200", responseSchema: "Object"),
        .init(method: "get", path: "/v1/checkpoints", summary: "Trained checkpoints, soonest expiry first", tag: "checkpoints", authenticated: true, successStatus: "200", responseSchema: "Object", query: ["state", "job_id", "expiring_within", "limit"]),
        .init(method: "get", path: "/v1/checkpoints/{id}", summary: "A checkpoint", tag: "checkpoints", authenticated: true, successStatus: "200", responseSchema: "Object"),
        .init(method: "patch", path: "/v1/checkpoints/{id}", summary: "Override a checkpoint's expiry (expires_at or retention)", tag: "checkpoints", authenticated: true, successStatus: "200", requestSchema: "Object", responseSchema: "Object"),
        .init(method: "post", path: "/v1/schedules", summary: "Create a schedule", tag: "schedules", authenticated: true, successStatus: "201", requestSchema: "Object", responseSchema: "Object"),
        .init(method: "get", path: "/v1/schedules", summary: "List schedules", tag: "schedules", authenticated: true, successStatus: "200", responseSchema: "Object", query: ["enabled", "limit", "cursor"]),
        .init(method: "get", path: "/v1/schedules/{id}", summary: "A schedule with its recent runs", tag: "schedules", authenticated: true, successStatus: "200", responseSchema: "Object"),
        .init(method: "patch", path: "/v1/schedules/{id}", summary: "Change a schedule", tag: "schedules", authenticated: true, successStatus: "200", requestSchema: "Object", responseSchema: "Object"),
        .init(method: "delete", path: "/v1/schedules/{id}", summary: "Delete a schedule (its jobs are kept)", tag: "schedules", authenticated: true, successStatus: "204"),
        .init(method: "post", path: "/v1/schedules/{id}/trigger", summary: "Create a job of the schedule now", tag: "schedules", authenticated: true, successStatus: "201", responseSchema: "Job"),
        .init(method: "get", path: "/v1/schedules/{id}/preview", summary: "The next fire times", tag: "schedules", authenticated: true, successStatus: "200", responseSchema: "Object", query: ["count"]),
        .init(method: "post", path: "/v1/subscriptions", summary: "Create a webhook subscription (its secret is shown only now)", tag: "webhooks", authenticated: true, successStatus: "201", requestSchema: "Object", responseSchema: "Object"),
        .init(method: "get", path: "/v1/subscriptions", summary: "List webhook subscriptions", tag: "webhooks", authenticated: true, successStatus: "200", responseSchema: "Object"),
        .init(method: "get", path: "/v1/subscriptions/{id}", summary: "A webhook subscription", tag: "webhooks", authenticated: true, successStatus: "200", responseSchema: "Object"),
        .init(method: "patch", path: "/v1/subscriptions/{id}", summary: "Change a webhook subscription", tag: "webhooks", authenticated: true, successStatus: "200", requestSchema: "Object", responseSchema: "Object"),
        .init(method: "delete", path: "/v1/subscriptions/{id}", summary: "Delete a webhook subscription", tag: "webhooks", authenticated: true, successStatus: "204"),
        .init(method: "post", path: "/v1/subscriptions/{id}/rotate-secret", summary: "Rotate the signing secret (the old one keeps signing for the overlap)", tag: "webhooks", authenticated: true, successStatus: "200", responseSchema: "Object"),
        .init(method: "post", path: "/v1/subscriptions/{id}/recover", summary: "Redeliver failed deliveries since a time", tag: "webhooks", authenticated: true, successStatus: "200", requestSchema: "Object", responseSchema: "Object"),
        .init(method: "get", path: "/v1/deliveries", summary: "The delivery log", tag: "webhooks", authenticated: true, successStatus: "200", responseSchema: "Object", query: ["subscription_id", "event_id", "state", "limit", "cursor"]),
        .init(method: "get", path: "/v1/deliveries/{id}", summary: "A delivery with its attempts", tag: "webhooks", authenticated: true, successStatus: "200", responseSchema: "Object"),
        .init(method: "post", path: "/v1/deliveries/{id}/redeliver", summary: "Send a delivery again (same webhook-id)", tag: "webhooks", authenticated: true, successStatus: "201", responseSchema: "Object"),
    ]

    /// The document, given the operations the running router serves (its routes may add to the list).
    public static func json(extra: [Operation] = []) -> JSONValue {
        var paths: [String: [String: JSONValue]] = [:]
        for operation in operations + extra {
            var entry: [String: JSONValue] = [
                "summary": .string(operation.summary),
                "tags": [.string(operation.tag)],
                "operationId": .string(operationID(operation)),
            ]
            var parameters: [JSONValue] = pathParameters(operation.path).map { name in
                ["name": .string(name), "in": "path", "required": true, "schema": ["type": "string"]]
            }
            parameters += operation.query.map { name in ["name": .string(name), "in": "query", "required": false, "schema": ["type": "string"]] }
            if operation.method == "post", operation.path == "/v1/jobs" || operation.path == "/v1/jobs/bulk" {
                parameters.append(["name": "Idempotency-Key", "in": "header", "required": false, "schema": ["type": "string", "maxLength": 255]])
            }
            if !parameters.isEmpty { entry["parameters"] = .array(parameters) }
            if let request = operation.requestSchema {
                entry["requestBody"] = ["required": true, "content": [operation.requestContentType: ["schema": ["$ref": .string("#/components/schemas/\(request)")]]]]
            }
            var success: [String: JSONValue] = ["description": "success"]
            if let response = operation.responseSchema {
                success["content"] = ["application/json": ["schema": ["$ref": .string("#/components/schemas/\(response)")]]]
            }
            var responses: [String: JSONValue] = [operation.successStatus: .object(success)]
            let error: JSONValue = ["description": "error", "content": ["application/json": ["schema": ["$ref": "#/components/schemas/Error"]]]]
            for status in ["400", "404", "413", "422"] { responses[status] = error }
            if operation.authenticated { for status in ["401", "403", "429"] { responses[status] = error } }
            if operation.path == "/v1/jobs", operation.method == "post" { responses["200"] = success.merging(["description": "replayed (same Idempotency-Key and body)"]) { $1 }.json; responses["409"] = error }
            if operation.path == "/readyz" { responses["503"] = ["description": "not ready"] }
            entry["responses"] = .object(responses)
            if operation.authenticated { entry["security"] = [["bearer": []]] } else { entry["security"] = [] }
            paths[operation.path, default: [:]][operation.method] = .object(entry)
        }
        return [
            "openapi": "3.1.0",
            "info": ["title": "dreamd", "version": "1.0.0", "description": "Orchestrates paid remote AI jobs through a PostgreSQL-backed queue."],
            "paths": .object(paths.mapValues { .object($0) }),
            "components": [
                "securitySchemes": ["bearer": ["type": "http", "scheme": "bearer"]],
                "schemas": schemas,
            ],
        ]
    }

    static func operationID(_ operation: Operation) -> String {
        let words = operation.path.split(separator: "/").map { $0.hasPrefix("{") ? "by_" + $0.dropFirst().dropLast() : String($0) }
        return ([operation.method] + words).joined(separator: "_").replacingOccurrences(of: ".", with: "_")
    }

    /// `{id}` names in an OpenAPI path.
    static func pathParameters(_ path: String) -> [String] {
        path.split(separator: "/").filter { $0.hasPrefix("{") && $0.hasSuffix("}") }.map { String($0.dropFirst().dropLast()) }
    }

    static let schemas: JSONValue = [
        "Object": ["type": "object"],
        "Error": [
            "type": "object", "required": ["error"],
            "properties": ["error": [
                "type": "object", "required": ["code", "message"],
                "properties": ["code": ["type": "string"], "message": ["type": "string"], "details": ["type": "object"]],
            ]],
        ],
        "JobRequest": [
            "type": "object", "required": ["kind", "params"],
            "properties": [
                "kind": ["type": "string", "enum": ["predict", "predict_batch", "dreambooth", "image_gen", "dreambooth_image_gen", "completion"]],
                "params": ["type": "object"], "run_at": ["type": "string", "format": "date-time"],
                "priority": ["type": "integer", "minimum": -100, "maximum": 100],
                "max_attempts": ["type": "integer", "minimum": 1, "maximum": 100],
                "metadata": ["type": "object"], "archive_checkpoints": ["type": "boolean"],
            ],
            "additionalProperties": false,
        ],
        "Job": [
            "type": "object",
            "required": ["id", "kind", "state", "params", "attempt", "max_attempts", "priority", "run_at", "created_at", "updated_at"],
            "properties": [
                "id": ["type": "string", "format": "uuid"], "kind": ["type": "string"],
                "state": ["type": "string", "enum": .array(JobState.allCases.map { .string($0.rawValue) })],
                "params": ["type": "object"], "attempt": ["type": "integer"], "max_attempts": ["type": "integer"],
                "priority": ["type": "integer"], "run_at": ["type": "string", "format": "date-time"],
                "created_at": ["type": "string", "format": "date-time"], "updated_at": ["type": "string", "format": "date-time"],
                "finished_at": ["type": ["string", "null"], "format": "date-time"],
                "upstream": ["type": ["object", "null"]], "result": ["type": ["object", "null"]],
                "error": ["type": ["object", "null"]], "cost_usd": ["type": ["number", "null"]],
                "schedule_id": ["type": ["string", "null"]], "metadata": ["type": "object"], "progress": ["type": ["object", "null"]],
            ],
        ],
        "JobPage": [
            "type": "object", "required": ["data", "next_cursor"],
            "properties": ["data": ["type": "array", "items": ["$ref": "#/components/schemas/Job"]], "next_cursor": ["type": ["string", "null"]]],
        ],
    ]
}

extension Dictionary where Key == String, Value == JSONValue {
    fileprivate var json: JSONValue { .object(self) }
}
