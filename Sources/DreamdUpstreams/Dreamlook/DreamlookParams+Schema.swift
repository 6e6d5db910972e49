import DreamdCore

extension DreamlookParams {
    /// The JSON Schema of a dreamlook kind's params: what `validate(kind:params:)` checks.
    static func schema(for kind: JobKind) -> JSONValue {
        switch kind {
        case .imageGen: imageGenSchema(topLevel: true)
        case .dreambooth: dreamboothSchema(topLevel: true)
        case .dreamboothImageGen: combinedSchema
        default: JSONSchema.anyObject
        }
    }

    private static let optionalString = JSONSchema.nullable(JSONSchema.string())
    private static let optionalBool = JSONSchema.nullable(JSONSchema.boolean)

    /// A present, non-null string field (JSON Schema for "`key` holds a string").
    private static func holdsString(_ key: String) -> JSONValue {
        .object(["type": "object", "required": [.string(key)], "properties": .object([key: ["type": "string"]])])
    }

    private static let tagsSchema: JSONValue = JSONSchema.nullable(JSONSchema.array([
        "type": "object", "required": ["key", "value"],
        "properties": ["key": ["type": "string", "not": ["const": .string(DreamlookClient.jobTagKey)]], "value": ["type": "string"]],
    ], count: 0...Int.max).described("dreamlook tags; the key \(DreamlookClient.jobTagKey) is reserved for dreamd."))

    static func imageGenSchema(topLevel: Bool) -> JSONValue {
        let dimension = JSONSchema.integer(64...2048).with(["multipleOf": 8])
        var properties: [String: JSONValue] = [
            "prompt": JSONSchema.string(minLength: 1),
            "negative_prompt": optionalString,
            "num_samples": JSONSchema.integer(1...50),
            "width": dimension,
            "height": dimension,
            "num_inference_steps": JSONSchema.nullable(JSONSchema.integer(1...500)),
            "guidance_scale": JSONSchema.nullable(JSONSchema.number(0...50)),
            "scheduler_type": optionalString,
            "seed": JSONSchema.nullable(JSONSchema.integer(0...Int(UInt32.max))),
            "base_model": optionalString,
            "checkpoint_id": JSONSchema.nullable(JSONSchema.string(pattern: "^ckp_")),
            "output_format": optionalString,
        ]
        let source: JSONValue
        if topLevel {
            properties["dry_run"] = optionalBool
            properties["tags"] = tagsSchema
            // Exactly one of base_model and checkpoint_id (a null one counts as absent).
            source = ["oneOf": [holdsString("base_model"), holdsString("checkpoint_id")]]
        } else {
            // At most one of them: a generation after training may use the model just trained.
            source = ["not": ["allOf": [holdsString("base_model"), holdsString("checkpoint_id")]]]
        }
        return JSONSchema.object(properties, required: ["prompt", "num_samples", "width", "height"]).with(["allOf": [source]])
    }

    static func dreamboothSchema(topLevel: Bool) -> JSONValue {
        var properties: [String: JSONValue] = [
            "image_urls": JSONSchema.array(["type": "string", "pattern": "^https?://"], count: 1...200),
            "instance_prompt": JSONSchema.string(minLength: 1),
            "steps": JSONSchema.integer(1...10_000),
            "learning_rate": ["type": "number", "exclusiveMinimum": 0, "maximum": 1],
            "base_model": JSONSchema.string(minLength: 1),
            "model_type": optionalString,
            "crop_method": optionalString,
            "saved_model_format": optionalString,
            "saved_model_weights_format": optionalString,
            "extract_lora": ["type": ["boolean", "string", "null"]],
        ]
        if topLevel {
            properties["dry_run"] = optionalBool
            properties["tags"] = tagsSchema
        }
        return JSONSchema.object(properties, required: ["image_urls", "instance_prompt", "steps", "learning_rate", "base_model"])
    }

    static var combinedSchema: JSONValue {
        JSONSchema.object([
            "dreambooth": dreamboothSchema(topLevel: false),
            "image_gen": JSONSchema.array(imageGenSchema(topLevel: false), count: 1...20),
            "dry_run": optionalBool,
            "tags": tagsSchema,
        ], required: ["dreambooth", "image_gen"])
    }
}
