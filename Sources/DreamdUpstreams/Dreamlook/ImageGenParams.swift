import DreamdCore

/// Submit-time validation of `image_gen` params (dreamlook's `POST /image_gen` body, less what dreamd sets).
enum ImageGenParams {
    static let allowedKeys: Set<String> = [
        "prompt", "negative_prompt", "num_samples", "width", "height", "num_inference_steps", "guidance_scale",
        "scheduler_type", "seed", "base_model", "checkpoint_id", "output_format", "dry_run", "tags",
    ]

    static func validate(_ params: JSONValue, path: String = "params") throws(ValidationError) {
        let reader = try ParamsReader(params, path: path)
        try reader.rejectUnknownKeys(allowed: allowedKeys)
        _ = try reader.requiredString("prompt")
        _ = try reader.optionalString("negative_prompt")
        _ = try reader.requiredInt("num_samples", in: 1...50)
        for dimension in ["width", "height"] {
            let value = try reader.requiredInt(dimension, in: 64...2048)
            if value % 8 != 0 { throw ValidationError(field: "\(path).\(dimension)", message: "must be a multiple of 8, got \(value)") }
        }
        _ = try reader.optionalInt("num_inference_steps", in: 1...500)
        _ = try reader.optionalNumber("guidance_scale", in: 0...50)
        _ = try reader.optionalString("scheduler_type")
        _ = try reader.optionalInt("seed", in: 0...Int(UInt32.max))
        _ = try reader.optionalString("output_format")
        _ = try reader.optionalBool("dry_run")
        let baseModel = try reader.optionalString("base_model")
        let checkpoint = try reader.optionalString("checkpoint_id")
        switch (baseModel, checkpoint) {
        case (nil, nil):
            throw ValidationError(field: "\(path).base_model", message: "one of base_model or checkpoint_id is required")
        case (.some, .some):
            throw ValidationError(field: "\(path).checkpoint_id", message: "give base_model or checkpoint_id, not both")
        case (_, .some(let id)) where !id.hasPrefix("ckp_"):
            throw ValidationError(field: "\(path).checkpoint_id", message: "must be a dreamlook checkpoint id (ckp_...)")
        default:
            break
        }
        try validateTags(params["tags"], path: "\(path).tags")
    }

    static func validateTags(_ tags: JSONValue?, path: String) throws(ValidationError) {
        guard let tags, !tags.isNull else { return }
        guard let list = tags.arrayValue else { throw ValidationError(field: path, message: "must be an array of {key, value}") }
        for (index, tag) in list.enumerated() {
            guard tag["key"]?.stringValue != nil, tag["value"]?.stringValue != nil else {
                throw ValidationError(field: "\(path)[\(index)]", message: "must be an object with string key and value")
            }
            if tag["key"]?.stringValue == DreamlookClient.jobTagKey {
                throw ValidationError(field: "\(path)[\(index)].key", message: "\(DreamlookClient.jobTagKey) is reserved for dreamd")
            }
        }
    }
}
