import DreamdCore
import DreamdStore

extension OpenAPIDocument {
    private static let nullableString: JSONValue = ["type": ["string", "null"]]
    private static let nullableDateTime: JSONValue = ["type": ["string", "null"], "format": "date-time"]
    private static let nullableUUID: JSONValue = ["type": ["string", "null"], "format": "uuid"]

    /// A response object: these properties at least (responses may grow new fields; clients ignore them).
    static func response(_ properties: [String: JSONValue], required: [String]) -> JSONValue {
        ["type": "object", "properties": .object(properties), "required": .array(required.sorted().map { .string($0) })]
    }

    static func list(of item: String, paged: Bool) -> JSONValue {
        var properties: [String: JSONValue] = ["data": ["type": "array", "items": JSONSchema.ref(item)]]
        if paged { properties["next_cursor"] = nullableString }
        return response(properties, required: paged ? ["data", "next_cursor"] : ["data"])
    }

    /// `JobRequest` (a `oneOf` by `kind`, each kind with its executor's params schema), the schedule's
    /// `JobTemplate` and `EstimateRequest`, for the kinds this daemon runs.
    static func jobSchemas(registry: ExecutorRegistry) -> [String: JSONValue] {
        var result: [String: JSONValue] = [:]
        var requests: [String: JSONValue] = [:]
        var templates: [String: JSONValue] = [:]
        var estimates: [String: JSONValue] = [:]
        for kind in registry.kinds {
            guard let executor = registry.executor(for: kind) else { continue }
            let params = executor.paramsSchema(for: kind)
            let trains = kind == .dreambooth || kind == .dreamboothImageGen
            let common: [String: JSONValue] = [
                "kind": ["const": .string(kind.rawValue)],
                "params": params,
                "priority": JSONSchema.nullable(JSONSchema.integer(JobSubmission.priorityRange)),
                "max_attempts": JSONSchema.nullable(JSONSchema.integer(1...100)),
                "metadata": ["type": ["object", "null"], "description": .string("Free-form, at most \(JobSubmission.maxMetadataBytes) bytes of JSON.")],
            ]
            var request = common
            request["run_at"] = JSONSchema.nullable(JSONSchema.dateTime)
            request["archive_checkpoints"] = trains ? JSONSchema.nullable(JSONSchema.boolean)
                : ["enum": [false, .null], "description": "Only dreambooth and dreambooth_image_gen jobs archive checkpoints."]
            let requestName = "JobRequest_\(kind.rawValue)"
            result[requestName] = JSONSchema.object(request, required: ["kind", "params"])
            requests[kind.rawValue] = .string("#/components/schemas/\(requestName)")
            let templateName = "JobTemplate_\(kind.rawValue)"
            result[templateName] = JSONSchema.object(common, required: ["kind", "params"])
            templates[kind.rawValue] = .string("#/components/schemas/\(templateName)")
            if executor.estimatesCost {
                var estimate = request
                estimate["rows"] = JSONSchema.nullable(JSONSchema.integer(1...EstimateRoutes.maxRows))
                let estimateName = "EstimateRequest_\(kind.rawValue)"
                result[estimateName] = JSONSchema.object(estimate, required: ["kind", "params"])
                estimates[kind.rawValue] = .string("#/components/schemas/\(estimateName)")
            }
        }
        func union(_ mapping: [String: JSONValue], _ description: String) -> JSONValue {
            [
                "oneOf": .array(mapping.keys.sorted().compactMap { mapping[$0] }.map { ["$ref": $0] }),
                "discriminator": ["propertyName": "kind", "mapping": .object(mapping)],
                "description": .string(description),
            ]
        }
        result["JobRequest"] = union(requests, "A job: its kind and that kind's params.")
        result["JobTemplate"] = union(templates, "The job a schedule creates at each fire time.")
        result["EstimateRequest"] = estimates.isEmpty ? ["not": [:], "description": "No kind enabled here estimates its cost."]
            : union(estimates, "A job body of a kind that can be priced before it runs, with rows: N for N such jobs.")
        return result
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
        "Health": response(["status": ["type": "string"]], required: ["status"]),
        "Job": response([
            "id": uuid, "kind": ["type": "string"],
            "state": JSONSchema.enumeration(JobState.allCases.map(\.rawValue)),
            "params": ["type": "object"], "attempt": ["type": "integer"], "max_attempts": ["type": "integer"],
            "priority": ["type": "integer"], "run_at": JSONSchema.dateTime,
            "created_at": JSONSchema.dateTime, "updated_at": JSONSchema.dateTime, "finished_at": nullableDateTime,
            "upstream": ["type": ["object", "null"]], "result": ["type": ["object", "null"]],
            "error": ["type": ["object", "null"]], "cost_usd": ["type": ["number", "null"]],
            "schedule_id": nullableUUID, "metadata": ["type": "object"], "progress": ["type": ["object", "null"]],
        ], required: ["id", "kind", "state", "params", "attempt", "max_attempts", "priority", "run_at", "created_at", "updated_at"]),
        "JobPage": list(of: "Job", paged: true),
        "JobEvent": response(["at": JSONSchema.dateTime, "actor": ["type": "string"], "detail": ["type": "object"]], required: ["at", "actor"]),
        "JobEvents": list(of: "JobEvent", paged: false),
        "JobOutput": response([
            "text": ["type": "string"], "offset": ["type": "integer", "minimum": 0], "length": ["type": "integer", "minimum": 0],
            "state": JSONSchema.enumeration(JobState.allCases.map(\.rawValue)), "final": JSONSchema.boolean,
        ], required: ["text", "offset", "length", "state", "final"]),
        "BulkSubmission": response(["batch_id": uuid], required: []),
        "Batch": response(["id": uuid, "cost_usd": ["type": ["number", "null"]], "created_at": JSONSchema.dateTime], required: ["id"]),
        "Estimate": response([
            "kind": ["type": "string"], "model": ["type": "string"], "rows": ["type": "integer"],
            "frames_per_row": ["type": "integer"], "total_frames": ["type": "integer"],
            "price_per_frame_usd": ["type": "number"], "total_usd": ["type": "number"],
        ], required: ["kind", "model", "rows", "frames_per_row", "total_frames", "price_per_frame_usd", "total_usd"]),
        "Upstreams": list(of: "Object", paged: false),
        "Checkpoint": response([
            "id": uuid, "job_id": uuid, "state": JSONSchema.enumeration(CheckpointsRoutes.states),
            "trained_at": JSONSchema.dateTime, "expires_at": JSONSchema.dateTime,
        ], required: ["id", "job_id", "state", "expires_at"]),
        "CheckpointList": list(of: "Checkpoint", paged: false),
        "CheckpointPatch": [
            "oneOf": [
                JSONSchema.object(["expires_at": JSONSchema.dateTime], required: ["expires_at"]),
                JSONSchema.object(["retention": JSONSchema.string(pattern: durationPattern).described("From trained_at, e.g. 72h.")], required: ["retention"]),
            ],
            "description": "The new expiry: an absolute time, or a retention counted from trained_at. It must be after trained_at.",
        ],
        "ScheduleCreate": JSONSchema.object(scheduleFields, required: ["name", "cron", "job"]),
        "SchedulePatch": JSONSchema.object(scheduleFields),
        "Schedule": response([
            "id": uuid, "name": ["type": "string"], "cron": ["type": "string"], "timezone": ["type": "string"],
            "job": ["type": "object"], "enabled": JSONSchema.boolean,
            "next_fire_at": nullableDateTime, "last_fired_at": nullableDateTime,
        ], required: ["id", "name", "cron", "timezone", "job", "enabled"]),
        "SchedulePage": list(of: "Schedule", paged: true),
        "SchedulePreview": response([
            "schedule_id": uuid, "cron": ["type": "string"], "timezone": ["type": "string"],
            "data": ["type": "array", "items": response(["at": JSONSchema.dateTime, "local": ["type": "string"]], required: ["at", "local"])],
        ], required: ["schedule_id", "cron", "timezone", "data"]),
        "SubscriptionCreate": JSONSchema.object(subscriptionFields.merging([
            "url": subscriptionURL,
            "event_types": subscriptionEventTypes,
            "secret": JSONSchema.nullable(JSONSchema.string(pattern: "^whsec_[A-Za-z0-9+/]+={0,2}$")
                .described("Bring your own signing secret: whsec_ and base64 of 24 to 64 bytes.")),
        ]) { $1 }, required: ["url", "event_types"]),
        "SubscriptionPatch": JSONSchema.object(subscriptionFields),
        "Subscription": response([
            "id": uuid, "url": ["type": "string"], "event_types": ["type": "array", "items": ["type": "string"]],
            "enabled": JSONSchema.boolean, "created_at": JSONSchema.dateTime,
        ], required: ["id", "url", "event_types", "enabled"]),
        "SubscriptionWithSecret": response([
            "id": uuid, "secret": ["type": "string", "description": "Shown only in this answer."],
        ], required: ["id", "secret"]),
        "SubscriptionList": list(of: "Subscription", paged: false),
        "Recover": JSONSchema.object(["since": JSONSchema.dateTime], required: ["since"]),
        "DeliveryPage": list(of: "Object", paged: true),
    ]

