import DreamdCore

extension PredictParams {
    /// The JSON Schema of a `predict` or `predict_batch` job's params. What JSON Schema cannot say is in
    /// the descriptions: the model must be active in the catalog, the actions' shape must fit its spec,
    /// an inline frame must be an RGB PNG or JPEG of its resolution. With `activeModel` (once the catalog
    /// was fetched), `model` is that one slug.
    static func schema(for kind: JobKind, activeModel: String?) -> JSONValue {
        let batch = kind == .predictBatch
        var properties: [String: JSONValue] = [
            "model": activeModel.map { JSONSchema.enumeration([$0]).described("The active model of GET /v1/models.") }
                ?? JSONSchema.string(minLength: 1).described("A model slug of GET /v1/models; it must be the active one."),
            "start_frame": startFrameSchema,
            "actions": batch ? JSONSchema.array(actionsSchema, count: 1...maxBatch).described("One action sequence per video.") : actionsSchema,
            "seed": JSONSchema.nullable(JSONSchema.integer(0...Int(UInt32.max))),
            "num_steps": JSONSchema.nullable(JSONSchema.integer(1...1000)),
            "guidance": JSONSchema.nullable(JSONSchema.number(0...100)),
        ]
        if !batch { properties["score"] = JSONSchema.nullable(JSONSchema.boolean) }
        return JSONSchema.object(properties, required: ["model", "start_frame", "actions"])
    }

    static var startFrameSchema: JSONValue {
        ["oneOf": [
            JSONSchema.object(["base64": ["type": "string", "contentEncoding": "base64", "description": "An 8-bit RGB PNG or JPEG at the model's resolution."]], required: ["base64"]),
            JSONSchema.object(["url": JSONSchema.httpURL], required: ["url"]),
        ]]
    }

    static var actionsSchema: JSONValue {
        let row = JSONSchema.array(["type": "number"], count: 1...Int.max)
        return ["oneOf": [
            JSONSchema.object(["base64": ["type": "string", "contentEncoding": "base64", "description": "A float32 .npy of shape (T, action_dim)."]], required: ["base64"]),
            JSONSchema.object(["values": JSONSchema.array(row, count: 1...maxRows).described("T rows of action_dim numbers; T a multiple of the model's chunk_size.")], required: ["values"]),
        ]]
    }
}