    private static var scheduleFields: [String: JSONValue] {
        [
            "name": JSONSchema.string(minLength: 1, maxLength: ScheduleBody.maxNameLength, pattern: "\\S").described("Not only spaces."),
            "cron": ["type": "string", "minLength": 1, "description": "Five fields (minute hour day-of-month month day-of-week), or @hourly, @daily, @weekly, @monthly, @yearly."],
            "timezone": ["type": "string", "minLength": 1, "description": "An IANA time zone such as Europe/Paris (default UTC)."],
            "job": JSONSchema.ref("JobTemplate"),
            "overlap": JSONSchema.enumeration(OverlapPolicy.allCases.map(\.rawValue)),
            "catch_up": JSONSchema.enumeration(CatchUpPolicy.allCases.map(\.rawValue)),
            "enabled": JSONSchema.boolean,
        ]
    }

    private static let subscriptionURL = JSONSchema.httpURL.with(["maxLength": .number(Double(SubscriptionInput.maxURLLength))])
    private static let subscriptionEventTypes = JSONSchema.array(
        JSONSchema.string(minLength: 1, maxLength: EventTypeFilter.maxLength, pattern: "^[a-z_.*]+$"),
        count: 1...SubscriptionInput.maxEventTypes)

    private static var subscriptionFields: [String: JSONValue] {
        [
            "url": JSONSchema.nullable(subscriptionURL),
            "event_types": JSONSchema.nullable(subscriptionEventTypes),
            "description": JSONSchema.nullable(JSONSchema.string(maxLength: SubscriptionInput.maxDescriptionLength)),
            "enabled": JSONSchema.nullable(JSONSchema.boolean),
        ]
    }
}
